//! `coflux submit MODULE/TARGET [JSON_ARG…] [--no-wait] [--allow-unregistered]`, with per-run
//! overrides of the workflow's options: `--requires KEY:VALUE…`/`--no-requires`,
//! `--memo`/`--no-memo`, `--delay DURATION`, `--retries N`.

use std::io::IsTerminal;
use std::time::Duration;

use serde_json::Value as Json;

use super::args::SubmitArgs;
use super::client::{segment, typed};
use super::{CliError, Context, Exit, runs, runs_list};
use coflux_core::model::Requires;
use coflux_core::protocol::http::{SubmitRun, Submitted};

/// Parses `key:value` tags (`key:a,b` for several values) given with `flag`.
pub fn parse_tags(flag: &str, tags: &[String]) -> Result<Requires, CliError> {
    let mut out = Requires::new();
    for tag in tags {
        let bad = || CliError::Usage(format!("invalid {flag} '{tag}': expected KEY:VALUE"));
        let (key, values) = tag.split_once(':').ok_or_else(bad)?;
        let values: Vec<&str> = values.split(',').map(str::trim).collect();
        if key.trim().is_empty() || values.iter().any(|v| v.is_empty()) {
            return Err(bad());
        }
        let entry = out.entry(key.trim().to_owned()).or_default();
        for value in values {
            if !entry.iter().any(|v| v == value) {
                entry.push(value.to_owned());
            }
        }
    }
    Ok(out)
}

/// The per-run overrides of `args`, set on `body`.
fn set_overrides(body: &mut SubmitRun, args: &SubmitArgs) -> Result<(), CliError> {
    if args.no_requires {
        body.requires = Some(Requires::new());
    } else if !args.requires.is_empty() {
        body.requires = Some(parse_tags("--requires", &args.requires)?);
    }
    if args.memo || args.no_memo {
        body.memo = Some(args.memo);
    }
    if let Some(delay) = &args.delay {
        let ms = runs_list::duration_ms(delay).ok_or_else(|| {
            CliError::Usage(format!(
                "--delay: expected a duration (30s, 5m, 2h, 1d), got '{delay}'"
            ))
        })?;
        body.delay_ms = Some(ms.unsigned_abs());
    }
    body.retries = args.retries;
    Ok(())
}

/// Splits `module/target` at its last `/`.
pub fn split_target(text: &str) -> Result<(&str, &str), CliError> {
    match text.rsplit_once('/') {
        Some((module, target)) if !module.is_empty() && !target.is_empty() => Ok((module, target)),
        _ => Err(CliError::Usage(format!(
            "expected the workflow as MODULE/TARGET (e.g. quickstart/hello), got '{text}'"
        ))),
    }
}

/// Parses each argument as JSON.
pub fn parse_arguments(arguments: &[String]) -> Result<Vec<Json>, CliError> {
    arguments
        .iter()
        .enumerate()
        .map(|(i, text)| {
            serde_json::from_str(text).map_err(|e| {
                CliError::Usage(format!(
                    "argument {} is not valid JSON ({e}): {text} (quote strings, e.g. '\"world\"')",
                    i + 1
                ))
            })
        })
        .collect()
}

/// Submits a run; unless `--no-wait`, waits for its result (drawing its tree live on a
/// terminal) and reports it.
pub async fn run(ctx: &Context, args: SubmitArgs) -> Result<Exit, CliError> {
    let (module, target) = split_target(&args.target)?;
    let arguments = parse_arguments(&args.arguments)?;
    let path = format!(
        "{}/environments/{}/runs",
        ctx.project_path()?,
        segment(ctx.environment()?)
    );
    let mut body = SubmitRun {
        module: module.to_owned(),
        target: target.to_owned(),
        arguments,
        idempotency_key: args.idempotency_key.clone(),
        allow_unregistered: args.allow_unregistered,
        requires: None,
        memo: None,
        delay_ms: None,
        retries: None,
    };
    set_overrides(&mut body, &args)?;
    let answer = ctx.client.post(&path, &body).await?;
    let submitted: Submitted = typed(&answer)?;
    if args.no_wait {
        if ctx.json() {
            ctx.print_json(&answer)?;
        } else {
            ctx.print(&submitted.run_id)?;
        }
        return Ok(Exit::Success);
    }
    let live = !ctx.json() && std::io::stdout().is_terminal();
    let result = if live {
        runs::watch(ctx, &submitted.run_id, Duration::from_millis(500), false).await?
    } else {
        runs::wait_result(ctx, &submitted.run_id).await?
    };
    runs::report_result(ctx, &result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn targets_and_arguments_are_parsed() {
        assert_eq!(
            split_target("app.flows/hello").unwrap(),
            ("app.flows", "hello")
        );
        assert_eq!(split_target("a/b/c").unwrap(), ("a/b", "c"));
        for bad in ["hello", "/hello", "mod/"] {
            assert!(split_target(bad).is_err(), "{bad}");
        }
        let args = parse_arguments(&["\"x\"".into(), "5".into(), "{\"a\":[1]}".into()]).unwrap();
        assert_eq!(args, vec![json!("x"), json!(5), json!({"a": [1]})]);
        let err = parse_arguments(&["world".into()]).unwrap_err().to_string();
        assert!(err.contains("argument 1 is not valid JSON"), "{err}");
    }

    #[test]
    fn tags_are_parsed_and_merged() {
        let tags = parse_tags(
            "--requires",
            &[
                "gpu:A100,H100".into(),
                "region:eu".into(),
                "gpu:A100".into(),
            ],
        )
        .unwrap();
        assert_eq!(tags["gpu"], ["A100", "H100"]);
        assert_eq!(tags["region"], ["eu"]);
        for bad in ["gpu", ":x", "gpu:", "gpu:a,"] {
            let err = parse_tags("--requires", &[bad.into()]).unwrap_err();
            assert!(err.to_string().contains("--requires"), "{bad}: {err}");
        }
    }
}

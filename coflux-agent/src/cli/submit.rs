//! `coflux submit MODULE/TARGET [JSON_ARG…] [--no-wait] [--allow-unregistered]`.

use std::io::IsTerminal;
use std::time::Duration;

use serde_json::Value as Json;

use super::args::SubmitArgs;
use super::client::{segment, typed};
use super::{CliError, Context, Exit, runs};
use coflux_core::protocol::http::{SubmitRun, Submitted};

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
    let body = SubmitRun {
        module: module.to_owned(),
        target: target.to_owned(),
        arguments,
        idempotency_key: args.idempotency_key,
        allow_unregistered: args.allow_unregistered,
    };
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
}

//! `coflux runs list [--status S] [--workflow M/T] [--since T] [--until T] [--limit N]
//! [--cursor C | --all]`: a page of `GET …/runs` (filtered by `--environment` when given),
//! newest first, with each run's status and duration; the cursor of the next page is printed
//! below the table (`--all` follows it to the end).

use coflux_core::protocol::http::{RunList, RunsQuery, parse_time};

use super::args::RunsListArgs;
use super::client::{segment, typed};
use super::{CliError, Context, Exit, output};

/// Lists runs.
pub async fn list(ctx: &Context, args: RunsListArgs) -> Result<Exit, CliError> {
    let now = output::now_ms();
    let mut query = RunsQuery {
        status: args.status,
        workflow: args.workflow,
        environment: ctx.global.environment.clone(),
        since: args
            .since
            .as_deref()
            .map(|t| time_arg("--since", t, now))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|t| time_arg("--until", t, now))
            .transpose()?,
        cursor: args.cursor,
        limit: Some(args.limit),
    };
    let mut all = RunList {
        runs: Vec::new(),
        next_cursor: None,
    };
    loop {
        let path = format!("{}/runs{}", ctx.project_path()?, query_string(&query));
        let page: RunList = typed(&ctx.client.get(&path).await?)?;
        all.runs.extend(page.runs);
        all.next_cursor = page.next_cursor;
        match &all.next_cursor {
            Some(next) if args.all => query.cursor = Some(next.clone()),
            _ => break,
        }
    }
    if ctx.json() {
        let json = serde_json::to_value(&all).map_err(|e| CliError::Protocol(e.to_string()))?;
        ctx.print_json(&json)?;
        return Ok(Exit::Success);
    }
    let rows: Vec<Vec<String>> = all
        .runs
        .into_iter()
        .map(|r| {
            let duration = r.duration_ms.unwrap_or(now - r.created_at);
            vec![
                r.run_id,
                r.status,
                format!("{}/{}", r.module, r.target),
                r.environment,
                output::datetime(r.created_at),
                output::duration(duration),
            ]
        })
        .collect();
    let mut text = output::table(
        &[
            "RUN",
            "STATUS",
            "WORKFLOW",
            "ENVIRONMENT",
            "CREATED (UTC)",
            "DURATION",
        ],
        &rows,
    );
    if let Some(next) = &all.next_cursor {
        text.push_str(&format!("more: --cursor {next}\n"));
    }
    ctx.print(&text)?;
    Ok(Exit::Success)
}

/// `?name=value&…` of the parameters given, percent-encoded.
fn query_string(query: &RunsQuery) -> String {
    let limit = query.limit.map(|l| l.to_string());
    let pairs = [
        ("status", query.status.as_deref()),
        ("workflow", query.workflow.as_deref()),
        ("environment", query.environment.as_deref()),
        ("since", query.since.as_deref()),
        ("until", query.until.as_deref()),
        ("cursor", query.cursor.as_deref()),
        ("limit", limit.as_deref()),
    ];
    let given: Vec<String> = pairs
        .iter()
        .filter_map(|(name, value)| Some(format!("{name}={}", segment((*value)?))))
        .collect();
    if given.is_empty() {
        String::new()
    } else {
        format!("?{}", given.join("&"))
    }
}

/// A duration as milliseconds: a number with a unit, `s`, `m`, `h` or `d` (`90s`, `15m`);
/// `ms` for milliseconds.
pub(crate) fn duration_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let (number, unit_ms) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1)
    } else {
        let (i, unit) = text.char_indices().last()?;
        let unit_ms = match unit {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            _ => return None,
        };
        (&text[..i], unit_ms)
    };
    let n: i64 = number.parse().ok().filter(|n| *n >= 0)?;
    n.checked_mul(unit_ms)
}

/// A time argument as Unix milliseconds: a duration ago (`90s`, `15m`, `2h`, `7d`), an RFC
/// 3339 time or Unix milliseconds.
pub(crate) fn time_arg(flag: &str, text: &str, now: i64) -> Result<String, CliError> {
    let text = text.trim();
    match duration_ms(text) {
        Some(ms) => Ok((now - ms).to_string()),
        None => parse_time(text).map(|t| t.to_string()).ok_or_else(|| {
            CliError::Usage(format!(
                "{flag}: expected a duration ago (90s, 15m, 2h, 7d), an RFC 3339 time or Unix milliseconds, got '{text}'"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_arguments_are_durations_ago_or_times() {
        let now = 1_000_000_000;
        assert_eq!(time_arg("--since", "90s", now).unwrap(), "999910000");
        assert_eq!(time_arg("--since", "2h", now).unwrap(), "992800000");
        assert_eq!(time_arg("--since", "1234", now).unwrap(), "1234");
        assert_eq!(duration_ms("250ms"), Some(250));
        assert_eq!(duration_ms("15m"), Some(900_000));
        assert_eq!(duration_ms("-1s"), None);
        assert_eq!(duration_ms("soon"), None);
        assert_eq!(
            time_arg("--since", "2026-01-01T00:00:00Z", now).unwrap(),
            "1767225600000"
        );
        let err = time_arg("--since", "yesterday", now)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--since"), "{err}");
    }

    #[test]
    fn only_given_parameters_are_sent() {
        assert_eq!(query_string(&RunsQuery::default()), "");
        let query = RunsQuery {
            workflow: Some("app.flows/main".into()),
            cursor: Some("rc1_a".into()),
            limit: Some(5),
            ..RunsQuery::default()
        };
        assert_eq!(
            query_string(&query),
            "?workflow=app.flows%2Fmain&cursor=rc1_a&limit=5"
        );
    }
}

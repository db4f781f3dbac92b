//! `coflux runs list | inspect RUN | watch RUN | result RUN[:STEP[:ATTEMPT]] | rerun STEP |
//! cancel EXECUTION | delete RUN`,
//! and the result waiting and reporting that `submit` shares.
//!
//! `inspect` and `watch` add each execution's latest progress (`cf.progress`, a metric whose
//! definition has `progress: true`) from `…/runs/{run}/metrics` to the run's JSON, as
//! `"progress": {"key", "value", "upper", "text"}`; the tree shows `text` next to running
//! executions (`3/10`, `42%`).

use std::io::IsTerminal;
use std::time::Duration;

use serde_json::{Value as Json, json};

use super::args::RunsCommand;
use super::client::{segment, typed};
use coflux_core::protocol::http::{
    Empty, ExecutionMetrics, Rerun, RerunStep, Run, RunMetrics, RunResult,
};

use super::output::{Progress, ProgressView};
use super::{CliError, Context, Exit, output};

/// How long one long-poll for a result asks the server to wait.
const LONG_POLL_SECS: u64 = 25;

/// Runs a `runs` command.
pub async fn run(ctx: &Context, command: RunsCommand) -> Result<Exit, CliError> {
    match command {
        RunsCommand::List(args) => super::runs_list::list(ctx, args).await,
        RunsCommand::Inspect { run, all } => {
            let mut answer = ctx.client.get(&run_path(ctx, &run)?).await?;
            let progress = progress(ctx, &run).await;
            if ctx.json() {
                add_progress(&mut answer, &progress);
                ctx.print_json(&answer)?;
            } else {
                let view: Run = typed(&answer)?;
                ctx.print(&output::run_tree(&view, &progress, output::now_ms(), all))?;
            }
            Ok(Exit::Success)
        }
        RunsCommand::Watch {
            run,
            interval_ms,
            all,
        } => {
            let interval = Duration::from_millis(interval_ms.max(50));
            let result = watch(ctx, &run, interval, all).await?;
            Ok(exit_for(&result))
        }
        RunsCommand::Result { run, no_wait } => {
            let result = if no_wait {
                fetch_result(ctx, &run, 0).await?
            } else {
                wait_result(ctx, &run).await?
            };
            report_result(ctx, &result)
        }
        RunsCommand::Rerun { step } => {
            let path = format!("{}/steps/{}/rerun", ctx.project_path()?, segment(&step));
            let body = RerunStep {
                environment: ctx.global.environment.clone(),
            };
            let answer = ctx.client.post(&path, &body).await?;
            ctx.show(&answer, |rerun: Rerun| {
                format!(
                    "re-running step {step}: execution {} (attempt {})",
                    rerun.execution_id, rerun.attempt
                )
            })?;
            Ok(Exit::Success)
        }
        RunsCommand::Cancel { execution } => {
            let path = format!(
                "{}/executions/{}/cancel",
                ctx.project_path()?,
                segment(&execution)
            );
            let answer = ctx.client.post(&path, &Empty {}).await?;
            if ctx.json() {
                ctx.print_json(&answer)?;
            } else {
                ctx.print(&format!("cancellation of {execution} requested"))?;
            }
            Ok(Exit::Success)
        }
        RunsCommand::Delete { run } => {
            let path = format!("{}/runs/{}", ctx.project_path()?, segment(&run));
            let answer = ctx.client.delete(&path).await?;
            if ctx.json() {
                ctx.print_json(&answer)?;
            } else {
                ctx.print(&format!("run {run} deleted"))?;
            }
            Ok(Exit::Success)
        }
    }
}

/// `/api/projects/{p}/runs/{run}`, with `?environment=` when one is given.
fn run_path(ctx: &Context, run: &str) -> Result<String, CliError> {
    let mut path = format!("{}/runs/{}", ctx.project_path()?, segment(run));
    if let Some(env) = &ctx.global.environment {
        path.push_str(&format!("?environment={}", segment(env)));
    }
    Ok(path)
}

/// Each execution's latest progress (none if the metrics cannot be read, e.g. from an older
/// server).
async fn progress(ctx: &Context, run: &str) -> Progress {
    let Ok(project) = ctx.project_path() else {
        return Progress::new();
    };
    let path = format!("{project}/runs/{}/metrics", segment(run));
    let metrics: RunMetrics = match ctx.client.get(&path).await.map(|j| typed(&j)) {
        Ok(Ok(metrics)) => metrics,
        Ok(Err(e)) | Err(e) => {
            tracing::debug!(error = %e, "no metrics for the run");
            return Progress::new();
        }
    };
    metrics
        .executions
        .iter()
        .filter_map(|e| Some((e.execution_id.clone(), latest_progress(e)?)))
        .collect()
}

/// Adds each execution's progress to a run's JSON, as `"progress"`.
fn add_progress(answer: &mut Json, progress: &Progress) {
    let steps = answer.get_mut("steps").and_then(Json::as_array_mut);
    for step in steps.into_iter().flatten() {
        let executions = step.get_mut("executions").and_then(Json::as_array_mut);
        for execution in executions.into_iter().flatten() {
            let id = execution.get("execution_id").and_then(Json::as_str);
            if let Some(view) = id.and_then(|id| progress.get(id))
                && let Some(object) = execution.as_object_mut()
            {
                object.insert("progress".into(), json!(view));
            }
        }
    }
}

/// The latest point of an execution's progress metric (`progress` first, else the first).
fn latest_progress(execution: &ExecutionMetrics) -> Option<ProgressView> {
    let is_progress = |d: &Option<Json>| {
        d.as_ref()
            .and_then(|d| d.get("progress"))
            .and_then(Json::as_bool)
            == Some(true)
    };
    let mut candidates: Vec<_> = execution
        .metrics
        .iter()
        .filter(|m| is_progress(&m.definition) && !m.points.is_empty())
        .collect();
    candidates.sort_by_key(|m| m.key != coflux_core::sdk::PROGRESS_KEY);
    let metric = candidates.first()?;
    let definition: coflux_core::sdk::MetricDefinition = metric
        .definition
        .clone()
        .and_then(|d| serde_json::from_value(d).ok())
        .unwrap_or_default();
    let value = metric.points.last()?.value;
    Some(ProgressView {
        key: metric.key.clone(),
        value,
        upper: definition.upper,
        text: definition.progress_text(value),
    })
}

/// One result request for `RUN[:STEP[:ATTEMPT]]` as seen from `--environment`, asking the
/// server to wait up to `wait` seconds.
pub async fn fetch_result(ctx: &Context, run: &str, wait: u64) -> Result<Json, CliError> {
    let (run, query) = result_query(run)?;
    let mut path = format!(
        "{}/runs/{}/result?wait={wait}{query}",
        ctx.project_path()?,
        segment(run)
    );
    if let Some(env) = &ctx.global.environment {
        path.push_str(&format!("&environment={}", segment(env)));
    }
    ctx.client
        .get_with_timeout(&path, Duration::from_secs(wait + 15))
        .await
}

/// Splits `RUN[:STEP[:ATTEMPT]]` into the run and the query naming the step and attempt.
fn result_query(spec: &str) -> Result<(&str, String), CliError> {
    let mut parts = spec.split(':');
    let run = parts.next().unwrap_or_default();
    let numbers: Vec<&str> = parts.collect();
    let valid = !run.is_empty()
        && numbers.len() <= 2
        && numbers
            .iter()
            .all(|n| n.parse::<u32>().is_ok_and(|n| n > 0));
    if !valid {
        return Err(CliError::Usage(format!(
            "expected RUN, RUN:STEP or RUN:STEP:ATTEMPT (e.g. R1, R1:2, R1:1:2), got '{spec}'"
        )));
    }
    let query = ["step", "attempt"]
        .iter()
        .zip(&numbers)
        .map(|(name, n)| format!("&{name}={n}"))
        .collect();
    Ok((run, query))
}

fn is_pending(result: &Json) -> bool {
    result.get("status").and_then(Json::as_str) == Some("pending")
}

/// Long-polls until the run has its final result.
pub async fn wait_result(ctx: &Context, run: &str) -> Result<Json, CliError> {
    loop {
        let result = fetch_result(ctx, run, LONG_POLL_SECS).await?;
        if !is_pending(&result) {
            return Ok(result);
        }
    }
}

/// Redraws the run's tree every `interval` until the run finishes; returns its final result.
/// On a terminal the screen is redrawn in place; otherwise the tree is printed again whenever
/// it changes. With `-o json`, only the final run is printed.
pub async fn watch(
    ctx: &Context,
    run: &str,
    interval: Duration,
    all: bool,
) -> Result<Json, CliError> {
    let tty = std::io::stdout().is_terminal() && !ctx.json();
    let path = run_path(ctx, run)?;
    let mut last: Option<Json> = None;
    loop {
        // The result first: once it is final, the view read next shows the finished run.
        let result = fetch_result(ctx, run, 0).await?;
        let mut answer = ctx.client.get(&path).await?;
        let progress = progress(ctx, run).await;
        add_progress(&mut answer, &progress);
        let done = !is_pending(&result);
        if ctx.json() {
            if done {
                ctx.print_json(&answer)?;
            }
        } else if tty {
            let view: Run = typed(&answer)?;
            let tree = output::run_tree(&view, &progress, output::now_ms(), all);
            ctx.print(&format!("\x1b[H\x1b[2J{tree}"))?;
        } else if last.as_ref() != Some(&answer) {
            let view: Run = typed(&answer)?;
            ctx.print(&output::run_tree(&view, &progress, output::now_ms(), all))?;
        }
        last = Some(answer);
        if done {
            return Ok(result);
        }
        actix_rt::time::sleep(interval).await;
    }
}

/// The exit status for a result: failure for errors, cancellation, abandonment and timeouts.
pub fn exit_for(result: &Json) -> Exit {
    match result.get("status").and_then(Json::as_str) {
        Some("value" | "pending") => Exit::Success,
        _ => Exit::Failure,
    }
}

/// Prints a result (`-o json`: the one object as received) and returns the exit status.
pub fn report_result(ctx: &Context, result: &Json) -> Result<Exit, CliError> {
    let exit = exit_for(result);
    if ctx.json() {
        ctx.print_json(result)?;
        return Ok(exit);
    }
    let parsed: RunResult = typed(result)?;
    match parsed.status.as_str() {
        "value" => ctx.print(&output::json_text(&parsed.value.unwrap_or(Json::Null)))?,
        "pending" => ctx.print(&format!(
            "run {} has no result yet (pending)",
            parsed.run_id
        ))?,
        "error" => match &parsed.error {
            Some(error) => eprintln!(
                "error: run {} failed: {}",
                parsed.run_id,
                output::error_text(error)
            ),
            None => eprintln!("error: run {} failed", parsed.run_id),
        },
        other => eprintln!("error: run {} ended: {other}", parsed.run_id),
    }
    Ok(exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_specs_name_a_run_a_step_or_an_attempt() {
        assert_eq!(result_query("R1").unwrap(), ("R1", String::new()));
        assert_eq!(result_query("R1:2").unwrap(), ("R1", "&step=2".into()));
        assert_eq!(
            result_query("R1:1:2").unwrap(),
            ("R1", "&step=1&attempt=2".into())
        );
        for bad in ["", ":1", "R1:", "R1:0", "R1:x", "R1:1:2:3"] {
            assert!(result_query(bad).is_err(), "{bad}");
        }
    }
}

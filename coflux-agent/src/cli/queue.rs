//! `coflux queue [--limit N]`: what waits in the environment's queue, and why.

use super::client::{segment, typed};
use super::{CliError, Context, Exit, output};
use coflux_core::protocol::http::{QueueItem, QueueList};

/// Runs `queue`.
pub async fn run(ctx: &Context, limit: usize) -> Result<Exit, CliError> {
    let path = format!(
        "{}/environments/{}/queue?limit={limit}",
        ctx.project_path()?,
        segment(ctx.environment()?)
    );
    let answer = ctx.client.get(&path).await?;
    if ctx.json() {
        ctx.print_json(&answer)?;
        return Ok(Exit::Success);
    }
    let list: QueueList = typed(&answer)?;
    let now = output::now_ms();
    let rows: Vec<Vec<String>> = list
        .executions
        .iter()
        .map(|q| {
            vec![
                q.execution_id.clone(),
                format!("{}/{}", q.module, q.target),
                output::duration(now - q.created_at),
                why(q),
            ]
        })
        .collect();
    let mut text = output::table(&["EXECUTION", "TARGET", "WAITING", "WHY"], &rows);
    if list.total > list.executions.len() {
        text.push_str(&format!(
            "\n({} of {} shown; use --limit)",
            list.executions.len(),
            list.total
        ));
    }
    ctx.print(&text)?;
    Ok(Exit::Success)
}

/// The reason in words.
fn why(q: &QueueItem) -> String {
    match q.reason.as_str() {
        "paused" => "the environment is paused".into(),
        "delayed" => match q.until {
            Some(until) => format!("delayed until {}", output::datetime(until)),
            None => "delayed".into(),
        },
        "no_worker" => "no connected agent hosts it".into(),
        "requires_not_provided" => "no agent provides its requires (or accepts it)".into(),
        "concurrency_limit" => match q.limit {
            Some(max) => format!("concurrency limit ({max}) reached"),
            None => "concurrency limit reached".into(),
        },
        "workers_busy" => "every agent that can run it is busy".into(),
        other => other.to_owned(),
    }
}

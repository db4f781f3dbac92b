//! `coflux sessions list`: the sessions of the project's agents.

use super::args::SessionsCommand;
use super::client::{segment, typed};
use super::{CliError, Context, Exit, output};
use coflux_core::protocol::http::SessionList;

/// Runs a `sessions` command.
pub async fn run(ctx: &Context, command: SessionsCommand) -> Result<Exit, CliError> {
    let SessionsCommand::List = command;
    let mut path = format!("{}/sessions", ctx.project_path()?);
    if let Some(environment) = &ctx.global.environment {
        path.push_str(&format!("?environment={}", segment(environment)));
    }
    let answer = ctx.client.get(&path).await?;
    if ctx.json() {
        return ctx.print_json(&answer).map(|()| Exit::Success);
    }
    let list: SessionList = typed(&answer)?;
    let rows: Vec<Vec<String>> = list
        .sessions
        .into_iter()
        .map(|s| {
            let state = match (s.connected, s.draining) {
                (_, true) => "draining",
                (true, false) => "connected",
                (false, false) => "disconnected",
            };
            let provides: Vec<String> = s
                .provides
                .iter()
                .map(|(key, values)| format!("{key}:{}", values.join(",")))
                .collect();
            vec![
                s.environment,
                s.worker.to_string(),
                state.to_owned(),
                output::datetime(s.opened_at),
                format!("{}/{}", s.running, s.capacity),
                s.targets.to_string(),
                if provides.is_empty() {
                    "-".to_owned()
                } else {
                    provides.join(" ")
                },
            ]
        })
        .collect();
    ctx.print(&output::table(
        &[
            "ENVIRONMENT",
            "WORKER",
            "STATE",
            "SINCE (UTC)",
            "RUNNING",
            "TARGETS",
            "PROVIDES",
        ],
        &rows,
    ))?;
    Ok(Exit::Success)
}

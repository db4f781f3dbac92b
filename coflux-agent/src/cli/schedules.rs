//! `coflux schedules create MODULE/TARGET CRON [ARGS...] | list | delete ID`.

use serde_json::{Value as Json, json};

use super::args::SchedulesCommand;
use super::client::segment;
use super::submit::{parse_arguments, split_target};
use super::{CliError, Context, Exit, output};

/// Runs a `schedules` command.
pub async fn run(ctx: &Context, command: SchedulesCommand) -> Result<Exit, CliError> {
    match command {
        SchedulesCommand::Create {
            target,
            cron,
            arguments,
        } => {
            let (module, name) = split_target(&target)?;
            let arguments = parse_arguments(&arguments)?;
            let path = format!(
                "{}/environments/{}/schedules",
                ctx.project_path()?,
                segment(ctx.environment()?)
            );
            let body =
                json!({"module": module, "target": name, "cron": cron, "arguments": arguments});
            let answer = ctx.client.post(&path, &body).await?;
            if ctx.json() {
                ctx.print_json(&answer)?;
            } else {
                ctx.print(&format!(
                    "schedule {} starts {target} at '{cron}' (next {} UTC)",
                    answer["id"],
                    answer["next_at"]
                        .as_i64()
                        .map_or_else(|| "never".to_string(), output::datetime)
                ))?;
            }
        }
        SchedulesCommand::List => {
            let answer = ctx
                .client
                .get(&format!("{}/schedules", ctx.project_path()?))
                .await?;
            if ctx.json() {
                ctx.print_json(&answer)?;
            } else {
                let rows: Vec<Vec<String>> = answer["schedules"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(row)
                    .collect();
                ctx.print(&output::table(
                    &[
                        "ID",
                        "ENVIRONMENT",
                        "WORKFLOW",
                        "CRON",
                        "NEXT (UTC)",
                        "MISSED",
                    ],
                    &rows,
                ))?;
            }
        }
        SchedulesCommand::Delete { id } => {
            let answer = ctx
                .client
                .delete(&format!("{}/schedules/{id}", ctx.project_path()?))
                .await?;
            if ctx.json() {
                ctx.print_json(&answer)?;
            } else {
                ctx.print(&format!("schedule {id} removed"))?;
            }
        }
    }
    Ok(Exit::Success)
}

fn row(s: &Json) -> Vec<String> {
    let text = |v: &Json| v.as_str().unwrap_or_default().to_string();
    vec![
        s["id"].to_string(),
        text(&s["environment"]),
        format!("{}/{}", text(&s["module"]), text(&s["target"])),
        text(&s["cron"]),
        s["next_at"]
            .as_i64()
            .map_or_else(|| "-".to_string(), output::datetime),
        s["missed"].to_string(),
    ]
}

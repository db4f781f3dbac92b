//! `coflux schedules create MODULE/TARGET CRON [ARGS...] | list | delete ID`.

use coflux_core::protocol::http::{CreateSchedule, ScheduleItem, ScheduleList};

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
            let body = CreateSchedule {
                module: module.to_owned(),
                target: name.to_owned(),
                cron: cron.clone(),
                arguments,
            };
            let answer = ctx.client.post(&path, &body).await?;
            ctx.show(&answer, |schedule: ScheduleItem| {
                format!(
                    "schedule {} starts {target} at '{cron}' (next {} UTC)",
                    schedule.id,
                    schedule
                        .next_at
                        .map_or_else(|| "never".to_string(), output::datetime)
                )
            })?;
        }
        SchedulesCommand::List => {
            let answer = ctx
                .client
                .get(&format!("{}/schedules", ctx.project_path()?))
                .await?;
            ctx.show(&answer, |list: ScheduleList| {
                let rows: Vec<Vec<String>> = list.schedules.iter().map(row).collect();
                output::table(
                    &[
                        "ID",
                        "ENVIRONMENT",
                        "WORKFLOW",
                        "CRON",
                        "NEXT (UTC)",
                        "MISSED",
                    ],
                    &rows,
                )
            })?;
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

fn row(s: &ScheduleItem) -> Vec<String> {
    vec![
        s.id.to_string(),
        s.environment.clone(),
        format!("{}/{}", s.module, s.target),
        s.cron.clone(),
        s.next_at.map_or_else(|| "-".to_string(), output::datetime),
        s.missed.to_string(),
    ]
}

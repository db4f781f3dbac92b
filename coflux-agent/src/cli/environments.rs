//! `coflux environments create NAME [--parent NAME] | list | update NAME --parent P|--no-parent
//! | pause NAME | resume NAME | archive NAME`.

use super::args::EnvironmentsCommand;
use super::client::segment;
use super::{CliError, Context, Exit, output};
use coflux_core::protocol::http::{
    CreateEnvironment, Empty, EnvironmentItem, EnvironmentList, UpdateEnvironment,
};

/// Runs an `environments` command.
pub async fn run(ctx: &Context, command: EnvironmentsCommand) -> Result<Exit, CliError> {
    let base = format!("{}/environments", ctx.project_path()?);
    let (answer, verb) = match command {
        EnvironmentsCommand::List => {
            let answer = ctx.client.get(&base).await?;
            ctx.show(&answer, |list: EnvironmentList| {
                let rows: Vec<Vec<String>> = list
                    .environments
                    .into_iter()
                    .map(|e| {
                        vec![
                            e.name,
                            e.state,
                            e.parent.unwrap_or_else(|| "-".into()),
                            output::datetime(e.created_at),
                        ]
                    })
                    .collect();
                output::table(&["NAME", "STATE", "PARENT", "CREATED (UTC)"], &rows)
            })?;
            return Ok(Exit::Success);
        }
        EnvironmentsCommand::Create { name, parent } => (
            ctx.client
                .post(&base, &CreateEnvironment { name, parent })
                .await?,
            "created",
        ),
        EnvironmentsCommand::Update {
            name,
            parent,
            no_parent,
        } => {
            let body = UpdateEnvironment {
                parent: Some(parent.filter(|_| !no_parent)),
            };
            let path = format!("{base}/{}", segment(&name));
            (ctx.client.patch(&path, &body).await?, "updated")
        }
        EnvironmentsCommand::Pause { name } => {
            (action(ctx, &base, &name, "pause").await?, "paused")
        }
        EnvironmentsCommand::Resume { name } => {
            (action(ctx, &base, &name, "resume").await?, "resumed")
        }
        EnvironmentsCommand::Archive { name } => {
            (action(ctx, &base, &name, "archive").await?, "archived")
        }
    };
    ctx.show(&answer, |env: EnvironmentItem| {
        let parent = env
            .parent
            .map(|p| format!(" (parent '{p}')"))
            .unwrap_or_default();
        format!("environment '{}' {verb}{parent}", env.name)
    })?;
    Ok(Exit::Success)
}

async fn action(
    ctx: &Context,
    base: &str,
    name: &str,
    action: &str,
) -> Result<serde_json::Value, CliError> {
    ctx.client
        .post(&format!("{base}/{}/{action}", segment(name)), &Empty {})
        .await
}

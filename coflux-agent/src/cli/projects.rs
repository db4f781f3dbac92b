//! `coflux projects create NAME | list`.

use super::args::ProjectsCommand;
use super::{CliError, Context, Exit, output};
use coflux_core::protocol::http::{CreateProject, ProjectItem, ProjectList};

/// Runs a `projects` command.
pub async fn run(ctx: &Context, command: ProjectsCommand) -> Result<Exit, CliError> {
    match command {
        ProjectsCommand::Create { name } => {
            let created = ctx
                .client
                .post("/api/projects", &CreateProject { name })
                .await?;
            ctx.show(&created, |created: ProjectItem| {
                format!("project '{}' created", created.name)
            })?;
        }
        ProjectsCommand::List => {
            let answer = ctx.client.get("/api/projects").await?;
            ctx.show(&answer, |list: ProjectList| {
                let rows: Vec<Vec<String>> =
                    list.projects.into_iter().map(|p| vec![p.name]).collect();
                output::table(&["NAME"], &rows)
            })?;
        }
    }
    Ok(Exit::Success)
}

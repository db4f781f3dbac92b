//! `coflux projects create NAME | list`.

use super::args::ProjectsCommand;
use super::client::typed;
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
            if ctx.json() {
                ctx.print_json(&created)?;
            } else {
                let created: ProjectItem = typed(&created)?;
                ctx.print(&format!("project '{}' created", created.name))?;
            }
        }
        ProjectsCommand::List => {
            let answer = ctx.client.get("/api/projects").await?;
            if ctx.json() {
                ctx.print_json(&answer)?;
            } else {
                let list: ProjectList = typed(&answer)?;
                let rows: Vec<Vec<String>> =
                    list.projects.into_iter().map(|p| vec![p.name]).collect();
                ctx.print(&output::table(&["NAME"], &rows))?;
            }
        }
    }
    Ok(Exit::Success)
}

//! `coflux projects create NAME | list`.

use serde_json::json;

use super::args::ProjectsCommand;
use super::client::typed;
use super::types::ProjectList;
use super::{CliError, Context, Exit, output};

/// Runs a `projects` command.
pub async fn run(ctx: &Context, command: ProjectsCommand) -> Result<Exit, CliError> {
    match command {
        ProjectsCommand::Create { name } => {
            let created = ctx
                .client
                .post("/api/projects", &json!({ "name": name }))
                .await?;
            if ctx.json() {
                ctx.print_json(&created)?;
            } else {
                let name = created["name"].as_str().unwrap_or(&name);
                ctx.print(&format!("project '{name}' created"))?;
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

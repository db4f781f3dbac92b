//! `coflux tokens create [--role R] [--environments PATTERN] [--expires DAYS] | list |
//! revoke ID` (needs a project, and an admin token).

use serde_json::{Value as Json, json};

use super::args::TokensCommand;
use super::client::segment;
use super::{CliError, Context, Exit, output};

/// Runs a `tokens` command.
pub async fn run(ctx: &Context, command: TokensCommand) -> Result<Exit, CliError> {
    let base = format!("{}/tokens", ctx.project_path()?);
    match command {
        TokensCommand::Create {
            role,
            environments,
            expires,
        } => {
            let body = json!({
                "role": role,
                "environments": environments,
                "expires_days": expires,
            });
            let created = ctx.client.post(&base, &body).await?;
            if ctx.json() {
                ctx.print_json(&created)?;
            } else {
                let token = created["token"].as_str().unwrap_or_default();
                ctx.print(&format!(
                    "{token}\n(token {} for project {}, role {}: store it now, it is not shown again)",
                    text(&created["id"]),
                    text(&created["project"]),
                    text(&created["role"]),
                ))?;
            }
        }
        TokensCommand::List => {
            let answer = ctx.client.get(&base).await?;
            if ctx.json() {
                ctx.print_json(&answer)?;
            } else {
                let rows: Vec<Vec<String>> = answer["tokens"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        let state = if t["revoked_at"].is_number() {
                            "revoked".to_string()
                        } else {
                            "active".to_string()
                        };
                        vec![
                            text(&t["id"]),
                            text(&t["role"]),
                            t["environments"].as_str().unwrap_or("*").to_string(),
                            state,
                            t["expires_at"]
                                .as_i64()
                                .map_or_else(|| "never".into(), output::datetime),
                        ]
                    })
                    .collect();
                ctx.print(&output::table(
                    &["ID", "ROLE", "ENVIRONMENTS", "STATE", "EXPIRES"],
                    &rows,
                ))?;
            }
        }
        TokensCommand::Revoke { id } => {
            let revoked = ctx
                .client
                .post(&format!("{base}/{}/revoke", segment(&id)), &json!({}))
                .await?;
            if ctx.json() {
                ctx.print_json(&revoked)?;
            } else {
                ctx.print(&format!("token {id} revoked"))?;
            }
        }
    }
    Ok(Exit::Success)
}

fn text(value: &Json) -> String {
    value.as_str().unwrap_or_default().to_string()
}

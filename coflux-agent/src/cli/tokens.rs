//! `coflux tokens create [--role R] [--environments PATTERN] [--expires DAYS] | list |
//! revoke ID` (needs a project, and an admin token).

use coflux_core::protocol::http::{CreateToken, CreatedToken, Empty, TokenList};

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
            let body = CreateToken {
                role,
                environments,
                expires_days: expires,
            };
            let created = ctx.client.post(&base, &body).await?;
            ctx.show(&created, |created: CreatedToken| {
                format!(
                    "{}\n(token {} for project {}, role {}: store it now, it is not shown again)",
                    created.token, created.info.id, created.info.project, created.info.role,
                )
            })?;
        }
        TokensCommand::List => {
            let answer = ctx.client.get(&base).await?;
            ctx.show(&answer, |list: TokenList| {
                let rows: Vec<Vec<String>> = list
                    .tokens
                    .into_iter()
                    .map(|t| {
                        let state = if t.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        };
                        vec![
                            t.id,
                            t.role,
                            t.environments.unwrap_or_else(|| "*".into()),
                            state.into(),
                            t.expires_at
                                .map_or_else(|| "never".into(), output::datetime),
                        ]
                    })
                    .collect();
                output::table(&["ID", "ROLE", "ENVIRONMENTS", "STATE", "EXPIRES"], &rows)
            })?;
        }
        TokensCommand::Revoke { id } => {
            let revoked = ctx
                .client
                .post(&format!("{base}/{}/revoke", segment(&id)), &Empty {})
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

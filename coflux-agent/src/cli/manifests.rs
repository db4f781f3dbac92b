//! `coflux manifests register FILE.json | inspect | archive MODULE | discover MODULE…`.

use coflux_core::model::TargetDefinition;
use coflux_core::protocol::http::{Empty, Manifests, Registered};
use serde_json::Value as Json;

use super::args::ManifestsCommand;
use super::client::{segment, typed};
use super::{CliError, Context, Exit, output};

/// Runs a `manifests` command.
pub async fn run(ctx: &Context, command: ManifestsCommand) -> Result<Exit, CliError> {
    if let ManifestsCommand::Discover {
        modules,
        adapter,
        directory,
    } = command
    {
        return discover(ctx, &modules, adapter, &directory).await;
    }
    let path = format!(
        "{}/environments/{}/manifests",
        ctx.project_path()?,
        segment(ctx.environment()?)
    );
    match command {
        ManifestsCommand::Register { file } => {
            let shown = file.display().to_string();
            let text = std::fs::read_to_string(&file).map_err(|source| CliError::File {
                path: shown.clone(),
                source,
            })?;
            let targets =
                parse_targets(&text).map_err(|e| CliError::Usage(format!("{shown}: {e}")))?;
            let answer = ctx.client.put(&path, &Manifests { targets }).await?;
            if ctx.json() {
                ctx.print_json(&answer)?;
            } else {
                let n = typed::<Registered>(&answer)?.registered;
                ctx.print(&format!(
                    "registered {n} target{} in '{}'",
                    if n == 1 { "" } else { "s" },
                    ctx.environment()?
                ))?;
            }
        }
        ManifestsCommand::Archive { module } => {
            let answer = ctx
                .client
                .post(
                    &format!(
                        "{}/environments/{}/modules/{}/archive",
                        ctx.project_path()?,
                        segment(ctx.environment()?),
                        segment(&module)
                    ),
                    &Empty {},
                )
                .await?;
            if ctx.json() {
                ctx.print_json(&answer)?;
            } else {
                ctx.print(&format!(
                    "archived module {module} in '{}'",
                    ctx.environment()?
                ))?;
            }
        }
        ManifestsCommand::Inspect => {
            let answer = ctx.client.get(&path).await?;
            if ctx.json() {
                ctx.print_json(&answer)?;
            } else {
                print_targets(ctx, &typed::<Manifests>(&answer)?.targets)?;
            }
        }
        ManifestsCommand::Discover { .. } => unreachable!("handled above"),
    }
    Ok(Exit::Success)
}

/// Prints targets as a table.
fn print_targets(ctx: &Context, targets: &[TargetDefinition]) -> Result<(), CliError> {
    let rows: Vec<Vec<String>> = targets
        .iter()
        .map(|t| {
            let params: Vec<&str> = t.parameters.iter().map(|p| p.name.as_str()).collect();
            vec![
                t.target.module.clone(),
                t.target.name.clone(),
                t.kind.as_str().to_owned(),
                params.join(", "),
            ]
        })
        .collect();
    ctx.print(&output::table(
        &["MODULE", "TARGET", "KIND", "PARAMETERS"],
        &rows,
    ))
}

/// `manifests discover`: runs the agent's discovery and prints the targets found.
async fn discover(
    ctx: &Context,
    modules: &[String],
    adapter: Option<String>,
    directory: &std::path::Path,
) -> Result<Exit, CliError> {
    let directory = directory.canonicalize().map_err(|source| CliError::File {
        path: directory.display().to_string(),
        source,
    })?;
    let explicit = adapter.map(|a| a.split_whitespace().map(str::to_owned).collect());
    let adapter = crate::executor::AdapterCommand::resolve(explicit, &directory);
    let targets = crate::executor::discover(&adapter, &directory, modules).await?;
    if ctx.json() {
        ctx.print(&output::json_text(
            &serde_json::to_value(Manifests { targets })
                .map_err(|e| CliError::Protocol(e.to_string()))?,
        ))?;
    } else {
        print_targets(ctx, &targets)?;
    }
    Ok(Exit::Success)
}

/// Reads target definitions: a JSON array, or an object with a `targets` array.
pub fn parse_targets(text: &str) -> Result<Vec<TargetDefinition>, serde_json::Error> {
    let json: Json = serde_json::from_str(text)?;
    let list = match json {
        Json::Object(mut map) if map.contains_key("targets") => {
            map.remove("targets").unwrap_or(Json::Null)
        }
        other => other,
    };
    serde_json::from_value(list)
}

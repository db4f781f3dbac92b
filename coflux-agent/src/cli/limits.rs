//! `coflux limits list | set MODULE/TARGET MAX | clear MODULE/TARGET`.

use serde_json::{Value as Json, json};

use super::args::LimitsCommand;
use super::client::segment;
use super::submit::split_target;
use super::{CliError, Context, Exit, output};

/// Runs a `limits` command.
pub async fn run(ctx: &Context, command: LimitsCommand) -> Result<Exit, CliError> {
    let base = format!(
        "{}/environments/{}/limits",
        ctx.project_path()?,
        segment(ctx.environment()?)
    );
    let (target, max) = match command {
        LimitsCommand::List => {
            let answer = ctx.client.get(&base).await?;
            if ctx.json() {
                ctx.print_json(&answer)?;
            } else {
                let rows: Vec<Vec<String>> = answer["limits"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|l| vec![text(&l["module"]), text(&l["target"]), l["max"].to_string()])
                    .collect();
                ctx.print(&output::table(&["MODULE", "TARGET", "MAX"], &rows))?;
            }
            return Ok(Exit::Success);
        }
        LimitsCommand::Set { target, max } => (target, Some(max)),
        LimitsCommand::Clear { target } => (target, None),
    };
    let (module, name) = split_target(&target)?;
    let path = format!("{base}/{}/{}", segment(module), segment(name));
    let answer = ctx.client.put(&path, &json!({ "max": max })).await?;
    if ctx.json() {
        ctx.print_json(&answer)?;
    } else {
        let env = ctx.environment()?;
        ctx.print(&match max {
            Some(max) => format!("at most {max} of {target} run at once in '{env}'"),
            None => format!("no limit on {target} in '{env}'"),
        })?;
    }
    Ok(Exit::Success)
}

fn text(value: &Json) -> String {
    value.as_str().unwrap_or_default().to_string()
}

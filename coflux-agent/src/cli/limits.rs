//! `coflux limits list | set MODULE/TARGET MAX | clear MODULE/TARGET`.

use coflux_core::protocol::http::{LimitList, SetLimit};

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
            ctx.show(&answer, |list: LimitList| {
                let rows: Vec<Vec<String>> = list
                    .limits
                    .into_iter()
                    .map(|l| {
                        let max = l.max.map_or_else(|| "null".into(), |m| m.to_string());
                        vec![l.module, l.target, max]
                    })
                    .collect();
                output::table(&["MODULE", "TARGET", "MAX"], &rows)
            })?;
            return Ok(Exit::Success);
        }
        LimitsCommand::Set { target, max } => (target, Some(max)),
        LimitsCommand::Clear { target } => (target, None),
    };
    let (module, name) = split_target(&target)?;
    let path = format!("{base}/{}/{}", segment(module), segment(name));
    let answer = ctx.client.put(&path, &SetLimit { max }).await?;
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

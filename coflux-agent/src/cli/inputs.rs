//! `coflux inputs list | inspect ID | respond ID JSON | dismiss ID`: the questions executions
//! ask (`cf.Prompt`), answered or dismissed from the command line.

use clap::Subcommand;
use coflux_core::protocol::http::{InputItem, InputList, RespondInput};

use super::client::{segment, typed};
use super::{CliError, Context, Exit, output};

/// `coflux inputs ...`.
#[derive(Debug, Subcommand)]
pub enum InputsCommand {
    /// List the pending inputs, oldest first.
    List,
    /// Show an input: its prompt, schema and state.
    Inspect {
        /// The input id (like R1:I1).
        id: String,
    },
    /// Answer an input with a JSON value (checked against its schema).
    Respond {
        /// The input id.
        id: String,
        /// The answer, as JSON (e.g. '{"approved": true}').
        value: String,
    },
    /// Dismiss an input: the waiting execution gets `InputDismissed`.
    Dismiss {
        /// The input id.
        id: String,
    },
}

/// Runs an `inputs` command.
pub async fn run(ctx: &Context, command: InputsCommand) -> Result<Exit, CliError> {
    let base = format!("{}/inputs", ctx.project_path()?);
    let answer = match &command {
        InputsCommand::List => ctx.client.get(&base).await?,
        InputsCommand::Inspect { id } => ctx.client.get(&format!("{base}/{}", segment(id))).await?,
        InputsCommand::Respond { id, value } => {
            let value = serde_json::from_str(value).map_err(|e| {
                CliError::Usage(format!("the answer must be JSON (e.g. '\"yes\"'): {e}"))
            })?;
            let path = format!("{base}/{}/respond", segment(id));
            ctx.client.post(&path, &RespondInput { value }).await?
        }
        InputsCommand::Dismiss { id } => {
            let path = format!("{base}/{}/dismiss", segment(id));
            ctx.client.post(&path, &serde_json::json!({})).await?
        }
    };
    if ctx.json() {
        ctx.print_json(&answer)?;
        return Ok(Exit::Success);
    }
    match command {
        InputsCommand::List => {
            let list: InputList = typed(&answer)?;
            let rows: Vec<Vec<String>> = list
                .inputs
                .iter()
                .map(|i| {
                    vec![
                        i.id.clone(),
                        i.execution_id.clone(),
                        output::datetime(i.created_at),
                        i.title.clone().unwrap_or_else(|| first_line(&i.template)),
                    ]
                })
                .collect();
            ctx.print(&output::table(
                &["ID", "EXECUTION", "ASKED (UTC)", "TITLE"],
                &rows,
            ))?;
        }
        InputsCommand::Inspect { .. } => ctx.print(&describe(&typed(&answer)?))?,
        InputsCommand::Respond { id, .. } => ctx.print(&format!("input {id} answered"))?,
        InputsCommand::Dismiss { id } => ctx.print(&format!("input {id} dismissed"))?,
    }
    Ok(Exit::Success)
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

fn describe(input: &InputItem) -> String {
    let mut lines = vec![
        format!("input {} ({})", input.id, input.status),
        format!(
            "asked by {} at {} UTC",
            input.execution_id,
            output::datetime(input.created_at)
        ),
    ];
    if let Some(title) = &input.title {
        lines.push(format!("title: {title}"));
    }
    lines.push(format!("prompt: {}", input.template));
    if let Some(placeholders) = &input.placeholders {
        lines.push(format!("placeholders: {placeholders}"));
    }
    if let Some(schema) = &input.schema {
        lines.push(format!("schema: {schema}"));
    }
    if let Some(initial) = &input.initial {
        lines.push(format!("initial: {initial}"));
    }
    if let Some(value) = &input.value {
        lines.push(format!("answer: {value}"));
    }
    lines.join("\n")
}

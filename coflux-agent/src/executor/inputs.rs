//! Inputs (`cf.Prompt`): an execution asks for one (`submit_input`), then waits for it like for
//! an execution (`select` on an `input` handle), or cancels it.

use std::rc::Rc;

use coflux_core::model::{
    ExecutionId, InputId, InputOp, InputRecord, InputSpec, InputState, Value,
};
use coflux_core::protocol::executor::{ExecutionParams, ResponseError, SelectStatus};
use serde_json::{Value as Json, json};

use super::context::ExecutionContext;
use super::host::{ExecutorHost, host_error};

/// Answers `submit_input`: `{input_id}` of the run's input with the prompt's key (new or not).
pub(crate) async fn submit(
    host: &Rc<dyn ExecutorHost>,
    context: &ExecutionContext,
    params: ExecutionParams,
) -> Result<Json, ResponseError> {
    let spec = spec(params)?;
    let op = InputOp::Submit {
        execution: context.execution,
        spec,
    };
    let record = host
        .input(context.execution, op)
        .await
        .map_err(|e| host_error("input_error", e))?;
    Ok(json!({ "input_id": record.id.to_string() }))
}

fn invalid(message: impl Into<String>) -> ResponseError {
    ResponseError::new("invalid_input", message)
}

/// The prompt from `submit_input`'s params (the schema comes as JSON text).
fn spec(params: ExecutionParams) -> Result<InputSpec, ResponseError> {
    let mut rest = params.rest;
    let text =
        |rest: &mut std::collections::BTreeMap<String, Json>, name: &str| match rest.remove(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid(format!("{name} must be a string"))),
        };
    let template = text(&mut rest, "template")?.ok_or_else(|| invalid("template is missing"))?;
    let schema = match text(&mut rest, "schema")? {
        Some(s) => Some(
            serde_json::from_str(&s).map_err(|e| invalid(format!("schema is not JSON: {e}")))?,
        ),
        None => None,
    };
    let key = text(&mut rest, "key")?.unwrap_or_else(|| template.clone());
    let title = text(&mut rest, "title")?;
    let actions = match rest.remove("actions") {
        None | Some(Json::Null) => None,
        Some(value) => Some(
            serde_json::from_value(value).map_err(|_| invalid("actions must be two strings"))?,
        ),
    };
    let mut take = |name: &str| rest.remove(name).filter(|v| !v.is_null());
    Ok(InputSpec {
        placeholders: take("placeholders"),
        initial: take("initial"),
        requires: take("requires"),
        template,
        schema,
        key,
        title,
        actions,
    })
}

/// Parses an `input` handle's id.
pub(crate) fn parse(id: &str) -> Result<InputId, ResponseError> {
    id.parse().map_err(|e: coflux_core::model::IdParseError| {
        ResponseError::new("invalid_handle", e.to_string())
    })
}

/// Waits until the input is answered, dismissed or cancelled.
pub(crate) async fn wait(
    host: Rc<dyn ExecutorHost>,
    from: ExecutionId,
    input: InputId,
) -> Result<InputRecord, super::host::HostError> {
    host.input(from, InputOp::Wait { input }).await
}

/// Cancels a pending input (a final one stays as it is).
pub(crate) async fn cancel(
    host: &Rc<dyn ExecutorHost>,
    from: ExecutionId,
    input: InputId,
) -> Result<(), ResponseError> {
    host.input(from, InputOp::Cancel { input })
        .await
        .map(|_| ())
        .map_err(|e| host_error("cancel_error", e))
}

/// A final input as a `select` outcome: its status and value.
pub(crate) fn outcome(
    record: &InputRecord,
) -> Result<(SelectStatus, Option<Value>), ResponseError> {
    match &record.state {
        InputState::Responded { value, .. } => {
            Ok((SelectStatus::Ok, Some(Value::raw(value.clone()))))
        }
        InputState::Dismissed { .. } => Ok((SelectStatus::Dismissed, None)),
        InputState::Cancelled { .. } => Ok((SelectStatus::Cancelled, None)),
        InputState::Pending => Err(ResponseError::new(
            "select_error",
            format!("input {} is still pending", record.id),
        )),
    }
}

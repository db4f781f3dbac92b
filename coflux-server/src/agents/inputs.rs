//! An agent's input operations (`cf.Prompt`): its executions ask, wait and cancel; only people
//! (through the API) answer or dismiss.

use coflux_core::Project;
use coflux_core::model::{ExecutionId, InputOp};
use coflux_core::protocol::agent::{Json, ReplyBody, WireError};

use super::wire::{api_error, wire_error};

/// Answers an `Input` request of `execution`.
pub(super) async fn answer(
    project: &Project,
    execution: ExecutionId,
    op: Json,
) -> Result<ReplyBody, WireError> {
    let op: InputOp = op
        .decode()
        .map_err(|e| wire_error("invalid_input", format!("invalid input operation: {e}")))?;
    match &op {
        InputOp::Submit {
            execution: asker, ..
        } if *asker != execution => {
            return Err(wire_error(
                "invalid_input",
                "the input operation names another execution",
            ));
        }
        InputOp::Respond { .. } | InputOp::Dismiss { .. } => {
            return Err(wire_error(
                "invalid_input",
                "inputs are answered through the API",
            ));
        }
        _ => {}
    }
    let record = project.input(op).await.map_err(api_error)?;
    Ok(ReplyBody::Input(Json::encode(&record)))
}

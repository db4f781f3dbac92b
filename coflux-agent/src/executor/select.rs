//! `select`: races waits on several executions; the first final result wins.

use std::rc::Rc;
use std::time::Duration;

use coflux_core::model::ExecutionResult;
use coflux_core::protocol::executor::{
    ResponseError, Select, SelectResult, SelectStatus, WireError,
};
use futures::FutureExt;
use serde_json::Value as Json;

use super::host::ExecutorHost;
use super::process::ExecutionContext;
use super::requests::{execution_handles, host_error};
use super::values;

/// Answers a `select`: `null` if nothing resolved in time (or the caller may be suspended
/// without waiting, which is not implemented yet), else the winner's index and outcome.
pub(crate) async fn select(
    host: &Rc<dyn ExecutorHost>,
    context: &ExecutionContext,
    params: Select,
) -> Result<Json, ResponseError> {
    let executions = execution_handles(&params.handles)?;
    if executions.is_empty() {
        return Err(ResponseError::new(
            "select_error",
            "select needs at least one handle",
        ));
    }
    if params.suspend && params.timeout_ms == Some(0) {
        // The server would suspend the caller here; until it can, nothing resolved.
        return Ok(Json::Null);
    }
    let from = context.execution;
    let waits = executions.iter().enumerate().map(|(index, execution)| {
        host.wait(*execution, from)
            .map(move |r| (index, r))
            .boxed_local()
    });
    let race = futures::future::select_all(waits);
    let ((winner, result), _, _) = match params.timeout_ms {
        Some(ms) => match tokio::time::timeout(Duration::from_millis(ms), race).await {
            Ok(resolved) => resolved,
            Err(_) => return Ok(Json::Null),
        },
        None => race.await,
    };
    let result = result.map_err(|e| host_error("select_error", e))?;
    if params.cancel_remaining {
        for (index, execution) in executions.iter().enumerate() {
            if index != winner {
                let cancel = host.cancel(*execution, from);
                let execution = *execution;
                actix_rt::spawn(async move {
                    if let Err(error) = cancel.await {
                        tracing::warn!(%execution, %error, "could not cancel a select loser");
                    }
                });
            }
        }
    }
    let answer = answer(host, context, winner, result).await?;
    Ok(serde_json::to_value(answer).unwrap_or(Json::Null))
}

async fn answer(
    host: &Rc<dyn ExecutorHost>,
    context: &ExecutionContext,
    winner: usize,
    result: ExecutionResult,
) -> Result<SelectResult, ResponseError> {
    let status = SelectStatus::of(&result).ok_or_else(|| {
        ResponseError::new(
            "select_error",
            format!("the wait ended on a non-final result ({:?})", result.kind()),
        )
    })?;
    let (value, error) = match &result {
        ExecutionResult::Value { value } => {
            let value = values::to_wire(host, value, &context.scratch)
                .await
                .map_err(|e| host_error("download_error", e))?;
            (Some(value), None)
        }
        ExecutionResult::Error { error, .. } => (None, Some(WireError::from_error_info(error))),
        _ => (None, None),
    };
    Ok(SelectResult {
        winner,
        status,
        value,
        error,
    })
}

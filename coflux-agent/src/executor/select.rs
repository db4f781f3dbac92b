//! `select`: races waits on several executions; the first final result wins.

use std::rc::Rc;
use std::time::Duration;

use coflux_core::model::{Dependencies, ExecutionResult};
use coflux_core::protocol::executor::{
    ResponseError, Select, SelectResult, SelectStatus, WireError,
};
use futures::FutureExt;
use serde_json::Value as Json;

use super::ending::Suspension;
use super::host::{ExecutorHost, WaitChange};
use super::process::ExecutionContext;
use super::requests::{execution_handles, host_error};
use super::values;

/// How long a `select` that may suspend its caller at once (`suspend` with a zero timeout)
/// waits for the server to say whether a handle is already resolved.
const READY_CHECK: Duration = Duration::from_millis(200);

/// Answers a `select`: the winner's index and outcome, or `null` if nothing resolved in time.
/// When the caller may be suspended (`suspend`) and the time runs out, it is suspended: its
/// step runs again as soon as one of the handles has finished (the process is stopped).
pub(crate) async fn select(
    host: &Rc<dyn ExecutorHost>,
    context: &ExecutionContext,
    params: Select,
) -> Result<Json, ResponseError> {
    if let [handle] = &params.handles[..]
        && handle.kind == "stream"
    {
        return context.streams.available(host, handle).await;
    }
    let executions = execution_handles(&params.handles)?;
    if executions.is_empty() {
        return Err(ResponseError::new(
            "select_error",
            "select needs at least one handle",
        ));
    }
    let from = context.execution;
    let waits = executions.iter().enumerate().map(|(index, execution)| {
        host.wait(*execution, from)
            .map(move |r| (index, r))
            .boxed_local()
    });
    let race = futures::future::select_all(waits);
    // While it waits, the execution lends its slot (and tells the server it is waiting), so
    // the children it waits for can run even when every slot is taken by waiting parents.
    let loan = Loan::take(host, context);
    let limit = match params.timeout_ms {
        Some(0) if params.suspend => Some(READY_CHECK),
        Some(ms) => Some(Duration::from_millis(ms)),
        None => None,
    };
    let outcome = match limit {
        Some(limit) => tokio::time::timeout(limit, race).await.ok(),
        None => Some(race.await),
    };
    drop(loan);
    let Some(((winner, result), _, _)) = outcome else {
        if params.suspend {
            context.suspend(Suspension {
                execute_after: None,
                dependencies: Dependencies::any(executions),
            });
        }
        return Ok(Json::Null);
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

/// A slot lent while an execution waits; given back when dropped (also if the wait is
/// abandoned because the execution ended).
struct Loan {
    host: Rc<dyn ExecutorHost>,
    lender: super::pool::SlotLender,
    execution: coflux_core::model::ExecutionId,
}

impl Loan {
    fn take(host: &Rc<dyn ExecutorHost>, context: &ExecutionContext) -> Option<Self> {
        let spare = context.lender.has_free_slot();
        if !context.lender.lend() {
            return None;
        }
        host.waiting(context.execution, WaitChange::Started { spare });
        Some(Self {
            host: Rc::clone(host),
            lender: context.lender.clone(),
            execution: context.execution,
        })
    }
}

impl Drop for Loan {
    fn drop(&mut self) {
        self.lender.reclaim();
        self.host.waiting(self.execution, WaitChange::Stopped);
    }
}

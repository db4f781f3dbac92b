//! `select`: races waits on several executions and inputs; the first final one wins.

use std::rc::Rc;
use std::time::Duration;

use coflux_core::model::{Dependencies, ExecutionId, ExecutionResult, InputRecord, Value};
use coflux_core::protocol::executor::{
    Handle, ResponseError, Select, SelectResult, SelectStatus, WireError,
};
use futures::FutureExt;
use serde_json::Value as Json;

use super::context::ExecutionContext;
use super::ending::Suspension;
use super::host::{ExecutorHost, WaitChange, host_error};
use super::inputs;
use super::values;

/// What a `select` or `cancel` handle names.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Waited {
    /// An execution.
    Execution(ExecutionId),
    /// An input.
    Input(coflux_core::model::InputId),
}

/// Parses execution and input handles (streams are handled before this).
pub(crate) fn parse_handles(handles: &[Handle]) -> Result<Vec<Waited>, ResponseError> {
    handles
        .iter()
        .map(|handle| match handle.kind.as_str() {
            "execution" => handle
                .id
                .parse::<ExecutionId>()
                .map(Waited::Execution)
                .map_err(|e| ResponseError::new("invalid_handle", e.to_string())),
            "input" => inputs::parse(&handle.id).map(Waited::Input),
            other => Err(ResponseError::new(
                "not_supported",
                format!("{other} handles are not supported here"),
            )),
        })
        .collect()
}

/// How long a `select` that may suspend its caller at once (`suspend` with a zero timeout)
/// waits for the server to say whether a handle is already resolved.
const READY_CHECK: Duration = Duration::from_millis(200);

/// How long an execution that cannot lend its slot waits in its process before it is
/// suspended (a child that is about to finish is not worth a replay).
const PARK_GRACE: Duration = Duration::from_millis(50);

/// Whether a `select` may end in a suspension of its caller: the caller allows it, it waits
/// for executions and inputs of its own run only (a suspended step is held until one of them
/// is final; an input of another run is waited for in the process), and it has no stream open
/// (a replay would not continue it).
fn can_suspend(context: &ExecutionContext, params: &Select, handles: &[Waited]) -> bool {
    may_resume_after(context, params, handles) && !context.streams.busy()
}

/// Whether the caller allows a suspension and its step can be held until one of `handles` is
/// final (executions, and inputs of its own run).
fn may_resume_after(context: &ExecutionContext, params: &Select, handles: &[Waited]) -> bool {
    let run = context.execution.run();
    params.suspend
        && handles.iter().all(|h| match h {
            Waited::Execution(_) => true,
            Waited::Input(input) => input.run == run,
        })
}

/// What a suspended caller's step waits for before it runs again: the first of its handles.
fn dependencies(handles: &[Waited]) -> Dependencies {
    let mut executions = Vec::new();
    let mut inputs = Vec::new();
    for handle in handles {
        match *handle {
            Waited::Execution(execution) => executions.push(execution),
            Waited::Input(input) => inputs.push(input),
        }
    }
    Dependencies::any_of(executions, inputs)
}

/// Answers a `select`: the winner's index and outcome, or `null` if nothing resolved in time.
/// When the caller may be suspended (`suspend`) and the time runs out, it is suspended: its
/// step runs again as soon as one of the handles has finished (the process is stopped). So is
/// one that cannot lend its slot and is not answered within [`PARK_GRACE`], and one waiting
/// without a time limit for an input of its run that is still pending after [`READY_CHECK`]
/// (a person may take days to answer).
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
    let handles = parse_handles(&params.handles)?;
    if handles.is_empty() {
        return Err(ResponseError::new(
            "select_error",
            "select needs at least one handle",
        ));
    }
    let from = context.execution;
    let waits = handles
        .iter()
        .enumerate()
        .map(|(index, handle)| match *handle {
            Waited::Execution(execution) => host
                .wait(execution, from)
                .map(move |r| (index, r.map(Resolved::Execution)))
                .boxed_local(),
            Waited::Input(input) => inputs::wait(Rc::clone(host), from, input)
                .map(move |r| (index, r.map(Resolved::Input)))
                .boxed_local(),
        });
    let race = futures::future::select_all(waits);
    // While it waits, the execution lends its slot (and tells the server it is waiting), so
    // the children it waits for can run even when every slot is taken by waiting parents.
    let loan = Loan::take(host, context);
    let suspendable = can_suspend(context, &params, &handles);
    // An input waits for a person: unless a `suspense` scope gives a time to wait, a caller
    // that may be suspended is suspended once the input is known not to be answered yet.
    let asks_person = suspendable
        && params.timeout_ms.is_none()
        && handles.iter().any(|h| matches!(h, Waited::Input(_)));
    let limit = match params.timeout_ms {
        Some(0) if params.suspend => Some(READY_CHECK),
        Some(ms) => Some(Duration::from_millis(ms)),
        None if asks_person => Some(READY_CHECK),
        None => None,
    };
    // When it cannot lend (as many executions as the pool allows already wait in their
    // processes), holding its slot could leave none for the children they all wait for: unless
    // the handles finish soon, it is suspended instead (its process ends; the step runs again
    // once one has finished, and its repeated calls get the same children).
    let parked = loan.is_none() && suspendable;
    let limit = match limit {
        _ if !parked => limit,
        Some(limit) => Some(limit.min(PARK_GRACE)),
        None => Some(PARK_GRACE),
    };
    let outcome = match limit {
        Some(limit) => tokio::time::timeout(limit, race).await.ok(),
        None => Some(race.await),
    };
    drop(loan);
    let Some(((winner, result), _, _)) = outcome else {
        if may_resume_after(context, &params, &handles) {
            context.suspend(Suspension {
                execute_after: None,
                dependencies: dependencies(&handles),
            });
            if parked || asks_person {
                // Not answered: the process is stopped (a `null` would raise a `TimeoutError`
                // that the code did not ask for, and it could act on it meanwhile).
                tracing::debug!(execution = %from, parked, "waiting without a deadline: suspended");
                return std::future::pending().await;
            }
        }
        return Ok(Json::Null);
    };
    let result = result.map_err(|e| host_error("select_error", e))?;
    if params.cancel_remaining {
        for (index, handle) in handles.iter().enumerate() {
            if index == winner {
                continue;
            }
            match *handle {
                Waited::Execution(execution) => {
                    let cancel = host.cancel(execution, from);
                    actix_rt::spawn(async move {
                        if let Err(error) = cancel.await {
                            tracing::warn!(%execution, %error, "could not cancel a select loser");
                        }
                    });
                }
                // As in Coflux, inputs are left pending (`Input.cancel()` cancels one).
                Waited::Input(_) => {}
            }
        }
    }
    let answer = answer(host, context, winner, result).await?;
    Ok(serde_json::to_value(answer).unwrap_or(Json::Null))
}

/// `child`'s final result as a `select` on it alone answers it, once the host has it pushed
/// (see [`ExecutorHost::pushed_result`]); `None` when it has none.
pub(crate) async fn pushed_answer(
    host: &Rc<dyn ExecutorHost>,
    context: &ExecutionContext,
    child: ExecutionId,
) -> Option<SelectResult> {
    let result = host.pushed_result(child)?.await?;
    answer(host, context, 0, Resolved::Execution(result))
        .await
        .ok()
}

/// What a waited-for handle ended with.
enum Resolved {
    Execution(ExecutionResult),
    Input(InputRecord),
}

async fn answer(
    host: &Rc<dyn ExecutorHost>,
    context: &ExecutionContext,
    winner: usize,
    resolved: Resolved,
) -> Result<SelectResult, ResponseError> {
    let result = match resolved {
        Resolved::Execution(result) => result,
        Resolved::Input(record) => {
            let (status, value) = inputs::outcome(&record)?;
            let value = match value {
                Some(value) => Some(wire(host, context, &value).await?),
                None => None,
            };
            return Ok(SelectResult {
                winner,
                status,
                value,
                error: None,
            });
        }
    };
    let status = SelectStatus::of(&result).ok_or_else(|| {
        ResponseError::new(
            "select_error",
            format!("the wait ended on a non-final result ({:?})", result.kind()),
        )
    })?;
    let (value, error) = match &result {
        ExecutionResult::Value { value } => (Some(wire(host, context, value).await?), None),
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

async fn wire(
    host: &Rc<dyn ExecutorHost>,
    context: &ExecutionContext,
    value: &Value,
) -> Result<coflux_core::protocol::executor::WireValue, ResponseError> {
    values::to_wire(host, value, &context.scratch)
        .await
        .map_err(|e| host_error("download_error", e))
}

/// A slot lent while an execution waits; given back when dropped (also if the wait is
/// abandoned because the execution ended).
struct Loan {
    host: Rc<dyn ExecutorHost>,
    lender: super::context::SlotLender,
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

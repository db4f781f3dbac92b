//! What an agent's frames ask of the project: submissions, the requests answered by a reply
//! (results, inputs, streams, ...), and the logs and metrics it sends.

use coflux_core::api::ChildResult;

use coflux_core::model::{StepOptions, SubmitRequest, Value};
use coflux_core::protocol::agent::{
    AgentRequest, Json, LogEntry, MetricEntry, ReplyBody, WireError,
};

use super::sessions::{Ownership, Session};
use super::wire::{api_error, wire_error};
use crate::logs::metrics::MetricRecord;
use crate::logs::{LogRecord, LogStore};

/// Stores log entries of executions this session runs or ran (others are dropped).
pub(super) fn store_logs(session: &Session, logs: &LogStore, entries: Vec<LogEntry>) {
    let records: Vec<LogRecord> = entries
        .into_iter()
        .filter(|e| session.ownership(e.execution) != Ownership::Foreign)
        .map(|e| LogRecord {
            execution: e.execution,
            timestamp_ms: e.timestamp_ms,
            level: e.level,
            template: e.template,
            values: e.values.decode().unwrap_or_default(),
        })
        .collect();
    if let Err(e) = logs.append(session.project.name(), records) {
        tracing::warn!(code = e.code(), error = %e, "log records refused");
    }
}

/// Stores metric definitions and points of executions this session runs or ran (others are
/// dropped), next to the logs.
pub(super) fn store_metrics(session: &Session, logs: &LogStore, entries: Vec<MetricEntry>) {
    let records: Vec<MetricRecord> = entries
        .into_iter()
        .filter(|e| session.ownership(e.execution()) != Ownership::Foreign)
        .filter_map(|e| match e {
            MetricEntry::Define {
                execution,
                key,
                definition,
            } => Some(MetricRecord::Define {
                execution,
                key,
                definition: serde_json::from_str(&definition.0).ok()?,
                timestamp_ms: u64::try_from(coflux_core::model::now_millis()).unwrap_or(0),
            }),
            MetricEntry::Point {
                execution,
                key,
                value,
                at,
                timestamp_ms,
            } => Some(MetricRecord::Point {
                execution,
                key,
                value,
                at,
                timestamp_ms,
            }),
        })
        .collect();
    if let Err(e) = logs.append_metrics(session.project.name(), records) {
        tracing::warn!(code = e.code(), error = %e, "metric records refused");
    }
}

/// Answers a submission; with `wait`, the same message to the run registers the wait, and the
/// child's result comes back as the future.
pub(super) async fn submit(
    session: &Session,
    request: AgentRequest,
    wait: bool,
) -> (Result<ReplyBody, WireError>, Option<ChildResult>) {
    let AgentRequest::Submit {
        parent,
        call,
        target,
        kind,
        arguments,
        options,
        ..
    } = request
    else {
        return (Err(wire_error("invalid_input", "not a submission")), None);
    };
    let decoded = arguments
        .decode::<Vec<Value>>()
        .map_err(|e| wire_error("invalid_input", format!("invalid arguments: {e}")))
        .and_then(|arguments| {
            let options: StepOptions = options
                .decode()
                .map_err(|e| wire_error("invalid_input", format!("invalid options: {e}")))?;
            Ok(SubmitRequest {
                target,
                kind,
                arguments,
                options,
            })
        });
    let request = match decoded {
        Ok(request) => request,
        Err(e) => return (Err(e), None),
    };
    let project = &session.project;
    if wait {
        match project.submit_child_waiting(parent, call, request).await {
            Ok((child, result)) => (Ok(ReplyBody::Submitted(child)), Some(result)),
            Err(e) => (Err(api_error(e)), None),
        }
    } else {
        let answer = project
            .submit_child(parent, call, request)
            .await
            .map(ReplyBody::Submitted)
            .map_err(api_error);
        (answer, None)
    }
}

pub(super) async fn answer(
    session: &Session,
    request: AgentRequest,
) -> Result<ReplyBody, WireError> {
    let project = &session.project;
    match request {
        AgentRequest::Submit { .. } => submit(session, request, false).await.0,
        AgentRequest::Wait { execution, .. } => project
            .execution_result(execution)
            .await
            .map(|r| ReplyBody::Result(Json::encode(&r)))
            .map_err(api_error),
        AgentRequest::Cancel { execution, from } => {
            // An agent cancels within its own run (its children), not other runs.
            if execution.run() != from.run() {
                return Err(wire_error(
                    "cancel_refused",
                    format!("{from} may only cancel executions of its own run"),
                ));
            }
            project.cancel(execution);
            Ok(ReplyBody::Cancelled)
        }
        AgentRequest::Checkpoint {
            execution,
            set,
            reset,
        } => {
            let set = set
                .decode()
                .map_err(|e| wire_error("invalid_input", format!("invalid checkpoint: {e}")))?;
            project
                .record_checkpoint(execution, set, reset)
                .await
                .map(|()| ReplyBody::Checkpointed)
                .map_err(api_error)
        }
        AgentRequest::Stream { execution, op } => {
            let op: coflux_core::model::StreamOp = op.decode().map_err(|e| {
                wire_error("invalid_input", format!("invalid stream operation: {e}"))
            })?;
            if op.execution() != execution {
                return Err(wire_error(
                    "invalid_input",
                    "the stream operation names another execution",
                ));
            }
            use coflux_core::model::{StreamOp, StreamReply};
            // Which stream a producer feeds (or stops feeding), noted for the session's end.
            let feeds = match &op {
                StreamOp::Register { .. } => Some((None, true)),
                StreamOp::Append { index, .. } => Some((Some(*index), true)),
                StreamOp::Close { index, .. } => Some((Some(*index), false)),
                _ => None,
            };
            let reply = project.stream(op).await.map_err(api_error)?;
            if let Some((index, open)) = feeds {
                let registered = match &reply {
                    StreamReply::Registered { index, .. } => Some(*index),
                    _ => None,
                };
                if let Some(index) = index.or(registered) {
                    session.feeding(execution, index, open);
                }
            }
            Ok(ReplyBody::Stream(Json::encode(&reply)))
        }
        AgentRequest::Input { execution, op } => {
            super::inputs::answer(project, execution, op).await
        }
    }
}

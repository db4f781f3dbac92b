//! One agent WebSocket connection: the hello handshake, then frames in both directions.
//! Each request is handled on its own task, so a long wait never blocks the connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_ws::MessageStream;
use coflux_core::model::{Dependencies, ExecutionId, ExecutionResult};
use coflux_core::protocol::agent::{
    AgentFrame, AgentRequest, CloseReason, Json, PROTOCOL_VERSION, ReplyBody, ServerFrame,
};
use coflux_core::protocol::codec;
use futures::StreamExt;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::hello::{close, close_moved, first_frame, open_session};
use super::requests::{answer, store_logs, store_metrics, submit};
use super::sessions::{Ownership, Session, SubmitTurn};
use super::wire::wire_error;
use crate::logs::LogStore;
use crate::state::AppState;

/// How long a new connection may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the server pings an idle connection (and checks for silence; the silence
/// timeout is `--session-timeout`, see [`crate::config::DEFAULT_SESSION_TIMEOUT`]).
const PING_INTERVAL: Duration = Duration::from_secs(5);
/// How often a connection checks for silence and whether its project stopped here.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Serves one connection until it closes.
pub async fn serve(
    state: actix_web::web::Data<AppState>,
    grant: crate::auth::Grant,
    ws: actix_ws::Session,
    stream: MessageStream,
) {
    let mut stream = stream
        .max_frame_size(codec::MAX_FRAME_BYTES)
        .aggregate_continuations()
        .max_continuation_size(codec::MAX_FRAME_BYTES);
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, first_frame(&mut stream)).await {
        Ok(Ok(hello)) => hello,
        Ok(Err(reason)) => return close(ws, reason).await,
        Err(_) => return close(ws, CloseReason::HelloExpected).await,
    };
    if hello.version != PROTOCOL_VERSION {
        return close(ws, CloseReason::VersionMismatch).await;
    }
    if !grant.covers_project(&hello.project) || !grant.covers_environment(&hello.environment) {
        tracing::warn!(project = %hello.project, environment = %hello.environment, "agent refused: its token does not cover this project and environment");
        return close(ws, CloseReason::Forbidden).await;
    }
    // A new session, or one this node does not hold, for a project owned by another node: the
    // agent is sent there.
    if hello
        .session
        .as_deref()
        .is_none_or(|token| !state.sessions.knows(token))
        && let Some(cluster) = &state.cluster
        && let crate::cluster::Route::Remote(node) = cluster.route(&hello.project).await
    {
        tracing::debug!(project = %hello.project, %node, "agent sent to the project's node");
        return close_moved(ws, &node).await;
    }
    let (outgoing, outbox) = mpsc::unbounded_channel();
    let sessions = Arc::clone(&state.sessions);
    let id = sessions.connection_id();
    // The welcome (and anything held for the agent) is queued on `outgoing` by the session.
    let session = match open_session(&state, &hello, id, outgoing.clone()).await {
        Ok(opened) => opened,
        Err(reason) => return close(ws, reason).await,
    };
    // In a cluster, the agent learns the live nodes (after the welcome, queued above).
    if let Some(cluster) = &state.cluster {
        let urls = cluster.live_nodes().await;
        let _ = outgoing.send(ServerFrame::Nodes { urls });
    }
    let span = tracing::info_span!(
        "agent",
        project = %session.project.name(),
        environment = %session.profile.environment,
        worker = %session.worker
    );
    async move {
        tracing::info!(resumed = hello.session.is_some(), "agent connected");
        let writer = actix_rt::spawn(write_frames(ws.clone(), outbox));
        let logs = Arc::clone(&state.logs);
        let silence = sessions.silence_timeout();
        let reason =
            read_frames(&session, &logs, &mut stream, &outgoing, ws.clone(), silence).await;
        writer.abort();
        if let Some(reason) = reason {
            close(ws, reason).await;
        }
        // Does nothing if the agent already resumed the session on a newer connection.
        sessions.disconnected(&session, id);
        tracing::info!(reason = ?reason, "agent disconnected");
    }
    .instrument(span)
    .await
}

async fn write_frames(mut ws: actix_ws::Session, mut outbox: mpsc::UnboundedReceiver<ServerFrame>) {
    let mut ping = actix_rt::time::interval(PING_INTERVAL);
    loop {
        tokio::select! {
            frame = outbox.recv() => {
                let Some(frame) = frame else { return };
                match codec::encode(&frame) {
                    Ok(bytes) => {
                        if ws.binary(bytes).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot encode a frame for an agent"),
                }
            }
            _ = ping.tick() => {
                if ws.ping(b"").await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Reads frames until the connection ends; returns the reason to close with, if any.
async fn read_frames(
    session: &Arc<Session>,
    logs: &LogStore,
    stream: &mut actix_ws::AggregatedMessageStream,
    outgoing: &mpsc::UnboundedSender<ServerFrame>,
    mut ws: actix_ws::Session,
    silence: Duration,
) -> Option<CloseReason> {
    let mut last_seen = Instant::now();
    let mut check = actix_rt::time::interval(CHECK_INTERVAL);
    loop {
        let message = tokio::select! {
            message = stream.next() => message,
            _ = check.tick() => {
                if last_seen.elapsed() > silence {
                    tracing::warn!("agent silent for too long; closing");
                    return None;
                }
                if session.project.is_stopped() {
                    // The project stopped on this node (its lease moved): the agent
                    // reconnects and is sent to the new owner.
                    tracing::warn!("the project stopped on this node; closing");
                    return Some(CloseReason::Unavailable);
                }
                continue;
            }
        };
        let message = message?;
        last_seen = Instant::now();
        match message {
            Ok(actix_ws::AggregatedMessage::Binary(bytes)) => {
                let frame = match codec::decode::<AgentFrame>(&bytes) {
                    Ok(frame) => frame,
                    Err(e) => {
                        tracing::warn!(error = %e, "malformed frame from agent");
                        return Some(CloseReason::MalformedFrame);
                    }
                };
                if let Err(reason) = handle_frame(session, logs, frame, outgoing) {
                    return Some(reason);
                }
            }
            Ok(actix_ws::AggregatedMessage::Ping(bytes)) => {
                let _ = ws.pong(&bytes).await;
            }
            Ok(actix_ws::AggregatedMessage::Pong(_)) => {}
            Ok(actix_ws::AggregatedMessage::Close(_)) => return None,
            Ok(actix_ws::AggregatedMessage::Text(_)) => return Some(CloseReason::MalformedFrame),
            Err(e) => {
                tracing::warn!(error = %e, "agent connection error");
                return Some(CloseReason::MalformedFrame);
            }
        }
    }
}

fn handle_frame(
    session: &Arc<Session>,
    logs: &LogStore,
    frame: AgentFrame,
    outgoing: &mpsc::UnboundedSender<ServerFrame>,
) -> Result<(), CloseReason> {
    match frame {
        AgentFrame::Hello(_) => return Err(CloseReason::HelloExpected),
        AgentFrame::Started { execution } => {
            tracing::debug!(%execution, "execution started");
        }
        AgentFrame::Result { execution, result } => {
            let result: ExecutionResult =
                result.decode().map_err(|_| CloseReason::MalformedFrame)?;
            record(session, outgoing, execution, Ending::Result(result))?;
        }
        AgentFrame::Suspended {
            execution,
            execute_after,
            dependencies,
            inputs,
            any,
        } => {
            let dependencies = Dependencies {
                executions: dependencies,
                inputs,
                any,
            };
            record(
                session,
                outgoing,
                execution,
                Ending::Suspended(execute_after, dependencies),
            )?;
        }
        AgentFrame::Request { id, request } => {
            let from = match &request {
                AgentRequest::Submit { parent, .. } => *parent,
                AgentRequest::Wait { from, .. } | AgentRequest::Cancel { from, .. } => *from,
                AgentRequest::Checkpoint { execution, .. }
                | AgentRequest::Stream { execution, .. }
                | AgentRequest::Input { execution, .. } => *execution,
            };
            // Stream operations (and a producer's checkpoint writes) outlive the session's
            // assignment: a producer feeds its streams after its result. The run checks that
            // the execution produces the stream, or still feeds one.
            let unbound = matches!(
                request,
                AgentRequest::Stream { .. } | AgentRequest::Checkpoint { .. }
            );
            if !unbound && session.ownership(from) != Ownership::Assigned {
                // E.g. a wait re-sent after its execution was cancelled: answer, don't close.
                let result = Err(wire_error(
                    "execution_invalid",
                    format!("execution {from} is not running on this agent"),
                ));
                let _ = outgoing.send(ServerFrame::Reply { id, result });
                return Ok(());
            }
            let session = Arc::clone(session);
            let outgoing = outgoing.clone();
            actix_rt::spawn(async move {
                let wait = matches!(request, AgentRequest::Submit { wait: true, .. });
                // The child's result, when the submission registered the wait itself.
                let mut waiting = None;
                let result = if matches!(request, AgentRequest::Submit { .. }) {
                    // Idempotent by request id: a submission re-sent after a reconnect gets the
                    // first one's answer.
                    match session.begin_submit(id) {
                        SubmitTurn::Answered(answer) => answer,
                        SubmitTurn::Wait(rx) => rx.await.unwrap_or_else(|_| {
                            Err(wire_error("unavailable", "the submission was interrupted"))
                        }),
                        SubmitTurn::Handle => {
                            // Boxed: this task lives until the child's result, and only
                            // what it holds then should stay (not room for the submission).
                            let (answer, result) = Box::pin(submit(&session, request, wait)).await;
                            waiting = result;
                            session.submitted(id, &answer);
                            answer
                        }
                    }
                } else {
                    Box::pin(answer(&session, request)).await
                };
                if result.is_err() && session.project.is_stopped() {
                    // The project moved to another node: no answer here; the agent sends the
                    // request again once this connection closes and it reaches the new owner.
                    return;
                }
                let child = match &result {
                    Ok(ReplyBody::Submitted(child)) if wait => Some(*child),
                    _ => None,
                };
                let _ = outgoing.send(ServerFrame::Reply { id, result });
                if let Some(execution) = child {
                    let result = match waiting {
                        Some(result) => result.await,
                        None => session.project.execution_result(execution).await,
                    };
                    // On failure an empty result tells the agent to ask again with `Wait`.
                    let result = match result {
                        Ok(result) => Json::encode(&result),
                        Err(_) => Json(String::new()),
                    };
                    let _ = outgoing.send(ServerFrame::Resolved { execution, result });
                }
            });
        }
        AgentFrame::Logs(entries) => store_logs(session, logs, entries),
        AgentFrame::Metrics(entries) => store_metrics(session, logs, entries),
        AgentFrame::Waiting { execution, waiting } => {
            if session.ownership(execution) == Ownership::Assigned {
                session
                    .project
                    .set_execution_waiting(session.worker, execution, waiting);
            }
        }
        AgentFrame::Heartbeat { .. } => {}
        AgentFrame::Draining => {
            tracing::info!("agent is draining");
            session.set_draining();
        }
    }
    Ok(())
}

/// How an execution ended, as its agent reported it.
enum Ending {
    Result(ExecutionResult),
    Suspended(Option<i64>, Dependencies),
}

/// Records how an assigned execution ended and confirms it with `Recorded` once committed; a
/// repeated report is confirmed at once.
fn record(
    session: &Arc<Session>,
    outgoing: &mpsc::UnboundedSender<ServerFrame>,
    execution: ExecutionId,
    ending: Ending,
) -> Result<(), CloseReason> {
    match session.ownership(execution) {
        Ownership::Foreign => return Err(CloseReason::ExecutionInvalid),
        // Reported before (or aborted): acknowledge so the agent forgets it.
        Ownership::Finished => {
            let _ = outgoing.send(ServerFrame::Recorded { execution });
        }
        Ownership::Assigned => {
            let session = Arc::clone(session);
            let outgoing = outgoing.clone();
            actix_rt::spawn(async move {
                let project = &session.project;
                let recorded = match ending {
                    Ending::Result(result) => project.report_result(execution, result).await,
                    Ending::Suspended(after, dependencies) => {
                        project
                            .suspend_execution(execution, after, dependencies)
                            .await
                    }
                };
                match recorded {
                    Ok(()) => {
                        session.finish(execution);
                        let _ = outgoing.send(ServerFrame::Recorded { execution });
                    }
                    Err(e) => tracing::error!(%execution, error = %e, "result not recorded"),
                }
            });
        }
    }
    Ok(())
}

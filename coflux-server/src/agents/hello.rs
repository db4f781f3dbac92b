//! The opening of an agent connection: its hello frame, the session it opens or resumes, and
//! how a connection is closed before it serves.

use std::sync::Arc;

use actix_ws::{CloseCode, CloseReason as WsCloseReason};
use coflux_core::api::WorkerSpec;
use coflux_core::protocol::agent::{AgentFrame, CloseReason, Hello, ServerFrame};
use coflux_core::protocol::codec;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::sessions::{AgentProfile, Session};
use crate::state::AppState;

pub(super) async fn first_frame(
    stream: &mut actix_ws::AggregatedMessageStream,
) -> Result<Hello, CloseReason> {
    while let Some(message) = stream.next().await {
        match message {
            Ok(actix_ws::AggregatedMessage::Binary(bytes)) => {
                return match codec::decode::<AgentFrame>(&bytes) {
                    Ok(AgentFrame::Hello(hello)) => Ok(hello),
                    Ok(_) => Err(CloseReason::HelloExpected),
                    Err(_) => match codec::hello_version(&bytes) {
                        Some(v) if v != coflux_core::protocol::agent::PROTOCOL_VERSION => {
                            Err(CloseReason::VersionMismatch)
                        }
                        _ => Err(CloseReason::MalformedFrame),
                    },
                };
            }
            Ok(actix_ws::AggregatedMessage::Ping(_) | actix_ws::AggregatedMessage::Pong(_)) => {}
            Ok(_) | Err(_) => return Err(CloseReason::HelloExpected),
        }
    }
    Err(CloseReason::HelloExpected)
}

pub(super) async fn open_session(
    state: &AppState,
    hello: &Hello,
    id: u64,
    outgoing: mpsc::UnboundedSender<ServerFrame>,
) -> Result<Arc<Session>, CloseReason> {
    // A session held here resumes as it is; one this node does not hold (made before a
    // restart, or by the node that owned the project before) resumes from what the project's
    // store holds: its worker keeps its id, so the assignments recovered under that id are
    // the ones it claims, and those it does not claim are abandoned at once.
    let mut resuming = None;
    if let Some(token) = &hello.session {
        if let Some(session) = state.sessions.resume(
            token,
            &hello.project,
            &hello.environment,
            &hello.claims,
            id,
            outgoing.clone(),
        ) {
            return Ok(session);
        }
        if state.sessions.knows(token) {
            return Err(CloseReason::SessionInvalid);
        }
        let worker = super::sessions::resumable(token).ok_or(CloseReason::SessionInvalid)?;
        resuming = Some((token.clone(), worker));
    }
    let project = state
        .coflux
        .existing_project(&hello.project)
        .await
        .map_err(|e| match e {
            coflux_core::Error::ProjectNotFound(_) | coflux_core::Error::Invalid(_) => {
                CloseReason::ProjectNotFound
            }
            // Owned by another node meanwhile, unreadable for now: the agent tries again.
            e => {
                tracing::warn!(project = %hello.project, error = %e, "agent's project unavailable");
                CloseReason::Unavailable
            }
        })?;
    let spec = WorkerSpec {
        targets: hello.targets.iter().map(|t| t.target.clone()).collect(),
        capacity: (hello.concurrency as usize).max(1),
        provides: hello.provides.iter().cloned().collect(),
        accepts: hello.accepts.iter().cloned().collect(),
    };
    let environment_ok = project
        .environments()
        .await
        .map(|envs| {
            envs.iter().any(|e| {
                e.name.as_str() == hello.environment
                    && e.state != coflux_core::model::EnvironmentState::Archived
            })
        })
        .unwrap_or(false);
    if !environment_ok {
        return Err(CloseReason::EnvironmentNotFound);
    }
    let worker = project
        .connect_worker_as(&hello.environment, spec, resuming.as_ref().map(|(_, w)| *w))
        .await
        .map_err(|_| CloseReason::EnvironmentNotFound)?
        // Its worker id is connected here already: the agent starts a new session.
        .ok_or(CloseReason::SessionInvalid)?;
    let worker_id = worker.id;
    let previous = match &resuming {
        Some((_, worker)) => Some(*worker),
        None => hello
            .previous_session
            .as_deref()
            .and_then(super::sessions::worker_of),
    };
    let claimed = project
        .claim_executions(
            &hello.environment,
            worker_id,
            hello.claims.clone(),
            previous,
        )
        .await
        .unwrap_or_default();
    let profile = AgentProfile {
        environment: hello.environment.clone(),
        provides: hello.provides.clone(),
        accepts: hello.accepts.clone(),
        concurrency: hello.concurrency,
        targets: hello.targets.len(),
    };
    Ok(state.sessions.open(
        project,
        profile,
        worker,
        resuming.map(|(token, _)| token),
        &claimed,
        id,
        outgoing,
    ))
}

/// Closes a new connection, sending the agent to the node at `node`.
pub(super) async fn close_moved(ws: actix_ws::Session, node: &str) {
    let _ = ws
        .close(Some(WsCloseReason {
            code: CloseCode::Other(4000),
            description: Some(coflux_core::protocol::agent::moved_description(node)),
        }))
        .await;
}

pub(super) async fn close(ws: actix_ws::Session, reason: CloseReason) {
    let _ = ws
        .close(Some(WsCloseReason {
            code: CloseCode::Other(4000),
            description: Some(reason.as_str().into()),
        }))
        .await;
}

//! [`Link::run`]: connecting with backoff, the hello and welcome, resuming, server frames.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use awc::ws::{Frame, Message};
use coflux_core::model::ExecutionId;
use coflux_core::protocol::agent::{AgentFrame, AgentRequest, CloseReason, ServerFrame};
use coflux_core::protocol::codec;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::{Command, Link, LinkError, Resolution, WRITE_BATCH, disconnected};

impl Link {
    /// Connects, and reconnects whenever the connection drops, until the server refuses the
    /// agent for good. Commands go to `commands`.
    pub async fn run(&self, commands: mpsc::UnboundedSender<Command>) -> Result<(), LinkError> {
        let mut delay = Duration::from_millis(250);
        // Redirects followed in a row (nodes disagreeing while ownership moves: back off).
        let mut moves = 0u32;
        loop {
            let welcomed = self.state.borrow().welcomes;
            let redirected = self.redirect.borrow().is_some();
            let outcome = self.connect_once(&commands).await;
            let connected = self.state.borrow().welcomes != welcomed;
            if connected {
                // It was connected: a new outage starts with a short wait again.
                delay = Duration::from_millis(250);
                moves = 0;
                self.servers.borrow_mut().succeeded();
            }
            if matches!(outcome, Err(None)) && !connected && !redirected {
                // The address did not answer (refused, timed out, unknown): try the next one at
                // once, backing off only after a whole round failed.
                let mut servers = self.servers.borrow_mut();
                let round = servers.failed();
                if !round {
                    tracing::info!(next = ?servers.current(), "server unreachable; trying the next address");
                    continue;
                }
            }
            if !matches!(outcome, Err(Some(CloseReason::Moved))) {
                self.redirect.borrow_mut().take();
            }
            match outcome {
                Ok(()) => delay = Duration::from_millis(250),
                Err(Some(CloseReason::Moved)) if moves < 3 => {
                    // Another node owns the project: connect there at once.
                    moves += 1;
                    tracing::info!(node = ?self.redirect.borrow(), "the project is served by another node; connecting there");
                    continue;
                }
                Err(Some(CloseReason::Moved)) => moves = 0,
                Err(Some(reason)) if reason.is_fatal() => {
                    return Err(LinkError::Refused(reason.as_str()));
                }
                Err(Some(CloseReason::SessionInvalid)) => {
                    // The server restarted or expired the session: start a new one, claiming
                    // what still runs here and the results not yet confirmed.
                    tracing::warn!("the server no longer knows this session; starting a new one");
                    self.reset_session();
                    continue;
                }
                Err(reason) => {
                    tracing::warn!(reason = ?reason.map(|r| r.as_str()), retry_in = ?delay, "connection to the server failed");
                }
            }
            actix_rt::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    fn reset_session(&self) {
        let mut state = self.state.borrow_mut();
        state.previous_session = state.session.take().or(state.previous_session.take());
        // Requests of the old session (waits, cancels) are sent again on the new one.
    }

    /// What a new session claims: running executions and unconfirmed results.
    fn claims(&self) -> Vec<ExecutionId> {
        let state = self.state.borrow();
        let mut claims: BTreeSet<ExecutionId> = state.running.clone();
        claims.extend(state.unconfirmed.values().map(|(e, _)| *e));
        claims.into_iter().collect()
    }

    /// One connection: `Ok` when it closed normally, `Err(reason)` when it failed.
    async fn connect_once(
        &self,
        commands: &mpsc::UnboundedSender<Command>,
    ) -> Result<(), Option<CloseReason>> {
        let client = crate::net::client(Duration::from_secs(10));
        let url = self
            .redirect
            .borrow()
            .clone()
            .or_else(|| self.servers.borrow().current().map(str::to_owned))
            .ok_or(None)?;
        let (_, framed) = client
            .ws(&url)
            .max_frame_size(codec::MAX_FRAME_BYTES)
            .connect()
            .await
            .map_err(|e| match e {
                // The token is missing, invalid or does not cover this agent: retrying will
                // not help.
                awc::error::WsClientError::InvalidResponseStatus(status)
                    if matches!(status.as_u16(), 401 | 403) =>
                {
                    tracing::error!(%status, "the server refused this agent's token (--token, COFLUX_TOKEN)");
                    Some(CloseReason::Forbidden)
                }
                e => {
                    tracing::debug!(error = %e, "cannot connect");
                    None
                }
            })?;
        self.base.set(&crate::runtime::http_base(&url));
        let (mut sink, mut stream) = framed.split();
        let mut hello = self.hello.borrow().clone();
        hello.session = self.session();
        // What runs here and the results held: a new session claims them, a resumed one is
        // sent again the assignments missing from them.
        hello.claims = self.claims();
        if hello.session.is_none() {
            hello.previous_session = self.state.borrow().previous_session.clone();
        }
        let previous = hello.session.clone();
        let bytes = codec::encode(&AgentFrame::Hello(hello)).map_err(|_| None)?;
        sink.send(Message::Binary(bytes.into()))
            .await
            .map_err(|_| None)?;
        // The welcome (or a close frame) comes first.
        let in_flight = loop {
            match stream.next().await {
                Some(Ok(Frame::Binary(bytes))) => match codec::decode::<ServerFrame>(&bytes) {
                    Ok(ServerFrame::Welcome { session, in_flight }) => {
                        let resumed = previous.as_deref() == Some(session.as_str());
                        let mut state = self.state.borrow_mut();
                        state.session = Some(session);
                        state.previous_session = None;
                        state.welcomes += 1;
                        drop(state);
                        break (in_flight, resumed);
                    }
                    _ => return Err(Some(CloseReason::HelloExpected)),
                },
                Some(Ok(Frame::Close(reason))) => return Err(self.close_reason(reason)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(None),
            }
        };
        let (in_flight, _resumed) = in_flight;
        let (tx, mut rx) = mpsc::unbounded_channel::<AgentFrame>();
        if self.state.borrow().draining {
            let _ = tx.send(AgentFrame::Draining);
        }
        self.resume(&tx, &in_flight);
        // Executions running here that the server no longer expects are stopped.
        let orphaned: Vec<ExecutionId> = self
            .state
            .borrow()
            .running
            .iter()
            .filter(|e| !in_flight.contains(e))
            .copied()
            .collect();
        for execution in orphaned {
            tracing::warn!(%execution, "the server no longer expects this execution; stopping it");
            let _ = commands.send(Command::Abort(execution));
        }
        self.state.borrow_mut().connection = Some(tx);
        tracing::info!(%url, "connected to the server");
        let writer = async {
            // Frames queued meanwhile go out with the first in one write (no timer: what is
            // not queued yet is not waited for).
            while let Some(frame) = rx.recv().await {
                // Let the tasks woken with this one run first: an answer to an executor then
                // goes out before the `Waiting` notice queued just before it, and frames they
                // queue join this write.
                tokio::task::yield_now().await;
                let mut batch = Some(frame);
                let mut fed = 0;
                while let Some(frame) = batch.take() {
                    match codec::encode(&frame) {
                        Ok(bytes) => {
                            if sink.feed(Message::Binary(bytes.into())).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "cannot encode a frame"),
                    }
                    fed += 1;
                    if fed < WRITE_BATCH {
                        batch = rx.try_recv().ok();
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
        };
        let reader = async {
            // The server pings every 5 s: a connection silent for 20 s is dead (half-open).
            while let Ok(Some(frame)) =
                tokio::time::timeout(Duration::from_secs(20), stream.next()).await
            {
                match frame {
                    Ok(Frame::Binary(bytes)) => match codec::decode::<ServerFrame>(&bytes) {
                        Ok(frame) => self.on_frame(frame, commands),
                        Err(e) => tracing::error!(error = %e, "malformed frame from the server"),
                    },
                    Ok(Frame::Close(reason)) => return self.close_reason(reason),
                    Ok(_) => {}
                    Err(_) => return None,
                }
            }
            None
        };
        let outcome = futures::future::select(Box::pin(writer), Box::pin(reader)).await;
        {
            let mut state = self.state.borrow_mut();
            state.connection = None;
            state.deferred.clear();
            // Resolutions promised on this connection will not come: their callers ask again.
            state.resolutions.clear();
        }
        match outcome {
            futures::future::Either::Right((Some(reason), _)) => Err(Some(reason)),
            _ => Err(None),
        }
    }

    /// After (re)connecting: drop results the server no longer expects, send the log records
    /// and metrics held while disconnected, then the results again, and re-send requests
    /// (failing those of executions no longer expected here).
    fn resume(&self, connection: &mpsc::UnboundedSender<AgentFrame>, in_flight: &[ExecutionId]) {
        let in_flight: HashSet<ExecutionId> = in_flight.iter().copied().collect();
        let mut state = self.state.borrow_mut();
        state
            .unconfirmed
            .retain(|_, (execution, _)| in_flight.contains(execution));
        state
            .unconfirmed_of
            .retain(|execution, _| in_flight.contains(execution));
        // Logs first: an execution's result is only reported after its logs, so whoever sees
        // the result can read them all.
        if state.dropped_records > 0 {
            tracing::warn!(
                dropped = state.dropped_records,
                "log and metric records made while disconnected were dropped (too many held)"
            );
            state.dropped_records = 0;
        }
        for frame in std::mem::take(&mut state.held_records) {
            let _ = connection.send(frame);
        }
        for (_, frame) in state.unconfirmed.values() {
            let _ = connection.send(frame.clone());
        }
        let mut ids: Vec<u64> = state.pending.keys().copied().collect();
        // In the order they were made (a parent's calls keep their order).
        ids.sort_unstable();
        for id in ids {
            // Requests of executions the server no longer expects here fail; the others are
            // sent again, also to a new session (a submission repeated is answered with the
            // first answer: the server knows it by its parent and call number).
            let from = match &state.pending[&id].0 {
                AgentRequest::Submit { parent, .. } => *parent,
                AgentRequest::Wait { from, .. } | AgentRequest::Cancel { from, .. } => *from,
                AgentRequest::Checkpoint { execution, .. }
                | AgentRequest::Stream { execution, .. }
                | AgentRequest::Input { execution, .. } => *execution,
            };
            // Stream operations are not tied to an assignment (see `AgentRequest::Stream`).
            let stream = matches!(state.pending[&id].0, AgentRequest::Stream { .. });
            if stream || in_flight.contains(&from) {
                let request = state.pending[&id].0.clone();
                let _ = connection.send(AgentFrame::Request { id, request });
            } else if let Some((_, reply)) = state.pending.remove(&id) {
                let _ = reply.send(Err(disconnected()));
            }
        }
        // Waits the server may not know about (a new session after a restart).
        state.waiting.retain(|e| in_flight.contains(e));
        for &execution in &state.waiting {
            let _ = connection.send(AgentFrame::Waiting {
                execution,
                waiting: true,
            });
        }
    }

    fn on_frame(&self, frame: ServerFrame, commands: &mpsc::UnboundedSender<Command>) {
        match frame {
            ServerFrame::Reply { id, result } => {
                if let Some((_, reply)) = self.state.borrow_mut().pending.remove(&id) {
                    let _ = reply.send(result);
                }
            }
            ServerFrame::Resolved { execution, result } => {
                let mut state = self.state.borrow_mut();
                match state.resolutions.remove(&execution) {
                    Some(Resolution::Waiting(tx)) => {
                        let _ = tx.send(result);
                    }
                    _ => {
                        state
                            .resolutions
                            .insert(execution, Resolution::Arrived(result));
                    }
                }
            }
            ServerFrame::Recorded { execution } => {
                let mut state = self.state.borrow_mut();
                for n in state.unconfirmed_of.remove(&execution).unwrap_or_default() {
                    state.unconfirmed.remove(&n);
                }
            }
            ServerFrame::Abort { execution } => {
                let _ = commands.send(Command::Abort(execution));
            }
            ServerFrame::Stop { reason } => {
                let _ = commands.send(Command::Stop(reason));
            }
            frame @ ServerFrame::Execute { .. } => {
                let _ = commands.send(Command::Execute(frame));
            }
            ServerFrame::Welcome { .. } => {}
            ServerFrame::Nodes { urls } => {
                let urls: Vec<String> = urls.iter().map(|u| crate::runtime::agent_url(u)).collect();
                tracing::info!(nodes = ?urls, "the cluster's nodes (fallback addresses)");
                self.servers.borrow_mut().learn(urls);
            }
        }
    }

    /// The reason of a close frame; a `moved` one sets where the next connection goes.
    fn close_reason(&self, reason: Option<awc::ws::CloseReason>) -> Option<CloseReason> {
        let description = reason.and_then(|r| r.description)?;
        if let Some(node) = coflux_core::protocol::agent::moved_target(&description) {
            *self.redirect.borrow_mut() = Some(crate::runtime::agent_url(node));
            return Some(CloseReason::Moved);
        }
        CloseReason::parse(&description)
    }
}

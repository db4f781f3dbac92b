//! [`Link`]: the agent's side of the WebSocket session with the server.
//!
//! It reconnects with backoff and resumes the session; results stay buffered until the server
//! confirms they are recorded (so a result reported while disconnected is delivered exactly
//! once). Requests made while disconnected wait for the next connection, and requests in
//! flight are sent again on it, to the same session or a new one (a submission's identity is
//! its parent and call number, so the server never creates a child twice); only those of
//! executions the server no longer expects here fail. Log records and metrics made while
//! disconnected are kept (up to [`MAX_HELD_RECORDS`]) and sent on the next connection.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

use awc::ws::{Frame, Message};
use coflux_core::model::ExecutionId;
use coflux_core::protocol::agent::{
    AgentFrame, AgentRequest, CloseReason, Hello, Json, LogEntry, ReplyBody, ServerFrame, WireError,
};
use coflux_core::protocol::codec;
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};

use crate::executor::Suspension;

/// A command from the server for the agent's executor side.
#[derive(Debug, Clone)]
pub enum Command {
    /// Run an execution.
    Execute(ServerFrame),
    /// Stop an execution.
    Abort(ExecutionId),
    /// Stop taking work.
    Stop(String),
}

/// Why the link gave up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The server refused the agent for good (wrong project, environment or version).
    #[error("the server refused this agent: {0}")]
    Refused(&'static str),
}

impl LinkError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Refused(_) => "refused",
        }
    }
}

/// At most this many frames of log records and metrics are held while disconnected.
pub const MAX_HELD_RECORDS: usize = 10_000;

/// At most this many queued frames are written together before a flush.
const WRITE_BATCH: usize = 64;

/// How long the `Waiting` notice of an execution is held back while the agent has room for
/// the children it waits for (see [`Link::waiting_started`]).
const WAITING_NOTICE_DELAY: Duration = Duration::from_millis(5);

type Pending = oneshot::Sender<Result<ReplyBody, WireError>>;

#[derive(Default)]
struct State {
    connection: Option<mpsc::UnboundedSender<AgentFrame>>,
    session: Option<String>,
    /// The session the server no longer knows, named to the server when a new one starts.
    previous_session: Option<String>,
    next_id: u64,
    pending: HashMap<u64, (AgentRequest, Pending)>,
    /// Reports (results, suspensions) not yet confirmed, in report order, as the frames to
    /// send again.
    unconfirmed: BTreeMap<u64, (ExecutionId, AgentFrame)>,
    /// The keys of `unconfirmed` by execution: a confirmation removes its own reports
    /// without scanning the others (thousands while a wide fan-out runs).
    unconfirmed_of: HashMap<ExecutionId, Vec<u64>>,
    next_result: u64,
    /// Executions running here.
    running: BTreeSet<ExecutionId>,
    /// The agent takes no new work (said again on every reconnect).
    draining: bool,
    /// Informational frames (`Started`) that go out with the next frame sent (at the latest
    /// the next heartbeat) rather than in a write of their own.
    deferred: Vec<AgentFrame>,
    /// `Resolved` frames of children submitted with `wait` on this connection: the caller
    /// waiting for one, or one that arrived before its caller asked.
    resolutions: HashMap<ExecutionId, Resolution>,
    /// Executions waiting for others whose `Waiting` notice is held back (see
    /// [`Link::waiting_started`]), with the timer task that sends it.
    held_waits: HashMap<ExecutionId, tokio::task::JoinHandle<()>>,
    /// Executions whose `Waiting` notice went out (or would have, while disconnected) and
    /// that still wait: told again on every new connection, since a server that restarted
    /// would otherwise count them against this agent's capacity and never place their
    /// children here.
    waiting: BTreeSet<ExecutionId>,
    /// Log and metric frames made while disconnected, sent on the next connection.
    held_records: Vec<AgentFrame>,
    /// Frames of records not held because [`MAX_HELD_RECORDS`] were.
    dropped_records: u64,
    /// How many times the server welcomed this agent (a connection that got this far resets
    /// the reconnection backoff).
    welcomes: u64,
}

impl State {
    /// Sends a frame on the connection, after the deferred ones (dropped if not connected).
    fn push(&mut self, frame: AgentFrame) {
        if let Some(conn) = &self.connection {
            for deferred in self.deferred.drain(..) {
                let _ = conn.send(deferred);
            }
            let _ = conn.send(frame);
        }
    }
}

enum Resolution {
    Waiting(oneshot::Sender<Json>),
    Arrived(Json),
}

/// The agent's connection to the server (cheap to clone).
#[derive(Clone)]
pub struct Link {
    url: String,
    /// The node a `moved` close sent the agent to (see [`CloseReason::Moved`]): the next
    /// connection goes there; cleared when that connection ends, so an agent whose node died
    /// asks its configured address again.
    redirect: Rc<RefCell<Option<String>>>,
    hello: Rc<RefCell<Hello>>,
    state: Rc<RefCell<State>>,
}

impl Link {
    /// A link to `url` (`ws://host:port/agent`) that introduces itself with `hello`.
    pub fn new(url: String, hello: Hello) -> Self {
        Self {
            url,
            redirect: Rc::default(),
            hello: Rc::new(RefCell::new(hello)),
            state: Rc::default(),
        }
    }

    /// The current session token.
    pub fn session(&self) -> Option<String> {
        self.state.borrow().session.clone()
    }

    /// Sends a request and waits for its reply.
    pub async fn request(&self, request: AgentRequest) -> Result<ReplyBody, WireError> {
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut state = self.state.borrow_mut();
            state.next_id += 1;
            let id = state.next_id;
            state.push(AgentFrame::Request {
                id,
                request: request.clone(),
            });
            state.pending.insert(id, (request, tx));
            id
        };
        // Forget the request if the caller stops waiting (e.g. its execution was aborted), so
        // it is not sent again after a reconnect.
        let _forget = Forget {
            state: Rc::clone(&self.state),
            id,
        };
        rx.await.unwrap_or_else(|_| Err(disconnected()))
    }

    /// Expects the final result of a child submitted with `wait`: the receiver gets it, or an
    /// error if the connection drops first (then ask with a `Wait` request).
    pub fn expect_resolution(&self, execution: ExecutionId) -> oneshot::Receiver<Json> {
        let (tx, rx) = oneshot::channel();
        let mut state = self.state.borrow_mut();
        match state.resolutions.remove(&execution) {
            Some(Resolution::Arrived(result)) => {
                let _ = tx.send(result);
            }
            _ => {
                if state.connection.is_some() {
                    state.resolutions.insert(execution, Resolution::Waiting(tx));
                }
            }
        }
        rx
    }

    /// Notes that an execution started here (and tells the server, with the next frame: the
    /// server only logs it, so it is not worth a write and a wake-up of its own).
    pub fn started(&self, execution: ExecutionId) {
        let mut state = self.state.borrow_mut();
        state.running.insert(execution);
        if state.connection.is_some() {
            state.deferred.push(AgentFrame::Started { execution });
        }
    }

    /// Notes that an execution no longer runs here.
    pub fn stopped(&self, execution: ExecutionId) {
        let mut state = self.state.borrow_mut();
        state.running.remove(&execution);
        state.waiting.remove(&execution);
    }

    /// Reports how an execution ended; kept until the server confirms it.
    pub fn report(&self, execution: ExecutionId, result: Json) {
        self.report_frame(execution, AgentFrame::Result { execution, result });
    }

    /// Reports that an execution suspended itself; kept until the server confirms it.
    pub fn report_suspended(&self, execution: ExecutionId, suspension: Suspension) {
        let frame = AgentFrame::Suspended {
            execution,
            execute_after: suspension.execute_after,
            dependencies: suspension.dependencies.executions,
            inputs: suspension.dependencies.inputs,
            any: suspension.dependencies.any,
        };
        self.report_frame(execution, frame);
    }

    fn report_frame(&self, execution: ExecutionId, frame: AgentFrame) {
        let mut state = self.state.borrow_mut();
        state.next_result += 1;
        let n = state.next_result;
        state.unconfirmed.insert(n, (execution, frame.clone()));
        state.unconfirmed_of.entry(execution).or_default().push(n);
        state.push(frame);
    }

    /// How many results wait for the server's confirmation.
    pub fn unconfirmed(&self) -> usize {
        self.state.borrow().unconfirmed.len()
    }

    /// Sends a frame if connected (logs, heartbeats, started); dropped otherwise.
    pub fn send(&self, frame: AgentFrame) {
        self.state.borrow_mut().push(frame);
    }

    /// An execution started waiting for others (and lent its slot). The server needs to know
    /// only when the agent is full, so that it still places the awaited children here: then
    /// the notice goes out at once. With a `spare` slot it is held back for
    /// [`WAITING_NOTICE_DELAY`], and dropped if the wait ends first, as most short waits do (a
    /// task awaiting the task it just called): two frames and two server-side updates saved.
    pub fn waiting_started(&self, execution: ExecutionId, spare: bool) {
        let notice = AgentFrame::Waiting {
            execution,
            waiting: true,
        };
        if !spare {
            self.state.borrow_mut().waiting.insert(execution);
            return self.send(notice);
        }
        let state = Rc::clone(&self.state);
        let timer = actix_rt::spawn(async move {
            tokio::time::sleep(WAITING_NOTICE_DELAY).await;
            let mut state = state.borrow_mut();
            if state.held_waits.remove(&execution).is_some() {
                state.waiting.insert(execution);
                state.push(notice);
            }
        });
        if let Some(previous) = self.state.borrow_mut().held_waits.insert(execution, timer) {
            previous.abort();
        }
    }

    /// An execution stopped waiting: the server is told unless its `Waiting` notice was still
    /// held back (then neither goes out).
    pub fn waiting_stopped(&self, execution: ExecutionId) {
        let held = {
            let mut state = self.state.borrow_mut();
            state.waiting.remove(&execution);
            state.held_waits.remove(&execution)
        };
        match held {
            // The timer is cancelled, so it does not wake the agent for nothing.
            Some(timer) => timer.abort(),
            None => self.send(AgentFrame::Waiting {
                execution,
                waiting: false,
            }),
        }
    }

    /// Tells the server (now and after any reconnect) that this agent takes no new work.
    pub fn drain(&self) {
        self.state.borrow_mut().draining = true;
        self.send(AgentFrame::Draining);
    }

    /// Sends log entries (held while disconnected).
    pub fn logs(&self, entries: Vec<LogEntry>) {
        if !entries.is_empty() {
            self.send_record(AgentFrame::Logs(entries));
        }
    }

    /// Sends a frame of log records or metrics; while disconnected it is held (up to
    /// [`MAX_HELD_RECORDS`] frames) and sent on the next connection.
    pub fn send_record(&self, frame: AgentFrame) {
        let mut state = self.state.borrow_mut();
        if state.connection.is_some() {
            state.push(frame);
        } else if state.held_records.len() < MAX_HELD_RECORDS {
            state.held_records.push(frame);
        } else {
            state.dropped_records += 1;
        }
    }

    /// Connects, and reconnects whenever the connection drops, until the server refuses the
    /// agent for good. Commands go to `commands`.
    pub async fn run(&self, commands: mpsc::UnboundedSender<Command>) -> Result<(), LinkError> {
        let mut delay = Duration::from_millis(250);
        // Redirects followed in a row (nodes disagreeing while ownership moves: back off).
        let mut moves = 0u32;
        loop {
            let welcomed = self.state.borrow().welcomes;
            let outcome = self.connect_once(&commands).await;
            if self.state.borrow().welcomes != welcomed {
                // It was connected: a new outage starts with a short wait again.
                delay = Duration::from_millis(250);
                moves = 0;
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
            .unwrap_or_else(|| self.url.clone());
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
        }
    }
}

/// Removes a pending request when its caller goes away.
struct Forget {
    state: Rc<RefCell<State>>,
    id: u64,
}

impl Drop for Forget {
    fn drop(&mut self) {
        if let Ok(mut state) = self.state.try_borrow_mut() {
            state.pending.remove(&self.id);
        }
    }
}

impl Link {
    /// The reason of a close frame; a `moved` one sets where the next connection goes.
    fn close_reason(&self, reason: Option<awc::ws::CloseReason>) -> Option<CloseReason> {
        let description = reason.and_then(|r| r.description)?;
        if let Some(node) = coflux_core::protocol::agent::moved_target(&description) {
            *self.redirect.borrow_mut() = Some(super::agent_url(node));
            return Some(CloseReason::Moved);
        }
        CloseReason::parse(&description)
    }
}

fn disconnected() -> WireError {
    WireError {
        code: "disconnected".into(),
        message: "the agent is not connected to the server".into(),
    }
}

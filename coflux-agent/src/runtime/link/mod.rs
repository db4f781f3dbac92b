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
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::time::Duration;

use coflux_core::model::ExecutionId;
use coflux_core::protocol::agent::{
    AgentFrame, AgentRequest, Hello, Json, LogEntry, ReplyBody, ServerFrame, WireError,
};
use tokio::sync::{mpsc, oneshot};

use crate::executor::Suspension;
use crate::runtime::{ServerBase, http_base};

mod connection;
mod servers;

use servers::Servers;

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
    /// The configured addresses, then the nodes learned from the cluster.
    servers: Rc<RefCell<Servers>>,
    /// The node a `moved` close sent the agent to (see
    /// [`CloseReason::Moved`](coflux_core::protocol::agent::CloseReason::Moved)): the next
    /// connection goes there; cleared when that connection ends, so an agent whose node died
    /// asks its addresses again.
    redirect: Rc<RefCell<Option<String>>>,
    hello: Rc<RefCell<Hello>>,
    state: Rc<RefCell<State>>,
    /// The HTTP address of the node connected to last (for blob transfers).
    base: ServerBase,
}

impl Link {
    /// A link to the first of `urls` (`ws://host:port/agent`) that works, introducing itself
    /// with `hello`.
    pub fn new(urls: Vec<String>, hello: Hello) -> Self {
        let base = ServerBase::new(&urls.first().map_or_else(String::new, |u| http_base(u)));
        Self {
            servers: Rc::new(RefCell::new(Servers::new(urls))),
            redirect: Rc::default(),
            base,
            hello: Rc::new(RefCell::new(hello)),
            state: Rc::default(),
        }
    }

    /// The HTTP address of the node this link connected to last (the first address before it
    /// connects), kept up to date: what blob transfers use.
    pub fn server_base(&self) -> ServerBase {
        self.base.clone()
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

fn disconnected() -> WireError {
    WireError {
        code: "disconnected".into(),
        message: "the agent is not connected to the server".into(),
    }
}

//! Agent sessions. A session is one agent's registration as a worker of an environment; it
//! outlives its WebSocket connection for the reconnection timeout, queuing commands meanwhile,
//! and abandons its executions when it expires.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use coflux_core::Project;
use coflux_core::api::RemoteWorker;
use coflux_core::model::{ExecutionId, WorkerId};
use coflux_core::orchestration::messages::WorkerCommand;
use coflux_core::protocol::agent::{Json, ReplyBody, ServerFrame, WireError};
use tokio::sync::mpsc;

use super::session_token::{EndedTokens, new_token};
pub use super::session_token::{resumable, worker_of};

/// Where a session's frames go while it is connected.
pub type Outgoing = mpsc::UnboundedSender<ServerFrame>;

/// How many reported executions a session remembers, to acknowledge late repeats.
const KNOWN_LIMIT: usize = 16_384;

/// One agent session.
pub struct Session {
    /// The session's token.
    pub token: String,
    /// The project it belongs to.
    pub project: Project,
    /// Its worker id in the orchestrator.
    pub worker: WorkerId,
    /// What its agent said about itself (its environment included).
    pub profile: AgentProfile,
    /// When the session started (ms since the epoch).
    pub opened_at: coflux_core::model::Millis,
    state: Mutex<SessionState>,
}

/// What an agent said about itself at hello, kept for the web UI.
#[derive(Debug, Clone, Default)]
pub struct AgentProfile {
    /// The environment it serves.
    pub environment: String,
    /// Tags it provides (`key → values`).
    pub provides: Vec<(String, Vec<String>)>,
    /// Tags an execution's `requires` must include to be assigned to it.
    pub accepts: Vec<(String, Vec<String>)>,
    /// How many executions it runs at once.
    pub concurrency: u32,
    /// How many targets it hosts.
    pub targets: usize,
}

#[derive(Default)]
struct SessionState {
    /// The live connection, if any, with its id.
    connection: Option<(u64, Outgoing)>,
    /// Bumped on every connect and disconnect, so a stale expiry timer, or the late end of a
    /// replaced connection, does nothing.
    generation: u64,
    /// Frames produced while disconnected, replayed on resume.
    queued: Vec<ServerFrame>,
    /// Executions assigned and not yet reported, with the frame that assigned them (sent again
    /// if the agent lost it).
    assigned: HashMap<ExecutionId, ServerFrame>,
    /// Recently assigned executions (results for these are acknowledged even when late),
    /// oldest first, bounded.
    known: VecDeque<ExecutionId>,
    known_set: HashSet<ExecutionId>,
    /// Set once the session expired or was closed.
    ended: bool,
    /// Streams its executions feed (execution, index): ended as abandoned with the session.
    feeding: HashSet<(ExecutionId, u32)>,
    /// Submissions by request id, so one re-sent after a reconnect is answered, not repeated.
    submits: HashMap<u64, SubmitState>,
    submit_order: VecDeque<u64>,
    /// The agent said it takes no more work: it gets none, and when its connection closes with
    /// nothing assigned the session ends at once.
    draining: bool,
}

/// A submission request seen by a session.
enum SubmitState {
    /// Being handled; these wait for its answer.
    InProgress(Vec<tokio::sync::oneshot::Sender<SubmitAnswer>>),
    /// Answered.
    Done(SubmitAnswer),
}

/// The answer to a submission request.
pub type SubmitAnswer = Result<ReplyBody, WireError>;

/// What a session does with a submission request.
pub enum SubmitTurn {
    /// Handle it, then call [`Session::submitted`].
    Handle,
    /// It was answered before.
    Answered(SubmitAnswer),
    /// It is being handled: the answer comes here.
    Wait(tokio::sync::oneshot::Receiver<SubmitAnswer>),
}

/// How many answered submissions a session remembers.
const SUBMIT_LIMIT: usize = 4_096;

/// What a session says about an execution an agent reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// Assigned to this session and not reported yet.
    Assigned,
    /// Was assigned to this session, but already reported or aborted.
    Finished,
    /// Never assigned to this session.
    Foreign,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Session {
    /// Sends a frame now, or queues it until the agent reconnects.
    pub fn send(&self, frame: ServerFrame) {
        let mut state = lock(&self.state);
        if state.ended {
            return;
        }
        // The frame comes back if the connection is gone: it then waits for the next one.
        let frame = match &state.connection {
            Some((_, conn)) => match conn.send(frame) {
                Ok(()) => return,
                Err(refused) => refused.0,
            },
            None => frame,
        };
        state.queued.push(frame);
    }

    /// Notes that one of its executions feeds (`true`) or no longer feeds a stream: the
    /// streams it feeds end as abandoned if the session ends before they do.
    pub fn feeding(&self, execution: ExecutionId, index: u32, open: bool) {
        let mut state = lock(&self.state);
        if open {
            state.feeding.insert((execution, index));
        } else {
            state.feeding.remove(&(execution, index));
        }
    }

    /// Whether `execution` belongs to this session.
    pub fn ownership(&self, execution: ExecutionId) -> Ownership {
        let state = lock(&self.state);
        if state.assigned.contains_key(&execution) {
            Ownership::Assigned
        } else if state.known_set.contains(&execution) {
            Ownership::Finished
        } else {
            Ownership::Foreign
        }
    }

    /// Takes over executions claimed from a previous session (the agent runs them, or holds
    /// their results).
    pub fn adopt(&self, executions: &[ExecutionId]) {
        let mut state = lock(&self.state);
        for execution in executions {
            state.assigned.insert(
                *execution,
                ServerFrame::Abort {
                    execution: *execution,
                },
            );
            remember(&mut state, *execution);
        }
    }

    /// Registers submission request `id`: whether to handle it, or its earlier answer.
    pub fn begin_submit(&self, id: u64) -> SubmitTurn {
        let mut state = lock(&self.state);
        match state.submits.get_mut(&id) {
            Some(SubmitState::Done(answer)) => SubmitTurn::Answered(answer.clone()),
            Some(SubmitState::InProgress(waiters)) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                waiters.push(tx);
                SubmitTurn::Wait(rx)
            }
            None => {
                state
                    .submits
                    .insert(id, SubmitState::InProgress(Vec::new()));
                state.submit_order.push_back(id);
                if state.submit_order.len() > SUBMIT_LIMIT
                    && let Some(oldest) = state.submit_order.pop_front()
                {
                    state.submits.remove(&oldest);
                }
                SubmitTurn::Handle
            }
        }
    }

    /// Records the answer to submission request `id`.
    pub fn submitted(&self, id: u64, answer: &SubmitAnswer) {
        let mut state = lock(&self.state);
        if let Some(SubmitState::InProgress(waiters)) =
            state.submits.insert(id, SubmitState::Done(answer.clone()))
        {
            for waiter in waiters {
                let _ = waiter.send(answer.clone());
            }
        }
    }

    /// Notes that the agent is shutting down: it gets no new work.
    pub fn set_draining(&self) {
        lock(&self.state).draining = true;
        self.project.set_worker_available(self.worker, false);
    }

    /// Marks an execution as reported.
    pub fn finish(&self, execution: ExecutionId) {
        lock(&self.state).assigned.remove(&execution);
    }

    /// Attaches a connection (replacing any earlier one) and, before anything else can be
    /// sent on it, queues the welcome, the frames held while the agent was away, and the
    /// assignments it does not report having (`running`: lost in transit). Returns the
    /// connection's id, or `None` if the session has ended.
    fn attach(&self, id: u64, connection: Outgoing, running: &[ExecutionId]) -> Option<()> {
        let mut state = lock(&self.state);
        if state.ended {
            return None;
        }
        let mut in_flight: Vec<_> = state.assigned.keys().copied().collect();
        in_flight.sort();
        let _ = connection.send(ServerFrame::Welcome {
            session: self.token.clone(),
            in_flight: in_flight.clone(),
        });
        let queued = std::mem::take(&mut state.queued);
        let mut resent: HashSet<ExecutionId> = HashSet::new();
        for frame in queued {
            if let ServerFrame::Execute { execution, .. } = &frame {
                resent.insert(*execution);
            }
            let _ = connection.send(frame);
        }
        for execution in in_flight {
            if running.contains(&execution) || resent.contains(&execution) {
                continue;
            }
            if let Some(frame @ ServerFrame::Execute { .. }) = state.assigned.get(&execution) {
                let _ = connection.send(frame.clone());
            }
        }
        state.connection = Some((id, connection));
        state.generation += 1;
        Some(())
    }

    fn command(&self, command: WorkerCommand) {
        let frame = match command {
            WorkerCommand::Execute {
                execution,
                target,
                arguments,
                timeout_ms,
                checkpoints,
                streams,
            } => {
                let frame = ServerFrame::Execute {
                    execution,
                    target,
                    arguments: Json::encode(&*arguments),
                    timeout_ms,
                    checkpoints: Json::encode(&*checkpoints),
                    streams: Json::encode(&streams),
                };
                let mut state = lock(&self.state);
                state.assigned.insert(execution, frame.clone());
                remember(&mut state, execution);
                drop(state);
                frame
            }
            WorkerCommand::Abort { execution } => {
                lock(&self.state).assigned.remove(&execution);
                ServerFrame::Abort { execution }
            }
        };
        self.send(frame);
    }
}

/// What the web UI shows of a session.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    /// The environment it serves.
    pub environment: String,
    /// Its worker id.
    pub worker: WorkerId,
    /// Whether its agent is connected now.
    pub connected: bool,
    /// Executions assigned to it and not reported yet.
    pub running: usize,
    /// Whether it takes no more work.
    pub draining: bool,
    /// What its agent said about itself.
    pub profile: AgentProfile,
    /// When the session started (ms since the epoch).
    pub opened_at: coflux_core::model::Millis,
    /// Its running executions per target (`module/name`).
    pub running_targets: Vec<(String, usize)>,
}

/// All agent sessions of the server.
pub struct Sessions {
    reconnect_timeout: Duration,
    silence_timeout: Duration,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Tokens of sessions that ended here (expired, or the agent said goodbye).
    ended: Mutex<EndedTokens>,
    next_connection: std::sync::atomic::AtomicU64,
}

fn remember(state: &mut SessionState, execution: ExecutionId) {
    if state.known_set.insert(execution) {
        state.known.push_back(execution);
        if state.known.len() > KNOWN_LIMIT
            && let Some(oldest) = state.known.pop_front()
        {
            state.known_set.remove(&oldest);
        }
    }
}

impl Sessions {
    /// No sessions yet; a connection silent for `silence_timeout` is closed, and a
    /// disconnected session is kept for `reconnect_timeout`.
    pub fn new(reconnect_timeout: Duration, silence_timeout: Duration) -> Self {
        Self {
            reconnect_timeout,
            silence_timeout,
            sessions: Mutex::default(),
            ended: Mutex::default(),
            next_connection: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// A fresh connection id.
    pub fn connection_id(&self) -> u64 {
        self.next_connection
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// How long a disconnected session is kept.
    pub fn reconnect_timeout(&self) -> Duration {
        self.reconnect_timeout
    }

    /// How long a connection may stay silent (no frame, no pong) before it is closed.
    pub fn silence_timeout(&self) -> Duration {
        self.silence_timeout
    }

    /// Whether a session with this token is held here, or ended here (then it is not
    /// resumed anywhere: the agent starts a new session).
    pub fn knows(&self, token: &str) -> bool {
        lock(&self.sessions).contains_key(token) || lock(&self.ended).contains(token)
    }

    /// Starts a session for a newly connected worker, adopting the executions it `claimed`,
    /// and attaches connection `id` (which receives the welcome first). With `token` (one
    /// this node does not hold, naming `worker`'s id), the agent's session resumes under it.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        self: &Arc<Self>,
        project: Project,
        profile: AgentProfile,
        worker: RemoteWorker,
        token: Option<String>,
        claimed: &[ExecutionId],
        id: u64,
        connection: Outgoing,
    ) -> Arc<Session> {
        let token = token.unwrap_or_else(|| new_token(worker.id));
        let session = Arc::new(Session {
            token: token.clone(),
            project,
            worker: worker.id,
            profile,
            opened_at: coflux_core::model::now_millis(),
            state: Mutex::default(),
        });
        session.adopt(claimed);
        session.attach(id, connection, claimed);
        lock(&self.sessions).insert(token, Arc::clone(&session));
        let forward = Arc::clone(&session);
        let mut commands = worker.commands;
        actix_rt::spawn(async move {
            while let Some(command) = commands.recv().await {
                forward.command(command);
            }
        });
        session
    }

    /// Resumes a session for a reconnecting agent (same project and environment) that still
    /// runs (or holds results of) `running`, on connection `id`.
    pub fn resume(
        &self,
        token: &str,
        project: &str,
        environment: &str,
        running: &[ExecutionId],
        id: u64,
        connection: Outgoing,
    ) -> Option<Arc<Session>> {
        let session = lock(&self.sessions).get(token).cloned()?;
        if session.project.name() != project || session.profile.environment != environment {
            return None;
        }
        if session.project.is_stopped() {
            // The project stopped here (it moved, or went idle): the session is resumed where
            // the project runs now, from what its store holds.
            lock(&session.state).ended = true;
            lock(&self.sessions).remove(token);
            return None;
        }
        session.attach(id, connection, running)?;
        if !lock(&session.state).draining {
            session.project.set_worker_available(session.worker, true);
        }
        Some(session)
    }

    /// A read-only summary of a project's sessions (for the web UI), by environment.
    pub fn summaries(&self, project: &str) -> Vec<SessionSummary> {
        let sessions: Vec<_> = lock(&self.sessions)
            .values()
            .filter(|s| s.project.name() == project)
            .cloned()
            .collect();
        let mut out: Vec<SessionSummary> = sessions
            .iter()
            .map(|s| {
                let state = lock(&s.state);
                let mut running_targets: BTreeMap<String, usize> = BTreeMap::new();
                for frame in state.assigned.values() {
                    if let ServerFrame::Execute { target, .. } = frame {
                        *running_targets.entry(target.to_string()).or_default() += 1;
                    }
                }
                SessionSummary {
                    environment: s.profile.environment.clone(),
                    worker: s.worker,
                    connected: state.connection.is_some(),
                    running: state.assigned.len(),
                    draining: state.draining,
                    profile: s.profile.clone(),
                    opened_at: s.opened_at,
                    running_targets: running_targets.into_iter().collect(),
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.environment, a.worker).cmp(&(&b.environment, b.worker)));
        out
    }

    /// Tells every agent of an environment to stop taking work (e.g. it was archived); they
    /// finish what runs and disconnect.
    pub fn stop_environment(&self, project: &str, environment: &str, reason: &str) {
        let sessions: Vec<_> = lock(&self.sessions)
            .values()
            .filter(|s| s.project.name() == project && s.profile.environment == environment)
            .cloned()
            .collect();
        for session in sessions {
            session.set_draining();
            session.send(ServerFrame::Stop {
                reason: reason.to_string(),
            });
        }
    }

    /// The connection of a session dropped: unless it reconnects within the timeout, its
    /// executions are abandoned.
    pub fn disconnected(self: &Arc<Self>, session: &Arc<Session>, id: u64) {
        let generation = {
            let mut state = lock(&session.state);
            if state
                .connection
                .as_ref()
                .is_none_or(|(current, _)| *current != id)
            {
                return; // replaced by a newer connection
            }
            if state.draining && state.assigned.is_empty() {
                drop(state);
                self.end(session, "agent shut down");
                return;
            }
            state.connection = None;
            state.generation += 1;
            state.generation
        };
        session.project.set_worker_available(session.worker, false);
        let sessions = Arc::clone(self);
        let session = Arc::clone(session);
        let timeout = self.reconnect_timeout;
        actix_rt::spawn(async move {
            actix_rt::time::sleep(timeout).await;
            let expired = {
                let mut state = lock(&session.state);
                let expired = state.generation == generation && !state.ended;
                if expired {
                    state.ended = true;
                }
                expired
            };
            if expired {
                sessions.end(&session, "expired");
            }
        });
    }

    /// Ends a session at once (the agent said goodbye, or the session expired): its executions
    /// are abandoned.
    pub fn end(&self, session: &Arc<Session>, why: &str) {
        let feeding = {
            let mut state = lock(&session.state);
            state.ended = true;
            std::mem::take(&mut state.feeding)
        };
        // Streams its producers still fed will get no more items.
        for (execution, index) in feeding {
            let project = session.project.clone();
            actix_rt::spawn(async move {
                let op = coflux_core::model::StreamOp::Close {
                    execution,
                    index,
                    closure: coflux_core::model::StreamClosure::Abandoned,
                };
                if let Err(e) = project.stream(op).await {
                    tracing::debug!(%execution, index, error = %e, "stream not ended");
                }
            });
        }
        lock(&self.sessions).remove(&session.token);
        lock(&self.ended).insert(session.token.clone());
        session.project.disconnect_worker(session.worker);
        tracing::info!(
            project = %session.project.name(),
            environment = %session.profile.environment,
            worker = %session.worker,
            why,
            "agent session ended"
        );
    }
}

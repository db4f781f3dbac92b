//! Agent sessions. A session is one agent's registration as a worker of an environment; it
//! outlives its WebSocket connection for the reconnection timeout, queuing commands meanwhile,
//! and abandons its executions when it expires.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use coflux_core::Project;
use coflux_core::api::RemoteWorker;
use coflux_core::model::{ExecutionId, WorkerId};
use coflux_core::orchestration::messages::WorkerCommand;
use coflux_core::protocol::agent::{Json, ServerFrame};
use tokio::sync::mpsc;

/// Where a session's frames go while it is connected.
pub type Outgoing = mpsc::UnboundedSender<ServerFrame>;

/// One agent session.
pub struct Session {
    /// The session's token.
    pub token: String,
    /// The project it belongs to.
    pub project: Project,
    /// The environment it serves.
    pub environment: String,
    /// Its worker id in the orchestrator.
    pub worker: WorkerId,
    state: Mutex<SessionState>,
}

#[derive(Default)]
struct SessionState {
    /// The live connection, if any.
    connection: Option<Outgoing>,
    /// Bumped on every connect and disconnect, so a stale expiry timer does nothing.
    generation: u64,
    /// Frames produced while disconnected, replayed on resume.
    queued: Vec<ServerFrame>,
    /// Executions assigned and not yet reported.
    assigned: HashSet<ExecutionId>,
    /// Every execution ever assigned (results for these are acknowledged even when late).
    known: HashSet<ExecutionId>,
    /// Set once the session expired or was closed.
    ended: bool,
    /// The agent said it takes no more work: when its connection closes, the session ends at
    /// once instead of waiting for a reconnection.
    draining: bool,
}

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
        if let Some(conn) = &state.connection
            && conn.send(frame.clone()).is_ok()
        {
            return;
        }
        state.queued.push(frame);
    }

    /// Whether `execution` belongs to this session.
    pub fn ownership(&self, execution: ExecutionId) -> Ownership {
        let state = lock(&self.state);
        if state.assigned.contains(&execution) {
            Ownership::Assigned
        } else if state.known.contains(&execution) {
            Ownership::Finished
        } else {
            Ownership::Foreign
        }
    }

    /// Takes over executions claimed from a previous session.
    pub fn adopt(&self, executions: &[ExecutionId]) {
        let mut state = lock(&self.state);
        state.assigned.extend(executions.iter().copied());
        state.known.extend(executions.iter().copied());
    }

    /// Notes that the agent is shutting down.
    pub fn set_draining(&self) {
        lock(&self.state).draining = true;
    }

    /// Marks an execution as reported.
    pub fn finish(&self, execution: ExecutionId) {
        lock(&self.state).assigned.remove(&execution);
    }

    /// Attaches a connection: returns the in-flight executions and the queued frames to send
    /// after the welcome.
    fn attach(&self, connection: Outgoing) -> (Vec<ExecutionId>, Vec<ServerFrame>) {
        let mut state = lock(&self.state);
        state.connection = Some(connection);
        state.generation += 1;
        let mut in_flight: Vec<_> = state.assigned.iter().copied().collect();
        in_flight.sort();
        (in_flight, std::mem::take(&mut state.queued))
    }

    fn command(&self, command: WorkerCommand) {
        let frame = match command {
            WorkerCommand::Execute {
                execution,
                target,
                arguments,
                timeout_ms,
            } => {
                let mut state = lock(&self.state);
                state.assigned.insert(execution);
                state.known.insert(execution);
                drop(state);
                ServerFrame::Execute {
                    execution,
                    target,
                    arguments: Json::encode(&*arguments),
                    timeout_ms,
                }
            }
            WorkerCommand::Abort { execution } => {
                lock(&self.state).assigned.remove(&execution);
                ServerFrame::Abort { execution }
            }
        };
        self.send(frame);
    }
}

/// All agent sessions of the server.
pub struct Sessions {
    reconnect_timeout: Duration,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    /// No sessions yet; a disconnected session is kept for `reconnect_timeout`.
    pub fn new(reconnect_timeout: Duration) -> Self {
        Self {
            reconnect_timeout,
            sessions: Mutex::default(),
        }
    }

    /// How long a disconnected session is kept.
    pub fn reconnect_timeout(&self) -> Duration {
        self.reconnect_timeout
    }

    /// How many sessions exist (connected or waiting for their agent).
    pub fn len(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// Whether there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts a session for a newly connected worker and attaches `connection`. Returns the
    /// session and its token.
    pub fn open(
        self: &Arc<Self>,
        project: Project,
        environment: String,
        worker: RemoteWorker,
        connection: Outgoing,
    ) -> Arc<Session> {
        let token = new_token();
        let session = Arc::new(Session {
            token: token.clone(),
            project,
            environment,
            worker: worker.id,
            state: Mutex::default(),
        });
        session.attach(connection);
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

    /// Resumes a session for a reconnecting agent (same project and environment); returns the
    /// session, its in-flight executions and the frames queued while it was away.
    pub fn resume(
        &self,
        token: &str,
        project: &str,
        environment: &str,
        connection: Outgoing,
    ) -> Option<(Arc<Session>, Vec<ExecutionId>, Vec<ServerFrame>)> {
        let session = lock(&self.sessions).get(token).cloned()?;
        if session.project.name() != project || session.environment != environment {
            return None;
        }
        let (in_flight, queued) = session.attach(connection);
        session.project.set_worker_available(session.worker, true);
        Some((session, in_flight, queued))
    }

    /// The connection of a session dropped: unless it reconnects within the timeout, its
    /// executions are abandoned.
    pub fn disconnected(self: &Arc<Self>, session: &Arc<Session>) {
        if lock(&session.state).draining {
            self.end(session, "agent shut down");
            return;
        }
        session.project.set_worker_available(session.worker, false);
        let generation = {
            let mut state = lock(&session.state);
            state.connection = None;
            state.generation += 1;
            state.generation
        };
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
        lock(&session.state).ended = true;
        lock(&self.sessions).remove(&session.token);
        session.project.disconnect_worker(session.worker);
        tracing::info!(
            project = %session.project.name(),
            environment = %session.environment,
            worker = %session.worker,
            why,
            "agent session ended"
        );
    }
}

fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

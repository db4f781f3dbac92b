//! [`Router`]: delivers envelopes to a project's actors, workers and waiting callers, and
//! re-creates actors that died.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use actix::{Actor, Addr, ArbiterHandle};
use tokio::sync::{mpsc, oneshot, watch};

use super::super::error::OrchestrationError;
use crate::model::{
    EnvironmentId, EnvironmentState, Requires, RunId, TargetRef, WorkerId, now_millis,
};
use crate::store::writer::GroupCommitWriter;
use crate::store::{ProjectStore, StoreError, Write};

use super::super::environment::EnvironmentCore;
use super::super::messages::{
    Envelope, EnvironmentMsg, Outbox, ProjectMsg, ReloadTarget, Reply, ReplyTo, RunMsg,
    WorkerCommand,
};
use super::super::run::RunCore;
use super::hosts::{ConfirmRetire, Deliver, Reload};
use crate::tuning::{Doorbell, spinning_arbiter};

mod delete;
mod link;
mod unload;

/// The project actor of a project's router.
pub type ProjectActor = super::hosts::ProjectActor<Router>;
/// An environment actor of a project's router.
pub type EnvironmentActor = super::hosts::EnvironmentActor<Router>;
/// A run actor of a project's router.
pub type RunActor = super::hosts::RunActor<Router>;

/// The writer every project actor commits through.
pub type Writer = GroupCommitWriter<Vec<Envelope>>;

/// A worker connected to an environment, remembered so a re-created environment actor learns
/// about it again.
#[derive(Debug, Clone)]
pub struct WorkerRegistration {
    /// The environment.
    pub environment: EnvironmentId,
    /// The targets it hosts.
    pub targets: BTreeSet<TargetRef>,
    /// How many executions it runs at once.
    pub capacity: usize,
    /// Its tags.
    pub provides: Requires,
    /// Tags an execution's `requires` must include to run on it (empty: any).
    pub accepts: Requires,
    /// Where its commands go.
    pub commands: mpsc::UnboundedSender<WorkerCommand>,
}

/// Where a waiting caller's reply goes.
enum ReplySink {
    /// One receiver.
    Once(oneshot::Sender<Reply>),
    /// Any number of receivers (see [`Router::expect_shared_reply`]).
    Shared(watch::Sender<Option<Reply>>),
}

impl ReplySink {
    /// Hands over the reply. Call it without holding a lock: it wakes the receiver's thread,
    /// and a lock held meanwhile makes that thread block on it as soon as it runs.
    fn send(self, reply: Reply) {
        match self {
            Self::Once(tx) => {
                let _ = tx.send(reply);
            }
            Self::Shared(tx) => {
                tx.send_replace(Some(reply));
            }
        }
    }
}

/// Routes a project's envelopes.
pub struct Router {
    project: String,
    arbiter: ArbiterHandle,
    writer: Mutex<Option<Writer>>,
    /// `None` once the project is closed.
    reader: Mutex<Option<Box<dyn ProjectStore>>>,
    /// Set when the project is unloaded: messages to its actors are dropped.
    closed: AtomicBool,
    /// Whether the project has cron schedules (it then stays loaded to fire them).
    scheduled: AtomicBool,
    /// Set once a commit was refused because the project's lease is lost.
    fenced: AtomicBool,
    project_actor: Mutex<Option<Addr<ProjectActor>>>,
    environments: Mutex<HashMap<EnvironmentId, Addr<EnvironmentActor>>>,
    /// Run actors, with whether each is retiring (see [`Router::begin_retire`]).
    runs: Mutex<HashMap<RunId, (Addr<RunActor>, bool)>>,
    /// Runs being deleted (see [`Router::begin_delete`]); lock after `runs`.
    deleting: Mutex<HashSet<RunId>>,
    workers: Mutex<HashMap<WorkerId, WorkerRegistration>>,
    replies: Mutex<HashMap<ReplyTo, ReplySink>>,
    next_id: AtomicU64,
    outgoing: Mutex<Vec<(Vec<Write>, Vec<Envelope>)>>,
    flush_scheduled: AtomicBool,
    /// Rung after a reply or a command is handed over; in-process workers' arbiters watch it.
    worker_bell: Arc<Doorbell>,
    /// How long in-process workers' arbiters watch it before they sleep.
    worker_spin: std::time::Duration,
    /// While set, the project's commits fail as on a full disk (see
    /// [`Router::inject_disk_full`]).
    #[cfg(any(test, feature = "failpoints"))]
    disk_full: Arc<AtomicBool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Router {
    /// A router for project `project`, whose actors live on `arbiter`; `reader` re-reads runs.
    /// In-process workers' arbiters spin up to `worker_spin` for their next message (see
    /// [`spinning_arbiter`]).
    pub fn new(
        project: String,
        arbiter: ArbiterHandle,
        reader: Box<dyn ProjectStore>,
        worker_spin: std::time::Duration,
    ) -> Self {
        Self {
            project,
            arbiter,
            writer: Mutex::new(None),
            reader: Mutex::new(Some(reader)),
            closed: AtomicBool::new(false),
            scheduled: AtomicBool::new(false),
            fenced: AtomicBool::new(false),
            project_actor: Mutex::new(None),
            environments: Mutex::new(HashMap::new()),
            runs: Mutex::new(HashMap::new()),
            deleting: Mutex::new(HashSet::new()),
            workers: Mutex::new(HashMap::new()),
            replies: Mutex::new(HashMap::new()),
            // Worker ids are stored with assignments: start above any id a previous process of
            // this project can have handed out (ids advance far slower than 1,000 per ms).
            next_id: AtomicU64::new(
                u64::try_from(now_millis())
                    .unwrap_or(1)
                    .saturating_mul(1_000),
            ),
            outgoing: Mutex::new(Vec::new()),
            flush_scheduled: AtomicBool::new(false),
            worker_bell: Arc::default(),
            worker_spin,
            #[cfg(any(test, feature = "failpoints"))]
            disk_full: Arc::default(),
        }
    }

    /// Starts the arbiter of an in-process worker: once idle, it watches for the replies and
    /// commands this router hands over before it sleeps.
    pub fn worker_arbiter(&self) -> actix::Arbiter {
        spinning_arbiter(Arc::clone(&self.worker_bell), self.worker_spin)
    }

    /// The project's name.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// Makes the actor of `run` panic (feature `failpoints`, for supervision tests).
    #[cfg(feature = "failpoints")]
    pub fn inject_run_panic(&self, run: RunId) {
        if let Some((addr, _)) = lock(&self.runs).get(&run) {
            addr.do_send(super::hosts::InjectPanic);
        }
    }

    /// Makes the actor of `environment` panic (feature `failpoints`, for supervision tests).
    #[cfg(feature = "failpoints")]
    pub fn inject_environment_panic(&self, environment: EnvironmentId) {
        if let Some(addr) = lock(&self.environments).get(&environment) {
            addr.do_send(super::hosts::InjectPanic);
        }
    }

    /// Makes the project's commits fail as on a full disk while `full` is set (tests and
    /// feature `failpoints`; the supervisor wraps the store with this switch).
    #[cfg(any(test, feature = "failpoints"))]
    pub fn inject_disk_full(&self, full: bool) {
        self.disk_full.store(full, Ordering::Release);
    }

    /// The switch of [`Router::inject_disk_full`].
    #[cfg(any(test, feature = "failpoints"))]
    pub(crate) fn disk_full_switch(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.disk_full)
    }

    /// How many run actors are in memory (finished runs are retired).
    pub fn runs_in_memory(&self) -> usize {
        lock(&self.runs).len()
    }

    /// The writer's counters (commits, batches, writes), for benchmarks and diagnostics.
    pub fn writer_stats(&self) -> crate::store::writer::WriterStats {
        lock(&self.writer)
            .as_ref()
            .map(GroupCommitWriter::stats)
            .unwrap_or_default()
    }

    /// Whether the project's store fails to commit (disk full, I/O errors): its writer retries
    /// and everything waits behind it, so new runs should be refused rather than queued.
    pub fn store_stalled(&self) -> bool {
        lock(&self.writer)
            .as_ref()
            .is_some_and(GroupCommitWriter::is_stalled)
    }

    /// Installs the writer (once, at start).
    pub fn set_writer(&self, writer: Writer) {
        *lock(&self.writer) = Some(writer);
    }

    /// Installs the project actor (once, at start).
    pub fn set_project_actor(&self, addr: Addr<ProjectActor>) {
        *lock(&self.project_actor) = Some(addr);
    }

    /// Starts the actor of a restored run (at project start). It is registered before it can
    /// receive anything, so no second actor is ever created for the same run.
    pub fn start_run(self: &Arc<Self>, core: RunCore, initial: Outbox) {
        let id = core.id();
        let router = Arc::clone(self);
        let mut runs = lock(&self.runs);
        let addr = RunActor::start_in_arbiter(&self.arbiter, move |_| {
            RunActor::new(core, router, initial)
        });
        runs.insert(id, (addr, false));
    }

    /// Commits `writes`, then delivers `messages`, now (from any thread).
    pub fn commit(&self, writes: Vec<Write>, messages: Vec<Envelope>) {
        if !writes.is_empty() || !messages.is_empty() {
            self.submit(vec![(writes, messages)]);
        }
    }

    /// Hands batches to the writer, in order.
    fn submit(&self, batches: Vec<(Vec<Write>, Vec<Envelope>)>) {
        let Some(writer) = lock(&self.writer).clone() else {
            return tracing::error!(project = %self.project, "dropping batches: the project is shut down");
        };
        if let Err(e) = writer.submit_all(batches) {
            tracing::error!(project = %self.project, error = %e, "dropping batches: the writer has stopped");
        }
    }

    /// Queues a batch from one of the project's actors. Batches queued while the arbiter works
    /// through its ready actors are handed to the writer together at the end of that turn, so
    /// the writer commits them in one transaction (e.g. a new execution and its assignment).
    pub fn queue_commit(self: &Arc<Self>, writes: Vec<Write>, messages: Vec<Envelope>) {
        if writes.is_empty() && messages.is_empty() {
            return;
        }
        lock(&self.outgoing).push((writes, messages));
        if !self.flush_scheduled.swap(true, Ordering::AcqRel) {
            let router = Arc::clone(self);
            actix_rt::spawn(async move { router.flush() });
        }
    }

    fn flush(&self) {
        self.flush_scheduled.store(false, Ordering::Release);
        let batches = std::mem::take(&mut *lock(&self.outgoing));
        self.submit(batches);
    }

    /// The store rejected batches for their contents (a constraint violation, an unencodable
    /// record): their effects must not happen. Callers waiting for a reply from those batches
    /// are told the request failed; commands to workers are dropped. (A commit that fails
    /// because of the disk or the database is retried by the writer until it succeeds, so it
    /// only ends up here if the project shuts down meanwhile.)
    pub fn commit_failed(&self, error: &StoreError, dropped: Vec<Vec<Envelope>>) {
        if error.stops_project() {
            self.fenced.store(true, Ordering::Release);
        }
        tracing::error!(project = %self.project, error = %error, "a commit was rejected by the store (or abandoned at shutdown); its effects were dropped");
        let failure = OrchestrationError::Unavailable(format!(
            "the change could not be saved ({})",
            error.code()
        ));
        for envelope in dropped.into_iter().flatten() {
            if let Envelope::Reply(to, reply) = envelope {
                self.reply(to, reply.failed(failure.clone()));
            }
        }
    }

    /// Stops accepting batches; the writer thread ends once in-flight batches are done.
    pub fn shutdown(&self) {
        lock(&self.writer).take();
        lock(&self.runs).clear();
        lock(&self.environments).clear();
        lock(&self.project_actor).take();
        lock(&self.workers).clear();
        // Dropping the senders tells every waiting caller that the project stopped.
        lock(&self.replies).clear();
    }

    /// Registers a waiting caller; the reply arrives on the receiver.
    pub fn expect_reply(&self) -> (ReplyTo, oneshot::Receiver<Reply>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.register_reply(id, ReplySink::Once(tx));
        (id, rx)
    }

    /// Registers a waiting caller whose reply several futures await (clone the receiver): it
    /// holds `None` until the reply arrives, and is closed if none will.
    pub fn expect_shared_reply(&self) -> (ReplyTo, watch::Receiver<Option<Reply>>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(None);
        self.register_reply(id, ReplySink::Shared(tx));
        (id, rx)
    }

    /// Registers a reply sink, unless the project was unloaded (a stale handle): the sink is
    /// then dropped at once, so the caller is told instead of waiting for ever. `close` sets
    /// `closed` before it clears the sinks, under the same lock.
    fn register_reply(&self, id: ReplyTo, sink: ReplySink) {
        let mut replies = lock(&self.replies);
        if !self.closed.load(Ordering::Acquire) {
            replies.insert(id, sink);
        }
    }

    /// Hands a reply to its caller, if it still waits.
    fn reply(&self, to: ReplyTo, reply: Reply) {
        let sink = lock(&self.replies).remove(&to);
        if let Some(sink) = sink {
            sink.send(reply);
        }
    }

    /// Forgets a waiting caller that gave up (its reply, if it comes, is dropped).
    pub fn forget_reply(&self, id: ReplyTo) {
        lock(&self.replies).remove(&id);
    }

    /// A fresh worker id.
    pub fn next_worker_id(&self) -> WorkerId {
        WorkerId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Connects a worker to its environment.
    pub fn connect_worker(self: &Arc<Self>, worker: WorkerId, registration: WorkerRegistration) {
        let msg = connect_msg(worker, &registration);
        let environment = registration.environment;
        lock(&self.workers).insert(worker, registration);
        self.deliver(Envelope::Environment(environment, msg));
    }

    /// Whether a connected worker of `environment` hosts `target`.
    pub fn hosts(&self, environment: EnvironmentId, target: &TargetRef) -> bool {
        lock(&self.workers)
            .values()
            .any(|r| r.environment == environment && r.targets.contains(target))
    }

    /// The targets the connected workers of `environment` host.
    pub fn hosted_targets(&self, environment: EnvironmentId) -> BTreeSet<TargetRef> {
        lock(&self.workers)
            .values()
            .filter(|r| r.environment == environment)
            .flat_map(|r| r.targets.iter().cloned())
            .collect()
    }

    /// Disconnects a worker: its executions are abandoned.
    pub fn disconnect_worker(self: &Arc<Self>, worker: WorkerId) {
        let registration = lock(&self.workers).remove(&worker);
        if let Some(reg) = registration {
            self.deliver(Envelope::Environment(
                reg.environment,
                EnvironmentMsg::Disconnect { worker },
            ));
        }
    }

    /// Marks a worker as reachable or not (unreachable workers get no new executions).
    pub fn set_worker_available(self: &Arc<Self>, worker: WorkerId, available: bool) {
        let environment = lock(&self.workers).get(&worker).map(|r| r.environment);
        if let Some(environment) = environment {
            self.deliver(Envelope::Environment(
                environment,
                EnvironmentMsg::SetAvailable { worker, available },
            ));
        }
    }

    /// Marks an execution of a worker as waiting for others or running again.
    pub fn set_execution_waiting(
        self: &Arc<Self>,
        worker: WorkerId,
        execution: crate::model::ExecutionId,
        waiting: bool,
    ) {
        let environment = lock(&self.workers).get(&worker).map(|r| r.environment);
        if let Some(environment) = environment {
            self.deliver(Envelope::Environment(
                environment,
                EnvironmentMsg::SetWaiting {
                    worker,
                    execution,
                    waiting,
                },
            ));
        }
    }

    /// Delivers several envelopes in order.
    pub fn deliver_all(self: &Arc<Self>, envelopes: Vec<Envelope>) {
        for envelope in envelopes {
            self.deliver(envelope);
        }
    }

    /// Delivers one envelope.
    pub fn deliver(self: &Arc<Self>, envelope: Envelope) {
        Router::route(self, envelope);
    }

    fn route(this: &Arc<Self>, envelope: Envelope) {
        let to_caller = matches!(envelope, Envelope::Worker(..) | Envelope::Reply(..));
        Router::route_now(this, envelope);
        if to_caller {
            this.worker_bell.ring();
        }
    }

    fn route_now(this: &Arc<Self>, envelope: Envelope) {
        if this.closed.load(Ordering::Acquire)
            && !matches!(envelope, Envelope::Worker(..) | Envelope::Reply(..))
        {
            return tracing::debug!(project = %this.project, "project unloaded; message to its actors dropped");
        }
        match envelope {
            Envelope::Project(msg) => {
                // Sent after the lock is released (sending wakes the arbiter's thread).
                let addr = lock(&this.project_actor).clone();
                match addr {
                    Some(addr) => addr.do_send(Deliver(msg)),
                    None => {
                        tracing::warn!(project = %this.project, "project actor not running; message dropped")
                    }
                }
            }
            Envelope::Environment(id, msg) => this.environment(id).do_send(Deliver(msg)),
            Envelope::Run(id, msg) => this.route_run(id, msg),
            Envelope::Worker(worker, command) => {
                let sender = lock(&this.workers).get(&worker).map(|w| w.commands.clone());
                if let Some(sender) = sender {
                    let _ = sender.send(command);
                }
            }
            Envelope::Retire(id) => this.begin_retire(id),
            Envelope::Reload(target) => this.reload(target),
            Envelope::Reply(to, reply) => this.reply(to, reply),
        }
    }

    fn environment(self: &Arc<Self>, id: EnvironmentId) -> Addr<EnvironmentActor> {
        if let Some(addr) = lock(&self.environments).get(&id).filter(|a| a.connected()) {
            return addr.clone();
        }
        let dead = lock(&self.environments).contains_key(&id);
        let mut initial = Outbox::default();
        let core = if dead {
            tracing::error!(project = %self.project, environment = %id, "environment actor died; re-creating it");
            self.rebuild_environment(id, &mut initial)
        } else {
            let mut core = EnvironmentCore::new(id);
            for (worker, reg) in self.registrations(id) {
                core.handle(connect_msg(worker, &reg), now_millis(), &mut initial);
            }
            core
        };
        let mut environments = lock(&self.environments);
        if let Some(addr) = environments.get(&id).filter(|a| a.connected()) {
            return addr.clone();
        }
        let router = Arc::clone(self);
        let addr = EnvironmentActor::start_in_arbiter(&self.arbiter, move |_| {
            EnvironmentActor::new(core, router, initial)
        });
        environments.insert(id, addr.clone());
        addr
    }

    fn registrations(&self, environment: EnvironmentId) -> Vec<(WorkerId, WorkerRegistration)> {
        lock(&self.workers)
            .iter()
            .filter(|(_, r)| r.environment == environment)
            .map(|(w, r)| (*w, r.clone()))
            .collect()
    }

    /// Supervision: rebuilds an environment's state after its actor panicked, from what the
    /// workers, the project and the database know. It starts paused until the project
    /// announces its actual state; its registered workers are connected again; the executions
    /// queued in it are queued again; those assigned to a worker still connected stay assigned,
    /// the others are abandoned.
    pub fn rebuild_environment(
        self: &Arc<Self>,
        id: EnvironmentId,
        out: &mut Outbox,
    ) -> EnvironmentCore {
        let now = now_millis();
        let mut core = EnvironmentCore::new(id);
        core.handle(EnvironmentMsg::SetState(EnvironmentState::Paused), now, out);
        let registrations = self.registrations(id);
        for (worker, reg) in &registrations {
            core.handle(connect_msg(*worker, reg), now, out);
        }
        out.send(Envelope::Project(ProjectMsg::Announce { environment: id }));
        let snapshot = self.read(|reader| reader.load());
        match snapshot {
            Ok(snapshot) => {
                for run in &snapshot.active_runs {
                    for (execution, worker) in RunCore::assigned_executions(run, id) {
                        if registrations.iter().any(|(w, _)| *w == worker) {
                            core.restore_assignment(execution, worker);
                        } else {
                            out.send(Envelope::Run(
                                execution.run(),
                                RunMsg::Abandon {
                                    execution,
                                    requeue: false,
                                },
                            ));
                        }
                    }
                    for ticket in RunCore::queued_tickets(run, id) {
                        core.handle(EnvironmentMsg::Enqueue(ticket), now, out);
                    }
                }
            }
            Err(e) => {
                tracing::error!(project = %self.project, error = %e, "could not reload the environment's executions")
            }
        }
        core
    }

    /// Reads a run as committed (for supervision and on-demand loading).
    pub fn load_run(&self, id: RunId) -> Result<Option<crate::store::RunSnapshot>, StoreError> {
        self.read(|reader| reader.load_run(id))
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn ProjectStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match lock(&self.reader).as_mut() {
            Some(reader) => f(reader.as_mut()),
            None => Err(StoreError::WriterStopped),
        }
    }

    /// Drops the reply channels `replies`: their callers learn that the request failed.
    pub fn fail_replies(&self, replies: &[ReplyTo]) {
        let mut pending = lock(&self.replies);
        for id in replies {
            pending.remove(id);
        }
    }

    /// After a panic, an actor asks to be reloaded once the writer has committed everything it
    /// sent before (this arrives through the writer).
    fn reload(&self, target: ReloadTarget) {
        match target {
            ReloadTarget::Run(id) => {
                if let Some((addr, _)) = lock(&self.runs).get(&id) {
                    addr.do_send(Reload);
                }
            }
            ReloadTarget::Environment(id) => {
                if let Some(addr) = lock(&self.environments).get(&id) {
                    addr.do_send(Reload);
                }
            }
        }
    }

    fn route_run(self: &Arc<Self>, id: RunId, msg: RunMsg) {
        // Sent after the lock is released (sending wakes the arbiter's thread).
        let running = lock(&self.runs)
            .get_mut(&id)
            .filter(|(a, _)| a.connected())
            .map(|(addr, retiring)| {
                *retiring = false;
                addr.clone()
            });
        if let Some(addr) = running {
            return addr.do_send(Deliver(msg));
        }
        let now = now_millis();
        let mut initial = Outbox::default();
        let core = if matches!(msg, RunMsg::Create { .. }) {
            Some(RunCore::new(id))
        } else if self.is_deleting(id) {
            None
        } else {
            // Not in memory: a run that finished before this process started, or whose actor
            // died (supervision re-creates it from the database).
            let snapshot = self.load_run(id);
            match snapshot {
                Ok(Some(snapshot)) => Some(RunCore::restore(snapshot, now, &mut initial)),
                Ok(None) => None,
                Err(e) => {
                    tracing::error!(project = %self.project, run = %id, error = %e, "could not load run");
                    None
                }
            }
        };
        let Some(core) = core else {
            // Unknown run: answer without keeping an actor for it.
            let mut out = Outbox::default();
            RunCore::new(id).handle(msg, now, &mut out);
            return self.commit(out.writes, out.messages);
        };
        let mut runs = lock(&self.runs);
        if let Some((addr, retiring)) = runs.get_mut(&id).filter(|(a, _)| a.connected()) {
            *retiring = false;
            return addr.do_send(Deliver(msg));
        }
        if lock(&self.deleting).contains(&id) && !matches!(msg, RunMsg::Create { .. }) {
            // Deleted while it was being read: answer as for an unknown run.
            drop(runs);
            let mut out = Outbox::default();
            RunCore::new(id).handle(msg, now, &mut out);
            return self.commit(out.writes, out.messages);
        }
        if runs.contains_key(&id) {
            tracing::error!(project = %self.project, run = %id, "run actor died; re-created it from the database");
        }
        let router = Arc::clone(self);
        let addr = RunActor::start_in_arbiter(&self.arbiter, move |_| {
            RunActor::new(core, router, initial)
        });
        addr.do_send(Deliver(msg));
        runs.insert(id, (addr, false));
    }

    /// A run actor found its run finished and idle, and all its earlier batches are committed
    /// (this arrives through the writer): mark it retiring and ask it to confirm.
    fn begin_retire(&self, id: RunId) {
        if let Some((addr, retiring)) = lock(&self.runs).get_mut(&id) {
            *retiring = true;
            addr.do_send(ConfirmRetire);
        }
    }

    /// The run actor confirms it is still idle: if nothing was delivered to it since
    /// `Router::begin_retire`, it is forgotten (and stops); a later message re-creates it from
    /// the database, which holds everything it did. Returns whether it may stop.
    pub fn finish_retire(&self, id: RunId) -> bool {
        let mut runs = lock(&self.runs);
        if runs.get(&id).is_some_and(|(_, retiring)| *retiring) {
            runs.remove(&id);
            true
        } else {
            false
        }
    }
}

fn connect_msg(worker: WorkerId, reg: &WorkerRegistration) -> EnvironmentMsg {
    EnvironmentMsg::Connect {
        worker,
        targets: reg.targets.clone(),
        capacity: reg.capacity,
        provides: reg.provides.clone(),
        accepts: reg.accepts.clone(),
    }
}

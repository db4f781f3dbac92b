//! [`Router`]: delivers envelopes to a project's actors, workers and waiting callers, and
//! re-creates actors that died. This file holds the router, its actor registry and the routing
//! of envelopes (ringing the in-process workers' doorbell); replies.rs correlates replies,
//! workers.rs the connected workers, commit.rs batches commits, recreate.rs starts and
//! re-creates actors, delete.rs and unload.rs delete runs and unload the project.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use actix::{Actor, Addr, ArbiterHandle};

use crate::model::{EnvironmentId, RunId, WorkerId, now_millis};
use crate::store::writer::GroupCommitWriter;
use crate::store::{ProjectStore, Write};

use super::super::messages::{Envelope, Outbox, ReplyTo, RunMsg};
use super::super::run::RunCore;
use super::hosts::{ConfirmRetire, Deliver};
use crate::tuning::{Doorbell, spinning_arbiter};

mod commit;
mod delete;
mod link;
mod recreate;
mod replies;
mod unload;
mod workers;

use replies::ReplySink;
pub use workers::WorkerRegistration;

/// The project actor of a project's router.
pub type ProjectActor = super::hosts::ProjectActor<Router>;
/// An environment actor of a project's router.
pub type EnvironmentActor = super::hosts::EnvironmentActor<Router>;
/// A run actor of a project's router.
pub type RunActor = super::hosts::RunActor<Router>;

/// The writer every project actor commits through.
pub type Writer = GroupCommitWriter<Vec<Envelope>>;

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
    /// Runs being deleted, with the messages held for them (see [`Router::begin_delete`]);
    /// lock after `runs`.
    deleting: Mutex<HashMap<RunId, Vec<RunMsg>>>,
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
            deleting: Mutex::new(HashMap::new()),
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

    /// Makes the project actor panic (feature `failpoints`, for supervision tests).
    #[cfg(feature = "failpoints")]
    pub fn inject_project_panic(&self) {
        if let Some(addr) = lock(&self.project_actor).as_ref() {
            addr.do_send(super::hosts::InjectPanic);
        }
    }

    /// Makes the project actor panic while it handles its next message (feature
    /// `failpoints`, for supervision tests).
    #[cfg(feature = "failpoints")]
    pub fn inject_project_panic_on_next(&self) {
        if let Some(addr) = lock(&self.project_actor).as_ref() {
            addr.do_send(super::hosts::PanicOnNext);
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

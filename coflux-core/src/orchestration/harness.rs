//! A deterministic harness that drives the orchestration state machines one message at a time,
//! with a virtual clock and scripted workers — no actors, threads, sockets or sleeps. Writes go
//! to a real store synchronously, so [`Harness::restart`] tests recovery exactly as a crash
//! would leave things (everything acknowledged is committed).
//!
//! Modelled on Meilisearch's index-scheduler test harness: tests advance the orchestrator event
//! by event and assert on what it committed and sent.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::model::{
    Checkpoints, EnvironmentId, ExecutionId, Millis, RunId, Schedule, TargetRef, Value, WorkerId,
};
use crate::store::{ProjectStore, StoreError};

use super::environment::EnvironmentCore;
use super::messages::{Envelope, EnvironmentMsg, Outbox, Reply, ReplyTo, Timer, WorkerCommand};
use super::project::ProjectCore;
use super::run::RunCore;

mod scripted;

/// An execution handed to a scripted worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Assigned {
    /// The worker.
    pub worker: WorkerId,
    /// The execution.
    pub execution: ExecutionId,
    /// Its target.
    pub target: TargetRef,
    /// Its arguments.
    pub arguments: Vec<Value>,
    /// Its step's checkpoint state.
    pub checkpoints: Checkpoints,
}

/// The deterministic orchestration harness.
pub struct Harness {
    store: Box<dyn ProjectStore>,
    now: Millis,
    project: ProjectCore,
    environments: BTreeMap<EnvironmentId, EnvironmentCore>,
    runs: BTreeMap<RunId, RunCore>,
    queue: VecDeque<Envelope>,
    timers: Vec<Timer>,
    next_reply: ReplyTo,
    replies: HashMap<ReplyTo, Reply>,
    assigned: VecDeque<Assigned>,
    aborted: Vec<ExecutionId>,
}

impl Harness {
    /// Opens the harness over a store (restoring whatever it holds), at virtual time 1000.
    pub fn new(store: impl ProjectStore) -> Result<Self, StoreError> {
        Self::from_boxed(Box::new(store), 1_000, 0)
    }

    fn from_boxed(
        store: Box<dyn ProjectStore>,
        now: Millis,
        grace_ms: u64,
    ) -> Result<Self, StoreError> {
        let snapshot = store.load()?;
        let mut out = Outbox::default();
        let project = ProjectCore::restore(&snapshot, &mut out);
        let mut runs = BTreeMap::new();
        for run in snapshot.active_runs {
            let core = RunCore::recover(run, now, grace_ms, &mut out);
            runs.insert(core.id(), core);
        }
        let mut harness = Self {
            store,
            now,
            project,
            environments: BTreeMap::new(),
            runs,
            queue: VecDeque::new(),
            timers: Vec::new(),
            next_reply: 1,
            replies: HashMap::new(),
            assigned: VecDeque::new(),
            aborted: Vec::new(),
        };
        harness.commit(out);
        Ok(harness)
    }

    /// Simulates a crash and restart: all in-memory state is dropped and rebuilt from the store.
    /// Messages not yet processed and scripted assignments are lost, as they would be.
    pub fn restart(self) -> Result<Self, StoreError> {
        Self::from_boxed(self.store, self.now, 0)
    }

    /// Like [`Harness::restart`], after the orchestrator was down for `down_ms`.
    pub fn restart_after(self, down_ms: Millis) -> Result<Self, StoreError> {
        let now = self.now + down_ms;
        Self::from_boxed(self.store, now, 0)
    }

    /// The stored cron schedules.
    pub fn store_schedules(&self) -> Vec<Schedule> {
        self.store.load().map(|s| s.schedules).unwrap_or_default()
    }

    /// Like [`Harness::restart`], as the server restarts: executions that were assigned stay
    /// claimable by reconnecting workers for `grace_ms`.
    pub fn restart_with_grace(self, grace_ms: u64) -> Result<Self, StoreError> {
        Self::from_boxed(self.store, self.now, grace_ms)
    }

    /// Sets how long idempotency keys are remembered.
    pub fn set_key_retention(&mut self, retention_ms: Millis) {
        self.project.set_key_retention(retention_ms);
    }

    /// A worker claims executions it still runs; returns those assigned to it.
    pub fn claim(
        &mut self,
        environment: EnvironmentId,
        worker: u64,
        executions: Vec<ExecutionId>,
    ) -> Vec<ExecutionId> {
        self.claim_after(environment, worker, executions, None)
    }

    /// [`Self::claim`] by a worker that names its session's worker before the restart.
    pub fn claim_after(
        &mut self,
        environment: EnvironmentId,
        worker: u64,
        executions: Vec<ExecutionId>,
        previous: Option<u64>,
    ) -> Vec<ExecutionId> {
        let reply = self.request_later(|reply| {
            Envelope::Environment(
                environment,
                EnvironmentMsg::Claim {
                    worker: WorkerId(worker),
                    executions,
                    previous: previous.map(WorkerId),
                    reply,
                },
            )
        });
        self.run_until_idle();
        match self.reply(reply) {
            Some(Reply::Claimed(claimed)) => claimed,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// The store, for inspection.
    pub fn store(&self) -> &dyn ProjectStore {
        self.store.as_ref()
    }

    /// The virtual time.
    pub fn now(&self) -> Millis {
        self.now
    }

    /// Processes one queued message. Returns false when there was none.
    pub fn step(&mut self) -> bool {
        let Some(envelope) = self.queue.pop_front() else {
            return false;
        };
        let mut out = Outbox::default();
        let now = self.now;
        match envelope {
            Envelope::Project(msg) => self.project.handle(msg, now, &mut out),
            Envelope::Environment(id, msg) => self
                .environments
                .entry(id)
                .or_insert_with(|| EnvironmentCore::new(id))
                .handle(msg, now, &mut out),
            Envelope::Run(id, msg) => {
                if !self.runs.contains_key(&id) {
                    let core = match self.store.load_run(id) {
                        Ok(Some(snapshot)) => RunCore::restore(snapshot, now, &mut out),
                        _ => RunCore::new(id),
                    };
                    self.runs.insert(id, core);
                }
                if let Some(run) = self.runs.get_mut(&id) {
                    run.handle(msg, now, &mut out);
                }
            }
            Envelope::Worker(
                worker,
                WorkerCommand::Execute {
                    execution,
                    target,
                    arguments,
                    checkpoints,
                    ..
                },
            ) => {
                self.assigned.push_back(Assigned {
                    worker,
                    execution,
                    target,
                    arguments: arguments.to_vec(),
                    checkpoints: (*checkpoints).clone(),
                });
            }
            Envelope::Worker(_, WorkerCommand::Abort { execution }) => self.aborted.push(execution),
            Envelope::Retire(_) | Envelope::Reload(_) => {}
            Envelope::Reply(to, reply) => {
                self.replies.insert(to, reply);
            }
        }
        self.commit(out);
        true
    }

    fn commit(&mut self, out: Outbox) {
        if !out.writes.is_empty() {
            self.store
                .apply(&out.writes)
                .expect("harness store write failed");
        }
        self.queue.extend(out.messages);
        self.timers.extend(out.timers);
    }

    /// Processes messages until none is left.
    pub fn run_until_idle(&mut self) {
        while self.step() {}
    }

    /// Moves the virtual clock forward, delivering the timers that fall due, and runs until idle.
    pub fn advance(&mut self, ms: Millis) {
        self.now += ms;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.timers)
            .into_iter()
            .partition(|t| t.at <= self.now);
        self.timers = later;
        self.queue.extend(due.into_iter().map(|t| t.envelope));
        self.run_until_idle();
    }

    /// The earliest pending timer.
    pub fn next_timer(&self) -> Option<Millis> {
        self.timers.iter().map(|t| t.at).min()
    }

    fn request(&mut self, make: impl FnOnce(ReplyTo) -> Envelope) -> Reply {
        let reply = self.next_reply;
        self.next_reply += 1;
        self.queue.push_back(make(reply));
        self.run_until_idle();
        self.replies.remove(&reply).expect("no reply was sent")
    }

    /// Sends a message whose reply comes later; see [`Harness::reply`].
    pub fn request_later(&mut self, make: impl FnOnce(ReplyTo) -> Envelope) -> ReplyTo {
        let reply = self.next_reply;
        self.next_reply += 1;
        self.queue.push_back(make(reply));
        self.run_until_idle();
        reply
    }

    /// The reply sent to `to`, if any yet.
    pub fn reply(&mut self, to: ReplyTo) -> Option<Reply> {
        self.replies.remove(&to)
    }
}

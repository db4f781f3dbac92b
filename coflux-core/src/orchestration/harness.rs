//! A deterministic harness that drives the orchestration state machines one message at a time,
//! with a virtual clock and scripted workers — no actors, threads, sockets or sleeps. Writes go
//! to a real store synchronously, so [`Harness::restart`] tests recovery exactly as a crash
//! would leave things (everything acknowledged is committed).
//!
//! Modelled on Meilisearch's index-scheduler test harness: tests advance the orchestrator event
//! by event and assert on what it committed and sent.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::model::SubmitRequest;
use crate::model::{
    Checkpoints, Dependencies, Environment, EnvironmentId, EnvironmentName, EnvironmentState,
    ErrorInfo, ExecutionId, ExecutionResult, Millis, RunId, Schedule, StepId, StepOptions,
    TargetKind, TargetRef, Value, WorkerId,
};
use crate::store::{ProjectStore, StoreError};

use super::environment::EnvironmentCore;
use super::error::OrchestrationError;
use super::messages::{
    Envelope, EnvironmentMsg, Outbox, ProjectMsg, Reply, ReplyTo, RunMsg, RunOptions, Submission,
    Timer, WorkerCommand,
};
use super::project::ProjectCore;
use super::run::RunCore;

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

    /// Creates an environment.
    pub fn create_environment(
        &mut self,
        name: &str,
        parent: Option<&str>,
    ) -> Result<Environment, OrchestrationError> {
        let name = env_name(name)?;
        let parent = parent.map(env_name).transpose()?;
        match self.request(|reply| {
            Envelope::Project(ProjectMsg::CreateEnvironment {
                name,
                parent,
                reply,
            })
        }) {
            Reply::Environment(r) => r,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Pauses, resumes or archives an environment.
    pub fn set_environment_state(
        &mut self,
        name: &str,
        state: EnvironmentState,
    ) -> Result<Environment, OrchestrationError> {
        let name = env_name(name)?;
        match self.request(|reply| {
            Envelope::Project(ProjectMsg::SetEnvironmentState { name, state, reply })
        }) {
            Reply::Environment(r) => r,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Connects a scripted worker hosting `targets` with `capacity` slots.
    pub fn connect_worker(
        &mut self,
        environment: EnvironmentId,
        worker: u64,
        targets: &[TargetRef],
        capacity: usize,
    ) -> WorkerId {
        let worker = WorkerId(worker);
        let targets: BTreeSet<TargetRef> = targets.iter().cloned().collect();
        let msg = EnvironmentMsg::Connect {
            worker,
            targets,
            capacity,
            provides: Default::default(),
            accepts: Default::default(),
        };
        self.queue
            .push_back(Envelope::Environment(environment, msg));
        self.run_until_idle();
        worker
    }

    /// Disconnects a scripted worker (its executions are abandoned).
    pub fn disconnect_worker(&mut self, environment: EnvironmentId, worker: WorkerId) {
        self.queue.push_back(Envelope::Environment(
            environment,
            EnvironmentMsg::Disconnect { worker },
        ));
        self.run_until_idle();
    }

    /// Submits a workflow.
    pub fn submit(
        &mut self,
        environment: &str,
        target: &TargetRef,
        arguments: Vec<Value>,
        options: StepOptions,
    ) -> Result<(RunId, ExecutionId), OrchestrationError> {
        self.submit_keyed(environment, target, arguments, options, None)
    }

    /// Submits a workflow with an idempotency key.
    pub fn submit_keyed(
        &mut self,
        environment: &str,
        target: &TargetRef,
        arguments: Vec<Value>,
        options: StepOptions,
        idempotency_key: Option<&str>,
    ) -> Result<(RunId, ExecutionId), OrchestrationError> {
        let environment = env_name(environment)?;
        let target = target.clone();
        let idempotency_key = idempotency_key.map(str::to_string);
        match self.request(|reply| {
            Envelope::Project(ProjectMsg::StartRun {
                environment,
                target,
                arguments,
                // The harness has no workers: its runs are started unchecked.
                submission: Box::new(Submission {
                    options: RunOptions::Given(options),
                    idempotency_key,
                    allow_unregistered: true,
                    hosted: Default::default(),
                }),
                reply,
            })
        }) {
            Reply::RunStarted(r) => r,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// A running execution calls a task.
    pub fn call(
        &mut self,
        parent: ExecutionId,
        target: &TargetRef,
        arguments: Vec<Value>,
        options: StepOptions,
    ) -> Result<ExecutionId, OrchestrationError> {
        self.call_kind(parent, target, TargetKind::Task, arguments, options)
    }

    /// A running execution calls a workflow (which starts a run of its own) or a task.
    pub fn call_kind(
        &mut self,
        parent: ExecutionId,
        target: &TargetRef,
        kind: TargetKind,
        arguments: Vec<Value>,
        options: StepOptions,
    ) -> Result<ExecutionId, OrchestrationError> {
        self.call_numbered(parent, None, target, kind, arguments, options)
    }

    /// Like [`Harness::call_kind`], as an agent calls: with the call's number within `parent`.
    pub fn call_numbered(
        &mut self,
        parent: ExecutionId,
        call: Option<u32>,
        target: &TargetRef,
        kind: TargetKind,
        arguments: Vec<Value>,
        options: StepOptions,
    ) -> Result<ExecutionId, OrchestrationError> {
        let request = SubmitRequest {
            target: target.clone(),
            kind,
            arguments,
            options,
        };
        match self.request(|reply| {
            Envelope::Run(
                parent.run(),
                RunMsg::Submit {
                    parent,
                    call,
                    request,
                    reply,
                    wait: None,
                },
            )
        }) {
            Reply::Submitted(r) => r,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Starts waiting for an execution's final result; see [`Harness::result_of`].
    pub fn wait(&mut self, execution: ExecutionId) -> ReplyTo {
        self.request_later(|reply| {
            Envelope::Run(execution.run(), RunMsg::Wait { execution, reply })
        })
    }

    /// Starts waiting for a run's result (from its own environment).
    pub fn wait_run(&mut self, run: RunId) -> ReplyTo {
        self.wait_seen(run, 1, None, None)
    }

    /// Starts waiting for a step's result as seen from `view`, or for one attempt's.
    pub fn wait_seen(
        &mut self,
        run: RunId,
        step: u32,
        attempt: Option<u32>,
        view: Option<EnvironmentId>,
    ) -> ReplyTo {
        let view = view.map(|v| self.project.lineage(v)).unwrap_or_default();
        self.request_later(|reply| {
            Envelope::Run(
                run,
                RunMsg::WaitRun {
                    step,
                    attempt,
                    view,
                    reply,
                },
            )
        })
    }

    /// The final result delivered to a waiter, if delivered yet.
    pub fn result_of(&mut self, waiter: ReplyTo) -> Option<ExecutionResult> {
        match self.replies.remove(&waiter)? {
            Reply::Result(Ok(r)) => Some(r),
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// The error delivered to a waiter, if it was refused.
    pub fn error_of(&mut self, waiter: ReplyTo) -> Option<OrchestrationError> {
        match self.replies.remove(&waiter)? {
            Reply::Result(Err(e)) => Some(e),
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Re-runs a step, optionally in another environment.
    pub fn rerun(
        &mut self,
        step: StepId,
        environment: Option<&str>,
    ) -> Result<ExecutionId, OrchestrationError> {
        let environment = environment.map(env_name).transpose()?;
        match self.request(|reply| {
            Envelope::Project(ProjectMsg::RerunStep {
                step,
                environment,
                reply,
            })
        }) {
            Reply::Rerun(r) => r,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Takes the executions handed to workers so far, oldest first.
    pub fn take_assigned(&mut self) -> Vec<Assigned> {
        self.assigned.drain(..).collect()
    }

    /// Executions whose workers were told to abort.
    pub fn aborted(&self) -> &[ExecutionId] {
        &self.aborted
    }

    /// A worker reports a result.
    pub fn report(&mut self, execution: ExecutionId, result: ExecutionResult) {
        self.queue.push_back(Envelope::Run(
            execution.run(),
            RunMsg::Result {
                execution,
                result,
                ack: None,
            },
        ));
        self.run_until_idle();
    }

    /// A running execution writes checkpoints (`set` names given a value, `reset` cleared).
    pub fn checkpoint(
        &mut self,
        execution: ExecutionId,
        set: Checkpoints,
        reset: Vec<String>,
    ) -> Result<(), OrchestrationError> {
        let reply = self.request(|ack| {
            Envelope::Run(
                execution.run(),
                RunMsg::Checkpoint {
                    execution,
                    set,
                    reset,
                    ack,
                },
            )
        });
        match reply {
            Reply::Recorded(r) => r,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// A worker reports a value.
    pub fn complete(&mut self, execution: ExecutionId, data: serde_json::Value) {
        self.report(
            execution,
            ExecutionResult::Value {
                value: Value::raw(data),
            },
        );
    }

    /// A worker reports an error.
    pub fn fail(&mut self, execution: ExecutionId, error_type: &str, message: &str) {
        self.report(
            execution,
            ExecutionResult::Error {
                error: ErrorInfo::new(error_type, message),
                retry: None,
            },
        );
    }

    /// A running execution suspends itself until `execute_after` and until `dependencies`
    /// have finished.
    pub fn suspend(
        &mut self,
        execution: ExecutionId,
        execute_after: Option<Millis>,
        dependencies: Dependencies,
    ) -> Result<(), OrchestrationError> {
        match self.request(|ack| {
            Envelope::Run(
                execution.run(),
                RunMsg::Suspend {
                    execution,
                    execute_after,
                    dependencies,
                    ack: Some(ack),
                },
            )
        }) {
            Reply::Recorded(r) => r,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Starts `target` in an environment at every tick of `cron`.
    pub fn create_schedule(
        &mut self,
        environment: &str,
        target: &TargetRef,
        cron: &str,
    ) -> Result<Box<Schedule>, OrchestrationError> {
        let environment = env_name(environment)?;
        let target = target.clone();
        let cron = cron.to_string();
        match self.request(|reply| {
            Envelope::Project(ProjectMsg::CreateSchedule {
                environment,
                target,
                cron,
                arguments: Vec::new(),
                options: StepOptions::default(),
                reply,
            })
        }) {
            Reply::Schedule(r) => r,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Removes a schedule.
    pub fn delete_schedule(&mut self, id: u32) -> Result<Box<Schedule>, OrchestrationError> {
        match self.request(|reply| Envelope::Project(ProjectMsg::DeleteSchedule { id, reply })) {
            Reply::Schedule(r) => r,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Limits how many executions of `target` run at once in an environment.
    pub fn set_limit(
        &mut self,
        environment: &str,
        target: &TargetRef,
        max: Option<u32>,
    ) -> Result<(), OrchestrationError> {
        let environment = env_name(environment)?;
        let target = target.clone();
        match self.request(|reply| {
            Envelope::Project(ProjectMsg::SetConcurrencyLimit {
                environment,
                target,
                max,
                reply,
            })
        }) {
            Reply::Environment(r) => r.map(|_| ()),
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Cancels an execution.
    pub fn cancel(&mut self, execution: ExecutionId) {
        self.queue
            .push_back(Envelope::Run(execution.run(), RunMsg::Cancel { execution }));
        self.run_until_idle();
    }
}

/// Validates an environment name as the API would.
fn env_name(name: &str) -> Result<EnvironmentName, OrchestrationError> {
    EnvironmentName::new(name).map_err(|e| OrchestrationError::Invalid(e.to_string()))
}

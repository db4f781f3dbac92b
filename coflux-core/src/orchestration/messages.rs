//! The messages exchanged by the orchestration state machines, and their [`Outbox`].
//!
//! Each state machine (project, environment, run) handles one message at a time and fills an
//! [`Outbox`]: the writes to persist, then the messages to send once those writes are committed.
//! The actor shells route envelopes through the group-commit writer; the test harness routes
//! them through a queue, one at a time.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::model::{
    Checkpoints, Dependencies, Environment, EnvironmentId, EnvironmentName, EnvironmentState,
    ExecutionId, ExecutionResult, Millis, QueuedExecution, Requires, RunId, Schedule, StepId,
    StepOptions, StreamDefaults, TargetDefinition, TargetRef, Value, WorkerId,
};
use crate::sdk::SubmitRequest;
use crate::store::{CacheOutcome, Write};

use super::error::OrchestrationError;

/// Identifies a caller waiting for a [`Reply`] (a oneshot in the actor shell, a slot in the
/// harness).
pub type ReplyTo = u64;

/// A message on its way to a component.
#[derive(Debug, Clone)]
pub enum Envelope {
    /// To the project.
    Project(ProjectMsg),
    /// To an environment.
    Environment(EnvironmentId, EnvironmentMsg),
    /// To a run.
    Run(RunId, RunMsg),
    /// To a worker.
    Worker(WorkerId, WorkerCommand),
    /// To a waiting caller.
    Reply(ReplyTo, Reply),
    /// A run's actor may be retired (sent by the actor host once the run is finished and idle;
    /// it goes through the writer so it arrives after the run's last commit).
    Retire(RunId),
    /// An actor that panicked can now be reloaded from the database (sent by the actor host; it
    /// goes through the writer so it arrives after everything the actor sent before).
    Reload(ReloadTarget),
}

/// Which actor to reload after a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadTarget {
    /// A run's actor.
    Run(RunId),
    /// An environment's actor.
    Environment(EnvironmentId),
}

/// A cache lookup to make when an execution becomes due.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheCheck {
    /// The step's cache key.
    pub key: String,
    /// Results older than this are not reused.
    pub max_age_ms: Option<u64>,
}

/// Everything an environment needs to schedule and dispatch an execution.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The execution.
    pub execution: ExecutionId,
    /// The environment it runs in.
    pub environment: EnvironmentId,
    /// The target to run.
    pub target: TargetRef,
    /// Its arguments.
    pub arguments: Arc<Vec<Value>>,
    /// Not before this time.
    pub execute_after: Option<Millis>,
    /// Tags the worker must provide.
    pub requires: Requires,
    /// A cache lookup still to make (first attempts of cached steps only).
    pub cache: Option<CacheCheck>,
    /// The execution's timeout.
    pub timeout_ms: Option<u64>,
    /// Queued executions with the same key collapse into the one due last.
    pub defer_key: Option<String>,
    /// The step's checkpoint state in its environment when the execution was queued.
    pub checkpoints: Arc<Checkpoints>,
    /// The call site's stream settings, for the executor.
    pub streams: Option<StreamDefaults>,
    /// When the execution was created (orders deferred executions with the same due time).
    pub created_at: Millis,
}

/// Messages to the project.
#[derive(Debug, Clone)]
pub enum ProjectMsg {
    /// Create an environment.
    CreateEnvironment {
        /// Its name.
        name: EnvironmentName,
        /// The environment it inherits from.
        parent: Option<EnvironmentName>,
        /// Gets [`Reply::Environment`].
        reply: ReplyTo,
    },
    /// Pause, resume or archive an environment.
    SetEnvironmentState {
        /// Which.
        name: EnvironmentName,
        /// The new state.
        state: EnvironmentState,
        /// Gets [`Reply::Environment`].
        reply: ReplyTo,
    },
    /// Re-base an environment: it inherits from another parent, or from none.
    SetEnvironmentParent {
        /// Which.
        name: EnvironmentName,
        /// The new parent (`None`: no parent).
        parent: Option<EnvironmentName>,
        /// Gets [`Reply::Environment`].
        reply: ReplyTo,
    },
    /// Register workflow and task definitions for an environment.
    RegisterManifests {
        /// The environment.
        environment: EnvironmentName,
        /// The definitions.
        definitions: Vec<TargetDefinition>,
        /// Gets [`Reply::Environment`].
        reply: ReplyTo,
    },
    /// Stop showing a module's targets in an environment until they are registered again.
    ArchiveModule {
        /// The environment.
        environment: EnvironmentName,
        /// The module.
        module: String,
        /// Gets [`Reply::Environment`].
        reply: ReplyTo,
    },
    /// Limit how many executions of a target run at once in an environment.
    SetConcurrencyLimit {
        /// The environment.
        environment: EnvironmentName,
        /// The target.
        target: TargetRef,
        /// The limit (`None`: none).
        max: Option<u32>,
        /// Gets [`Reply::Environment`].
        reply: ReplyTo,
    },
    /// Start a workflow on a cron schedule.
    CreateSchedule {
        /// The environment its runs start in.
        environment: EnvironmentName,
        /// The workflow.
        target: TargetRef,
        /// The cron expression (validated).
        cron: String,
        /// The arguments of every run.
        arguments: Vec<Value>,
        /// The options of every run.
        options: StepOptions,
        /// Gets [`Reply::Schedule`].
        reply: ReplyTo,
    },
    /// Remove a schedule.
    DeleteSchedule {
        /// Its id.
        id: u32,
        /// Gets [`Reply::Schedule`] with the removed schedule.
        reply: ReplyTo,
    },
    /// A schedule's tick is due (a timer).
    ScheduleTick {
        /// The schedule.
        id: u32,
        /// The tick.
        at: Millis,
    },
    /// List environments.
    ListEnvironments {
        /// Gets [`Reply::Environments`].
        reply: ReplyTo,
    },
    /// Submit a workflow: start a run.
    StartRun {
        /// The environment to run in.
        environment: EnvironmentName,
        /// The workflow.
        target: TargetRef,
        /// Its arguments.
        arguments: Vec<Value>,
        /// Its options.
        options: StepOptions,
        /// Submissions with the same key (in the same environment, within the retention) get
        /// the same run.
        idempotency_key: Option<String>,
        /// Gets [`Reply::RunStarted`].
        reply: ReplyTo,
    },
    /// An execution called a workflow: start a run linked to it.
    SpawnRun {
        /// The calling execution.
        parent: ExecutionId,
        /// The call's number within `parent`, when the caller numbers its calls (see
        /// [`RunMsg::Submit`]).
        call: Option<u32>,
        /// The environment to run in (the caller's).
        environment: EnvironmentId,
        /// The workflow.
        target: TargetRef,
        /// Its arguments.
        arguments: Vec<Value>,
        /// Its options.
        options: StepOptions,
        /// Gets [`Reply::Submitted`] with the new run's initial execution.
        reply: ReplyTo,
        /// Also wait for the new run's result: gets [`Reply::Result`].
        wait: Option<ReplyTo>,
    },
    /// Re-run a step, in the step's environment or a descendant of it.
    RerunStep {
        /// The step.
        step: StepId,
        /// Where to run it (`None`: where the step was first run).
        environment: Option<EnvironmentName>,
        /// Gets [`Reply::Rerun`].
        reply: ReplyTo,
    },
    /// An execution became due and its step is cached: look it up.
    CacheLookup(Ticket),
    /// Tell an environment (whose actor was re-created) its state again.
    Announce {
        /// The environment.
        environment: EnvironmentId,
    },
    /// Record the state of an execution of a cached step.
    CacheUpdate {
        /// The step's cache key.
        key: String,
        /// The execution.
        execution: ExecutionId,
        /// The environment it runs in.
        environment: EnvironmentId,
        /// When it was created.
        created_at: Millis,
        /// Its state.
        outcome: CacheOutcome,
    },
    /// Runs about to be deleted: their executions stop being cache sources and their
    /// idempotency keys are forgotten. Gets [`Reply::Recorded`].
    ForgetRuns {
        /// The runs.
        runs: Vec<RunId>,
        /// Who waits.
        reply: ReplyTo,
    },
}

/// Messages to an environment.
#[derive(Debug, Clone)]
pub enum EnvironmentMsg {
    /// The environment's state (sent on creation and on every change).
    SetState(EnvironmentState),
    /// At most `max` executions of `target` run at once (`None`: no limit).
    SetLimit {
        /// The target.
        target: TargetRef,
        /// The limit.
        max: Option<u32>,
    },
    /// Schedule an execution.
    Enqueue(Ticket),
    /// The project found no cached result: the execution can be dispatched (it is now a cache
    /// source for `key`).
    CacheMissed {
        /// The execution.
        ticket: Ticket,
        /// Its cache key.
        key: String,
    },
    /// A timer fired: move due executions on.
    Tick,
    /// A worker connected.
    Connect {
        /// The worker.
        worker: WorkerId,
        /// The targets it hosts.
        targets: BTreeSet<TargetRef>,
        /// How many executions it runs at once.
        capacity: usize,
        /// Its tags.
        provides: Requires,
        /// Tags an execution's `requires` must include for it to run here (Coflux's
        /// `accepts`; empty: any execution).
        accepts: Requires,
    },
    /// A worker became unreachable (`false`: it keeps its executions but gets no new ones) or
    /// reachable again.
    SetAvailable {
        /// The worker.
        worker: WorkerId,
        /// Whether it may be assigned work.
        available: bool,
    },
    /// After a restart: an execution that was running on a worker of the previous process.
    /// A worker may claim it before `deadline`; after that it is abandoned.
    Orphan {
        /// The execution.
        execution: ExecutionId,
        /// Its target (it counts against the target's concurrency limit).
        target: TargetRef,
        /// When it is abandoned unless claimed.
        deadline: Millis,
        /// The worker it was assigned to (in the previous process).
        worker: WorkerId,
    },
    /// What waits in the queue and why (at most `limit` executions, oldest first).
    Queue {
        /// The most executions listed.
        limit: usize,
        /// Gets [`Reply::Queue`].
        reply: ReplyTo,
    },
    /// A (re)connected worker says it is still running these executions: those that are
    /// orphans become its assignments.
    Claim {
        /// The worker.
        worker: WorkerId,
        /// What it runs.
        executions: Vec<ExecutionId>,
        /// The worker of the agent's session before the restart, if it says: its orphans
        /// that are not claimed are abandoned at once instead of when the grace period ends.
        previous: Option<WorkerId>,
        /// Gets [`Reply::Claimed`] with the executions now assigned to it.
        reply: ReplyTo,
    },
    /// An execution of a worker waits for others (`true`: it does not count against the
    /// worker's capacity) or runs again.
    SetWaiting {
        /// The worker.
        worker: WorkerId,
        /// The execution.
        execution: ExecutionId,
        /// Whether it waits.
        waiting: bool,
    },
    /// A worker went away: its executions are abandoned.
    Disconnect {
        /// The worker.
        worker: WorkerId,
    },
    /// An execution ended: free its worker's slot.
    Finished {
        /// The execution.
        execution: ExecutionId,
    },
    /// Stop an execution: drop it from the queue, or abort it on its worker.
    Withdraw {
        /// The execution.
        execution: ExecutionId,
    },
}

/// Messages to a run.
#[derive(Debug, Clone)]
pub enum RunMsg {
    /// Create the run with its initial step.
    Create {
        /// The environment.
        environment: EnvironmentId,
        /// The workflow.
        target: TargetRef,
        /// Its arguments.
        arguments: Vec<Value>,
        /// Its options.
        options: StepOptions,
        /// Recorded with the run.
        idempotency_key: Option<String>,
        /// The execution that called the workflow, for a spawned run.
        spawned_by: Option<ExecutionId>,
        /// The call's number within `spawned_by`, if numbered.
        call: Option<u32>,
        /// Gets [`Reply::RunStarted`] ([`Reply::Submitted`] for a spawned run).
        reply: ReplyTo,
        /// Also wait for the run's result: gets [`Reply::Result`].
        wait: Option<ReplyTo>,
    },
    /// A run spawned by one of this run's executions was created.
    Spawned {
        /// The calling execution.
        parent: ExecutionId,
        /// The call's number within `parent`, if numbered.
        call: Option<u32>,
        /// The new run's initial execution.
        child: ExecutionId,
    },
    /// A running execution suspends itself: it ends, and a new attempt of its step runs later
    /// (after `execute_after`, once `dependencies` have finished).
    Suspend {
        /// The execution.
        execution: ExecutionId,
        /// Not before this time.
        execute_after: Option<Millis>,
        /// Executions to wait for first.
        dependencies: Dependencies,
        /// Gets [`Reply::Recorded`] once the suspension is committed.
        ack: Option<ReplyTo>,
    },
    /// A queued execution collapsed into another with the same defer key.
    Defer {
        /// The execution.
        execution: ExecutionId,
        /// The one that runs instead.
        successor: ExecutionId,
    },
    /// Tells a caller the run's id and initial execution (a repeated idempotent submission).
    Started {
        /// Gets [`Reply::RunStarted`].
        reply: ReplyTo,
    },
    /// A running execution calls a target.
    Submit {
        /// The caller.
        parent: ExecutionId,
        /// The call's number within `parent` (1, 2, ...), when the caller numbers its calls
        /// (agents do): a repeat of a numbered call gets the first one's child, so a submission
        /// sent again after a reconnect or a restart never creates a second child.
        call: Option<u32>,
        /// The call.
        request: SubmitRequest,
        /// Gets [`Reply::Submitted`].
        reply: ReplyTo,
        /// Also wait for the child's final result: gets [`Reply::Result`].
        wait: Option<ReplyTo>,
    },
    /// Wait for the final result of an execution's chain.
    Wait {
        /// The execution.
        execution: ExecutionId,
        /// Gets [`Reply::Result`].
        reply: ReplyTo,
    },
    /// Wait for the result of one of the run's steps, as seen from an environment: the latest
    /// attempt visible there ([`crate::model::visible_from`]) followed to its final result, or
    /// one attempt exactly (its own result, following only hand-overs to other steps: a retried
    /// error is that error).
    WaitRun {
        /// The step's number (1: the run's initial step, whose result is the run's).
        step: u32,
        /// One attempt, whatever the view.
        attempt: Option<u32>,
        /// The lineage of the environment it is seen from (itself, then its ancestors); empty:
        /// the run's own.
        view: Vec<EnvironmentId>,
        /// Gets [`Reply::Result`].
        reply: ReplyTo,
    },
    /// A worker reports how an execution ended.
    Result {
        /// The execution.
        execution: ExecutionId,
        /// How it ended.
        result: ExecutionResult,
        /// Gets [`Reply::Recorded`] once the result is committed (or was already recorded).
        ack: Option<ReplyTo>,
    },
    /// A running execution changed its step's checkpoints (`set` wins over `reset` for a name
    /// in both). Gets [`Reply::Recorded`] once committed.
    Checkpoint {
        /// The execution.
        execution: ExecutionId,
        /// Names given a value.
        set: Checkpoints,
        /// Names cleared.
        reset: Vec<String>,
        /// The acknowledgement.
        ack: ReplyTo,
    },
    /// A stream operation of a producer or a consumer (see [`crate::model::StreamOp`]); gets
    /// [`Reply::Stream`] (a consumer's read and a producer's demand wait as long as needed).
    Stream {
        /// What is asked.
        op: crate::model::StreamOp,
        /// The answer.
        reply: ReplyTo,
    },
    /// An input operation (see [`crate::model::InputOp`]); gets [`Reply::Input`] (a wait once
    /// the input is final).
    Input {
        /// What is asked.
        op: crate::model::InputOp,
        /// The answer.
        reply: ReplyTo,
    },
    /// The worker running an execution went away.
    Abandon {
        /// The execution.
        execution: ExecutionId,
        /// Run it again whatever its retry policy: it was assigned before the orchestrator
        /// restarted and no reconnecting worker claimed it (most likely it never reached one),
        /// so the restart must not fail it.
        requeue: bool,
    },
    /// Cancel an execution (queued or running).
    Cancel {
        /// The execution.
        execution: ExecutionId,
    },
    /// The cache lookup for an execution found `source`.
    CacheHit {
        /// The execution.
        execution: ExecutionId,
        /// The execution whose result it takes.
        source: ExecutionId,
    },
    /// Another run waits for the final result of one of this run's executions.
    Subscribe {
        /// The execution.
        execution: ExecutionId,
        /// The waiting run.
        subscriber: RunId,
    },
    /// The final result of another run's execution that this run subscribed to.
    Resolved {
        /// The execution.
        execution: ExecutionId,
        /// Its final result.
        result: ExecutionResult,
    },
    /// Re-run a step.
    Rerun {
        /// The step.
        step: StepId,
        /// Where to run it (`None`: the step's base environment).
        environment: Option<EnvironmentId>,
        /// The target environment and its ancestors (the step's base must be among them).
        lineage: Vec<EnvironmentId>,
        /// Gets [`Reply::Rerun`].
        reply: ReplyTo,
    },
}

impl RunMsg {
    /// The callers waiting for a reply to this message.
    pub fn reply_ids(&self) -> Vec<ReplyTo> {
        match self {
            Self::Started { reply }
            | Self::Wait { reply, .. }
            | Self::WaitRun { reply, .. }
            | Self::Rerun { reply, .. } => vec![*reply],
            Self::Submit { reply, wait, .. } | Self::Create { reply, wait, .. } => {
                std::iter::once(*reply).chain(*wait).collect()
            }
            Self::Suspend { ack, .. } => ack.iter().copied().collect(),
            Self::Checkpoint { ack, .. } => vec![*ack],
            Self::Stream { reply, .. } | Self::Input { reply, .. } => vec![*reply],
            _ => Vec::new(),
        }
    }

    /// The execution the message is about, if any (for tracing).
    pub fn execution(&self) -> Option<ExecutionId> {
        match self {
            Self::Submit {
                parent: execution, ..
            }
            | Self::Wait { execution, .. }
            | Self::Result { execution, .. }
            | Self::Checkpoint { execution, .. }
            | Self::Abandon { execution, .. }
            | Self::Cancel { execution }
            | Self::CacheHit { execution, .. }
            | Self::Subscribe { execution, .. }
            | Self::Resolved { execution, .. }
            | Self::Suspend { execution, .. }
            | Self::Defer { execution, .. }
            | Self::Spawned {
                parent: execution, ..
            } => Some(*execution),
            Self::Stream { op, .. } => Some(op.execution()),
            Self::Input { .. }
            | Self::Create { .. }
            | Self::Started { .. }
            | Self::WaitRun { .. }
            | Self::Rerun { .. } => None,
        }
    }
}

/// Commands to a worker.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerCommand {
    /// Run an execution.
    Execute {
        /// The execution.
        execution: ExecutionId,
        /// The target.
        target: TargetRef,
        /// Its arguments.
        arguments: Arc<Vec<Value>>,
        /// Its timeout.
        timeout_ms: Option<u64>,
        /// Its step's checkpoint state.
        checkpoints: Arc<Checkpoints>,
        /// The call site's stream settings.
        streams: Option<StreamDefaults>,
    },
    /// Stop an execution.
    Abort {
        /// The execution.
        execution: ExecutionId,
    },
}

/// Answers to callers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A run was started.
    RunStarted(Result<(RunId, ExecutionId), OrchestrationError>),
    /// A child was submitted.
    Submitted(Result<ExecutionId, OrchestrationError>),
    /// The final result of a chain.
    Result(Result<ExecutionResult, OrchestrationError>),
    /// A step was re-run.
    Rerun(Result<ExecutionId, OrchestrationError>),
    /// An environment was created or changed.
    Environment(Result<Environment, OrchestrationError>),
    /// The environments.
    Environments(Vec<Environment>),
    /// A reported result is recorded.
    Recorded(Result<(), OrchestrationError>),
    /// The executions a worker claimed.
    Claimed(Vec<ExecutionId>),
    /// A schedule was created or removed.
    Schedule(Result<Box<Schedule>, OrchestrationError>),
    /// The answer to a stream operation.
    Stream(Result<crate::model::StreamReply, OrchestrationError>),
    /// The answer to an input operation.
    Input(Result<crate::model::InputRecord, OrchestrationError>),
    /// What waits in an environment's queue, and how many wait in all.
    Queue(Vec<QueuedExecution>, usize),
}

impl Reply {
    /// The same kind of reply, carrying `error` instead.
    pub fn failed(&self, error: OrchestrationError) -> Reply {
        match self {
            Self::RunStarted(_) => Self::RunStarted(Err(error)),
            Self::Submitted(_) => Self::Submitted(Err(error)),
            Self::Result(_) => Self::Result(Err(error)),
            Self::Rerun(_) => Self::Rerun(Err(error)),
            Self::Environment(_) | Self::Environments(_) => Self::Environment(Err(error)),
            Self::Recorded(_) => Self::Recorded(Err(error)),
            Self::Claimed(_) => Self::Claimed(Vec::new()),
            Self::Schedule(_) => Self::Schedule(Err(error)),
            Self::Stream(_) => Self::Stream(Err(error)),
            Self::Input(_) => Self::Input(Err(error)),
            Self::Queue(..) => Self::Queue(Vec::new(), 0),
        }
    }
}

/// A message to deliver later.
#[derive(Debug, Clone)]
pub struct Timer {
    /// When.
    pub at: Millis,
    /// What.
    pub envelope: Envelope,
}

/// What handling one message produced.
#[derive(Debug, Default)]
pub struct Outbox {
    /// State transitions to commit.
    pub writes: Vec<Write>,
    /// Messages to send once the writes are committed.
    pub messages: Vec<Envelope>,
    /// Messages to deliver at a later time.
    pub timers: Vec<Timer>,
}

impl Outbox {
    /// Queues a write.
    pub fn write(&mut self, write: Write) {
        self.writes.push(write);
    }
    /// Queues a message.
    pub fn send(&mut self, envelope: Envelope) {
        self.messages.push(envelope);
    }
    /// Queues a reply.
    pub fn reply(&mut self, to: ReplyTo, reply: Reply) {
        self.messages.push(Envelope::Reply(to, reply));
    }
    /// Whether nothing was produced.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.messages.is_empty() && self.timers.is_empty()
    }
}

impl Envelope {
    /// Whether this goes to one of the project's own state machines (as opposed to a worker or
    /// a waiting caller outside).
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            Self::Project(_) | Self::Environment(..) | Self::Run(..)
        )
    }
}

//! Messages to the project ([`ProjectMsg`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{
    EnvironmentId, EnvironmentName, EnvironmentState, ExecutionId, Millis, OptionOverrides, RunId,
    StepId, StepOptions, TargetDefinition, TargetRef, Value,
};
use crate::store::CacheOutcome;

use super::{ReplyTo, Ticket};

/// A cache lookup to make when an execution becomes due.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheCheck {
    /// The step's cache key.
    pub key: String,
    /// Results older than this are not reused.
    pub max_age_ms: Option<u64>,
}

/// How a workflow is submitted ([`ProjectMsg::StartRun`]).
#[derive(Debug, Clone)]
pub struct Submission {
    /// The run's options.
    pub options: RunOptions,
    /// Submissions with the same key (in the same environment, within the retention) get the
    /// same run.
    pub idempotency_key: Option<String>,
    /// Accept a workflow that is not registered in the environment (its run waits for a worker).
    pub allow_unregistered: bool,
    /// The targets hosted by connected workers, by environment (as the caller saw them).
    pub hosted: BTreeMap<EnvironmentId, BTreeSet<TargetRef>>,
}

/// The options of a submitted run.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // travels inside a boxed `Submission`
pub enum RunOptions {
    /// These options.
    Given(StepOptions),
    /// The workflow's registered options (defaults when no manifest registers it), with
    /// these overrides; a target registered as a task is refused.
    Registered(OptionOverrides),
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
    /// Submit a workflow: check its registration and start a run, all in this one message.
    StartRun {
        /// The environment to run in.
        environment: EnvironmentName,
        /// The workflow.
        target: TargetRef,
        /// Its arguments.
        arguments: Vec<Value>,
        /// Its options, the idempotency key and the registration check.
        submission: Box<Submission>,
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

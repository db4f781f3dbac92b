//! Persistence: one SQLite database per project plus a catalogue of projects.
//!
//! The orchestrator talks to storage through the narrow [`ProjectStore`] interface: it applies
//! batches of [`Write`]s (one transaction each), loads a [`ProjectSnapshot`] on open (recovery),
//! and reads runs back for inspection. [`writer::GroupCommitWriter`] runs a store on its own
//! thread and commits every batch that arrives during a commit together in the next one
//! (group commit), delivering each batch's follow-up only after its writes are durable.
//! SQLite ([`sqlite::SqliteStore`]) is the embedded default; a PostgreSQL backend can implement
//! the same trait.

pub mod blobs;
pub mod catalogue;
mod checkpoints;
mod codec;
#[cfg(any(test, feature = "failpoints"))]
pub mod failpoint;
mod inputs;
pub mod location;
pub mod open_runs;
pub mod postgres;
pub mod retention;
mod rows;
pub mod run_list;
mod run_page;
pub mod schema;
pub mod sqlite;
mod streams;
pub mod writer;

pub use codec::collect_blob_keys;

#[cfg(test)]
pub(crate) mod conformance_tests;

use serde::{Deserialize, Serialize};

use crate::model::{
    Checkpoints, Dependencies, Environment, EnvironmentId, EnvironmentState, ExecutionId,
    ExecutionRecord, ExecutionResult, Millis, RunId, RunRecord, Schedule, StepId, StepRecord,
    TargetDefinition, TargetRef, WorkerId,
};

/// How hard a commit tries to survive failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// `synchronous=NORMAL` in WAL mode: a committed transaction survives a crash or `kill -9`
    /// of the process; after a power loss or OS crash the last commits before it may be lost
    /// (the database stays consistent).
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is fsynced before it is acknowledged; it also survives
    /// power loss. Slower (one fsync per group commit).
    Full,
}

/// One state transition to persist.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// A new environment.
    CreateEnvironment(Environment),
    /// An environment's state changed.
    SetEnvironmentState {
        /// The environment.
        id: EnvironmentId,
        /// Its new state.
        state: EnvironmentState,
    },
    /// An environment was re-based.
    SetEnvironmentParent {
        /// The environment.
        id: EnvironmentId,
        /// Its new parent.
        parent: Option<EnvironmentId>,
    },
    /// A new run (its initial step and execution follow as separate writes).
    CreateRun(RunRecord),
    /// A new step.
    CreateStep(Box<StepRecord>),
    /// A new execution (an attempt of a step), without assignment or result.
    CreateExecution {
        /// The execution.
        id: ExecutionId,
        /// The environment it runs in.
        environment: EnvironmentId,
        /// Not before this time.
        execute_after: Option<Millis>,
        /// Creation time.
        created_at: Millis,
        /// Executions that must finish before it is assigned.
        dependencies: Dependencies,
    },
    /// `parent` now waits on or owns `child` (beyond the child's own step parent, e.g. memo hits).
    LinkChild {
        /// The calling execution.
        parent: ExecutionId,
        /// The execution it was given.
        child: ExecutionId,
    },
    /// `parent`'s `call`-th submission got `child` (see [`RunSnapshot::calls`]).
    PutCall {
        /// The submitting execution.
        parent: ExecutionId,
        /// The call's number within it.
        call: u32,
        /// The child it got.
        child: ExecutionId,
    },
    /// An execution was handed to a worker.
    Assign {
        /// The execution.
        execution: ExecutionId,
        /// The worker.
        worker: WorkerId,
        /// When.
        at: Millis,
    },
    /// A run was submitted with an idempotency key (written with the run).
    PutIdempotencyKey {
        /// The environment.
        environment: EnvironmentId,
        /// The key.
        key: String,
        /// The run.
        run: RunId,
        /// When.
        at: Millis,
    },
    /// Workflow and task definitions registered for an environment (replacing earlier
    /// definitions of the same targets).
    PutManifests {
        /// The environment.
        environment: EnvironmentId,
        /// The definitions.
        definitions: Vec<TargetDefinition>,
        /// When.
        at: Millis,
    },
    /// The targets of a module are no longer registered in an environment (until a manifest
    /// registers them again).
    ArchiveModule {
        /// The environment.
        environment: EnvironmentId,
        /// The module.
        module: String,
    },
    /// At most `max` executions of a target run at once in an environment (`None`: no limit).
    PutConcurrencyLimit {
        /// The environment.
        environment: EnvironmentId,
        /// The target.
        target: TargetRef,
        /// The limit.
        max: Option<u32>,
    },
    /// A step's whole checkpoint state in an environment (replacing the stored one).
    PutCheckpoints {
        /// The step.
        step: StepId,
        /// The environment.
        environment: EnvironmentId,
        /// The state.
        state: std::sync::Arc<Checkpoints>,
        /// When.
        at: Millis,
    },
    /// A stream registered, or moved to a new producer (see [`crate::model::StreamRecord`]).
    PutStream {
        /// The stream.
        stream: crate::model::StreamId,
        /// Its registration order within the producer.
        position: u32,
        /// Its producer.
        producer: ExecutionId,
        /// Backpressure budget.
        buffer: Option<u32>,
        /// Idle timeout.
        timeout_ms: Option<u64>,
        /// When it was registered.
        opened_at: Millis,
    },
    /// An item appended to a stream.
    PutStreamItem {
        /// The stream.
        stream: crate::model::StreamId,
        /// Its sequence.
        sequence: u64,
        /// The item.
        value: crate::model::Value,
        /// When.
        at: Millis,
    },
    /// A stream ended.
    CloseStream {
        /// The stream.
        stream: crate::model::StreamId,
        /// How.
        closure: crate::model::StreamClosure,
        /// When.
        at: Millis,
    },
    /// An input asked for, or its new state.
    PutInput(Box<crate::model::InputRecord>),
    /// A new cron schedule.
    PutSchedule(Box<Schedule>),
    /// A schedule was removed.
    DeleteSchedule {
        /// Its id.
        id: u32,
    },
    /// A schedule ticked: runs up to `last_tick` were started or counted as missed.
    ScheduleTicked {
        /// Its id.
        id: u32,
        /// The last tick accounted for.
        last_tick: Millis,
        /// Ticks missed so far.
        missed: u64,
    },
    /// Runs deleted by retention or by a user, with everything recorded under them (a run
    /// that has an execution without a result is skipped).
    DeleteRuns(Vec<RunId>),
    /// An execution ended. Recording a second result for the same execution is ignored.
    RecordResult {
        /// The execution.
        execution: ExecutionId,
        /// Its result.
        result: ExecutionResult,
        /// When.
        at: Millis,
    },
}

/// Everything recorded about one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSnapshot {
    /// The run.
    pub run: RunRecord,
    /// Its steps, by number.
    pub steps: Vec<StepRecord>,
    /// Its executions, by step then attempt.
    pub executions: Vec<ExecutionRecord>,
    /// Extra parent → child links (see [`Write::LinkChild`]).
    pub children: Vec<(ExecutionId, ExecutionId)>,
    /// Numbered submissions of its executions: (parent, call, child), so a repeat of one gets
    /// the same child (see [`Write::PutCall`]).
    pub calls: Vec<(ExecutionId, u32, ExecutionId)>,
    /// Checkpoint states of its steps, per environment.
    pub checkpoints: Vec<(StepId, EnvironmentId, Checkpoints)>,
    /// Its streams, with their items.
    pub streams: Vec<crate::model::StreamRecord>,
    /// Its inputs.
    pub inputs: Vec<crate::model::InputRecord>,
}

/// The state of one cacheable execution, for the project's cache index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// No result yet: later lookups link to it.
    Pending,
    /// Returned a value at this time.
    Succeeded(Millis),
    /// Ended any other way: never a cache source.
    Failed,
}

/// One execution of a step that has a cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The step's cache key.
    pub key: String,
    /// The execution.
    pub execution: ExecutionId,
    /// The environment it ran in.
    pub environment: EnvironmentId,
    /// When it was created (newest wins).
    pub created_at: Millis,
    /// How it ended so far.
    pub outcome: CacheOutcome,
}

/// What a project needs to start again after a restart.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProjectSnapshot {
    /// All environments.
    pub environments: Vec<Environment>,
    /// The next run sequence number.
    pub next_run: u64,
    /// Runs that still have executions without a result.
    pub active_runs: Vec<RunSnapshot>,
    /// Executions of cached steps that are pending or succeeded.
    pub cache_entries: Vec<CacheEntry>,
    /// Idempotency keys of submitted runs: environment, key, run, when.
    pub idempotency_keys: Vec<(EnvironmentId, String, RunId, Millis)>,
    /// Per-target concurrency limits: environment, target, limit.
    pub concurrency_limits: Vec<(EnvironmentId, TargetRef, u32)>,
    /// Cron schedules.
    pub schedules: Vec<Schedule>,
    /// The definitions registered by manifests: environment, definition.
    pub manifests: Vec<(EnvironmentId, TargetDefinition)>,
}

/// A short description of a run, for listings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run.
    pub id: RunId,
    /// The workflow's module and name.
    pub target: crate::model::TargetRef,
    /// The environment it was submitted in.
    pub environment: EnvironmentId,
    /// When it was submitted.
    pub created_at: Millis,
}

/// Why a store operation failed. Codes are stable.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL reported an error.
    #[error("database error: {0}")]
    Postgres(#[from] ::postgres::Error),
    /// A write refers to a row that does not exist (e.g. a step of an unknown run); the batch
    /// is not applied.
    #[error("write of a missing row: {0}")]
    Missing(String),
    /// The store was opened for reading only.
    #[error("this store was opened read-only")]
    ReadOnly,
    /// This backend does not offer this operation yet.
    #[error("not supported by this store backend yet: {0}")]
    Unsupported(&'static str),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// A stored row could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The data directory could not be used.
    #[error("data directory error: {0}")]
    Io(#[from] std::io::Error),
    /// The writer thread has stopped.
    #[error("the store writer has stopped")]
    WriterStopped,
    /// Another process has the project's database open (another server or embedded program
    /// on the same data directory).
    #[error("the project's database is in use by another process")]
    InUse,
    /// This node no longer holds the project's lease (another node took it, or it expired
    /// while this node was paused or cut off): nothing was written, and the project must
    /// stop here.
    #[error("project '{project}' is no longer owned by this node (lease epoch {epoch} lost)")]
    Fenced {
        /// The project.
        project: String,
        /// The epoch this node held.
        epoch: i64,
    },
    /// The project's database does not hold what this store committed (its commit sequence
    /// went back past commits PostgreSQL reported flushed, or another writer moved it): the
    /// project must stop and be loaded again from what the database holds.
    #[error("the project's database diverged from this writer: {0}")]
    Diverged(String),
}

impl StoreError {
    /// Whether the project cannot go on with this store and must be stopped (and loaded
    /// again from the database): its lease is lost, or the database no longer holds what the
    /// store committed. Retrying cannot help. (A lost PostgreSQL connection is not such an
    /// error: the store reconnects and replays on the next attempt, under the same fence.)
    pub fn stops_project(&self) -> bool {
        matches!(self, Self::Fenced { .. } | Self::Diverged(_))
    }

    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "store_sqlite",
            Self::Postgres(_) => "store_postgres",
            Self::Missing(_) => "store_missing_row",
            Self::ReadOnly => "store_read_only",
            Self::Unsupported(_) => "store_unsupported",
            Self::Migration(_) => "store_migration",
            Self::Corrupt(_) => "store_corrupt",
            Self::Io(_) => "store_io",
            Self::WriterStopped => "store_stopped",
            Self::InUse => "store_in_use",
            Self::Fenced { .. } => "store_fenced",
            Self::Diverged(_) => "store_diverged",
        }
    }
}

/// The narrow interface between the orchestrator and its persistence.
pub trait ProjectStore: Send + 'static {
    /// Applies `writes` in one transaction; on error nothing is applied.
    fn apply(&mut self, writes: &[Write]) -> Result<(), StoreError>;
    /// Reads what recovery needs.
    fn load(&self) -> Result<ProjectSnapshot, StoreError>;
    /// Reads one run, whatever its state.
    fn load_run(&self, run: RunId) -> Result<Option<RunSnapshot>, StoreError>;
    /// The manifests registered for an environment, by module and target.
    fn manifests(&self, environment: EnvironmentId) -> Result<Vec<TargetDefinition>, StoreError>;
    /// Lists runs, newest first.
    fn list_runs(
        &self,
        environment: Option<EnvironmentId>,
        limit: usize,
    ) -> Result<Vec<RunSummary>, StoreError>;
    /// Gives the store a way to wake its writer when it needs [`ProjectStore::maintain`]
    /// between batches (ignored by default).
    fn set_wake(&mut self, _wake: StoreWake) {}
    /// Work the store asked for with its [`StoreWake`] (e.g. reconnecting to commit again what
    /// the database lost); its writer calls it whenever it wakes. Must be cheap when there is
    /// nothing to do. Does nothing by default.
    fn maintain(&mut self) {}
}

/// Wakes a store's writer, which then calls [`ProjectStore::maintain`].
pub type StoreWake = std::sync::Arc<dyn Fn() + Send + Sync>;

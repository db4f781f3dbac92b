//! What waits in an environment's queue, and why.

use serde::{Deserialize, Serialize};

use super::{ExecutionId, Millis, TargetRef};

/// Why a queued execution is not running yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum WaitReason {
    /// The environment is paused.
    Paused,
    /// It is delayed (a `delay`, a retry's backoff or a recurrence) until `until`.
    Delayed {
        /// When it becomes ready.
        until: Millis,
    },
    /// No connected worker of the environment hosts its target.
    NoWorker,
    /// Workers host its target, but none provides its `requires` (or accepts it).
    RequiresNotProvided,
    /// Its target's concurrency limit is reached.
    ConcurrencyLimit {
        /// The limit.
        max: u32,
    },
    /// Every worker that could run it is busy (or reconnecting).
    WorkersBusy,
}

impl WaitReason {
    /// A stable code: `paused`, `delayed`, `no_worker`, `requires_not_provided`,
    /// `concurrency_limit` or `workers_busy`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Paused => "paused",
            Self::Delayed { .. } => "delayed",
            Self::NoWorker => "no_worker",
            Self::RequiresNotProvided => "requires_not_provided",
            Self::ConcurrencyLimit { .. } => "concurrency_limit",
            Self::WorkersBusy => "workers_busy",
        }
    }
}

/// An execution waiting in an environment's queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedExecution {
    /// The execution.
    pub execution: ExecutionId,
    /// Its target.
    pub target: TargetRef,
    /// When it was created.
    pub created_at: Millis,
    /// Why it waits.
    pub reason: WaitReason,
}

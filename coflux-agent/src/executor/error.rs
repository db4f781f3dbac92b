//! Errors of the pool, and the error types of results the pool makes up itself.

use coflux_core::model::{ErrorInfo, ExecutionId, ExecutionResult};

/// Error type of an execution the pool could not run or whose result it could not store
/// (e.g. a blob transfer failed; retryable).
pub const EXECUTOR_ERROR: &str = "coflux.ExecutorError";

/// Why the pool gave no result for an execution. Failures of the execution itself (errors,
/// crashes, timeouts) are [`ExecutionResult`]s, not these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The adapter command is empty.
    #[error("no adapter command is configured")]
    NoAdapter,
    /// An executor process could not be started, or exited before it was ready.
    #[error("could not start the executor '{command}': {message}")]
    Spawn {
        /// The adapter command.
        command: String,
        /// What went wrong (with the process's stderr when it exited).
        message: String,
    },
    /// The execution was aborted with [`super::ExecutorPool::abort`].
    #[error("the execution was aborted")]
    Aborted,
    /// The pool is draining or shut down.
    #[error("the executor pool is closed")]
    Closed,
    /// The execution is already running in this pool.
    #[error("execution {0} is already running")]
    Duplicate(ExecutionId),
}

impl PoolError {
    /// A stable code for the error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoAdapter => "no_adapter",
            Self::Spawn { .. } => "spawn_failed",
            Self::Aborted => "aborted",
            Self::Closed => "closed",
            Self::Duplicate(_) => "duplicate",
        }
    }

    /// The result to report for the execution, if one should be: a spawn failure is an
    /// [`EXECUTOR_ERROR`], a closed pool abandons the execution; an aborted or duplicate
    /// execution has nothing to report.
    pub fn into_result(self) -> Option<ExecutionResult> {
        match self {
            Self::NoAdapter | Self::Spawn { .. } => Some(ExecutionResult::Error {
                error: ErrorInfo::new(EXECUTOR_ERROR, self.to_string()),
                retry: None,
            }),
            Self::Closed => Some(ExecutionResult::Abandoned { retry: None }),
            Self::Aborted | Self::Duplicate(_) => None,
        }
    }
}

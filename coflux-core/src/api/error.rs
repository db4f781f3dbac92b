//! The embedding API's error type, with stable codes.

use crate::orchestration::OrchestrationError;
use crate::sdk::ExecutionError;
use crate::store::StoreError;

/// Why an embedding call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input (a name, an id, an argument).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// No such project.
    #[error("project '{0}' not found")]
    ProjectNotFound(String),
    /// The orchestrator refused the request.
    #[error(transparent)]
    Orchestration(#[from] OrchestrationError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run or step ended without a value.
    #[error(transparent)]
    Execution(#[from] ExecutionError),
    /// The operation is not available with this project's store (e.g. run deletion on
    /// PostgreSQL, not built yet).
    #[error("not supported: {0}")]
    NotSupported(String),
    /// The orchestrator is shutting down.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A project's database could not be opened (damaged, unreadable, or held by another
    /// process); the other projects are not affected.
    #[error("project '{project}' is unavailable: its database could not be opened")]
    ProjectUnavailable {
        /// The project.
        project: String,
        /// Why (for the log; not shown to clients).
        #[source]
        reason: StoreError,
    },
    /// Another node of the cluster owns the project (holds its lease).
    #[error("project '{project}' is owned by another node ({owner})")]
    OwnedElsewhere {
        /// The project.
        project: String,
        /// The owning node's URL (empty if it was released meanwhile).
        owner: String,
    },
}

impl Error {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_input",
            Self::ProjectNotFound(_) => "project_not_found",
            Self::Orchestration(e) => e.code(),
            Self::Store(e) => e.code(),
            Self::Execution(ExecutionError::Failed(_)) => "execution_failed",
            Self::Execution(ExecutionError::Cancelled) => "execution_cancelled",
            Self::Execution(ExecutionError::Abandoned) => "execution_abandoned",
            Self::Execution(ExecutionError::Crashed) => "execution_crashed",
            Self::Execution(ExecutionError::Timeout) => "execution_timeout",
            Self::Execution(ExecutionError::Decode(_)) => "result_decode",
            Self::Execution(ExecutionError::Submit(_)) => "submit_failed",
            Self::Execution(ExecutionError::Suspended) => "execution_suspended",
            Self::NotSupported(_) => "not_supported",
            Self::Unavailable(_) => "unavailable",
            Self::ProjectUnavailable { .. } => "project_unavailable",
            Self::OwnedElsewhere { .. } => "project_owned_elsewhere",
        }
    }
}

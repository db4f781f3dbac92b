//! Errors on both sides of a call: [`Failure`] is what a target returns, [`ExecutionError`] is
//! what a caller receives from a child.

use std::any::Any;
use std::fmt;

use crate::model::{ErrorInfo, ExecutionResult};

/// How a target failed: an error type name and a message (plus, optionally, whether it may be
/// retried). Any `std::error::Error` converts into it with `?`, keeping its Rust type name; a
/// child's [`ExecutionError`] converts keeping the child's original type and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub ErrorInfo);

impl Failure {
    /// A failure with an explicit type name and message.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self(ErrorInfo::new(error_type, message))
    }

    /// A failure with just a message (type `coflux.Failure`).
    pub fn msg(message: impl Into<String>) -> Self {
        Self::new("coflux.Failure", message)
    }

    /// Marks the failure as not retryable: retry policies will not apply.
    pub fn not_retryable(mut self) -> Self {
        self.0.retryable = Some(false);
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.error_type, self.0.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Failure {
    fn from(error: E) -> Self {
        if let Some(child) = (&error as &dyn Any).downcast_ref::<ExecutionError>() {
            return child.to_failure();
        }
        if let Some(suspended) = (&error as &dyn Any).downcast_ref::<super::Suspended>() {
            return Self::new("coflux.Suspended", suspended.to_string());
        }
        Self::new(std::any::type_name::<E>(), error.to_string())
    }
}

/// Why awaiting a child execution did not give a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecutionError {
    /// The child raised an error (after any retries).
    #[error("{}: {}", .0.error_type, .0.message)]
    Failed(ErrorInfo),
    /// The child was cancelled.
    #[error("execution cancelled")]
    Cancelled,
    /// The child's worker went away (after any retries).
    #[error("execution abandoned")]
    Abandoned,
    /// The child's process died without reporting (after any retries).
    #[error("execution crashed")]
    Crashed,
    /// The child ran past its timeout (after any retries).
    #[error("execution timed out")]
    Timeout,
    /// The child's value did not decode into the expected type.
    #[error("could not decode the result: {0}")]
    Decode(String),
    /// The orchestrator refused or lost the submission.
    #[error("could not submit: {0}")]
    Submit(String),
    /// The child had not finished within the enclosing [`crate::sdk::suspense`] time: the
    /// waiting execution is suspended (propagate this with `?`); its step runs again once the
    /// child has finished.
    #[error("the execution is suspended until a child finishes")]
    Suspended,
}

impl ExecutionError {
    /// Whether the child failed with an error of Rust type `E` (compared by type name).
    pub fn is<E: 'static>(&self) -> bool {
        matches!(self, Self::Failed(info) if info.error_type == std::any::type_name::<E>())
    }

    /// The error's type name and message, if the child raised one.
    pub fn info(&self) -> Option<&ErrorInfo> {
        match self {
            Self::Failed(info) => Some(info),
            _ => None,
        }
    }

    /// The caller-side error for a final result that is not a value (`None` for a value).
    pub fn from_result(result: &ExecutionResult) -> Option<Self> {
        match result {
            ExecutionResult::Value { .. } => None,
            ExecutionResult::Error { error, .. } => Some(Self::Failed(error.clone())),
            ExecutionResult::Cancelled => Some(Self::Cancelled),
            ExecutionResult::Abandoned { .. } => Some(Self::Abandoned),
            ExecutionResult::Crashed { .. } => Some(Self::Crashed),
            ExecutionResult::Timeout { .. } => Some(Self::Timeout),
            other => Some(Self::Submit(format!(
                "unexpected non-final result {:?}",
                other.kind()
            ))),
        }
    }

    fn to_failure(&self) -> Failure {
        match self {
            Self::Failed(info) => Failure(ErrorInfo {
                retryable: None,
                ..info.clone()
            }),
            Self::Cancelled => Failure::new(
                "coflux.ExecutionCancelled",
                "a child execution was cancelled",
            ),
            Self::Abandoned => Failure::new(
                "coflux.ExecutionAbandoned",
                "a child execution was abandoned",
            ),
            Self::Crashed => Failure::new("coflux.ExecutionCrashed", "a child execution crashed"),
            Self::Timeout => Failure::new("coflux.ExecutionTimeout", "a child execution timed out"),
            Self::Decode(m) => Failure::new("coflux.DecodeError", m.clone()),
            Self::Submit(m) => Failure::new("coflux.SubmitError", m.clone()),
            Self::Suspended => Failure::new("coflux.Suspended", self.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("flaky {0}")]
    struct Flaky(u32);

    #[test]
    fn rust_errors_keep_their_type_and_child_errors_pass_through() {
        let f: Failure = Flaky(3).into();
        assert!(f.0.error_type.ends_with("Flaky"));
        assert_eq!(f.0.message, "flaky 3");
        let child = ExecutionError::Failed(f.0.clone());
        assert!(child.is::<Flaky>());
        let rethrown: Failure = child.into();
        assert_eq!(rethrown, f);
    }

    #[test]
    fn a_crashed_child_is_a_typed_error_and_rethrows_as_execution_crashed() {
        let crashed = ExecutionResult::Crashed { retry: None };
        let error = ExecutionError::from_result(&crashed);
        assert_eq!(error, Some(ExecutionError::Crashed));
        let rethrown: Failure = ExecutionError::Crashed.into();
        assert_eq!(rethrown.0.error_type, "coflux.ExecutionCrashed");
    }
}

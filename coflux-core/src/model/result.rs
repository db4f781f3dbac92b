//! Results of executions: values, errors and the ways an execution can end or hand over.

use serde::{Deserialize, Serialize};

use super::{ExecutionId, Value};

/// One frame of an error's stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// Source file.
    pub file: String,
    /// Line number.
    pub line: u32,
    /// Function name.
    pub name: String,
    /// Source line, if known.
    #[serde(default)]
    pub code: Option<String>,
}

/// An error raised by a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// The error's type, e.g. `builtins.ValueError` or a Rust type path.
    #[serde(rename = "type")]
    pub error_type: String,
    /// Its message.
    pub message: String,
    /// Its stack, innermost last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<Frame>,
    /// `Some(false)` when the target declared the error not retryable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
}

impl ErrorInfo {
    /// An error with a type and a message.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.into(),
            message: message.into(),
            frames: Vec::new(),
            retryable: None,
        }
    }
}

/// How an execution ended. Variants with a successor hand over to another execution, whose
/// result is followed (the "chain") to find the final result that waiters receive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecutionResult {
    /// Returned a value.
    Value {
        /// The value.
        value: Value,
    },
    /// Raised an error; `retry` is the retry attempt, when one was scheduled.
    Error {
        /// The error.
        error: ErrorInfo,
        /// The retry, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry: Option<ExecutionId>,
    },
    /// Its worker went away; `retry` as for errors.
    Abandoned {
        /// The retry, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry: Option<ExecutionId>,
    },
    /// Its process died without reporting (signal, `os._exit`, out of memory); `retry` as for
    /// errors. Retried like an abandonment.
    Crashed {
        /// The retry, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry: Option<ExecutionId>,
    },
    /// Ran past its timeout; `retry` as for errors.
    Timeout {
        /// The retry, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry: Option<ExecutionId>,
    },
    /// Cancelled by a user or a parent; never retried.
    Cancelled,
    /// Reused a cached (possibly still pending) execution.
    Cached {
        /// The execution whose result this one takes.
        successor: ExecutionId,
    },
    /// Collapsed into a later execution with the same defer key.
    Deferred {
        /// The surviving execution.
        successor: ExecutionId,
    },
    /// Suspended; the successor resumes the step later.
    Suspended {
        /// The resuming execution.
        successor: ExecutionId,
    },
    /// A workflow called from a task started a new run.
    Spawned {
        /// The new run's initial execution.
        successor: ExecutionId,
    },
    /// A recurrent target returned null; the successor is the next occurrence.
    Recurred {
        /// The next execution.
        successor: ExecutionId,
    },
}

/// The kind of a result, without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultKind {
    /// See [`ExecutionResult::Value`].
    Value,
    /// See [`ExecutionResult::Error`].
    Error,
    /// See [`ExecutionResult::Abandoned`].
    Abandoned,
    /// See [`ExecutionResult::Crashed`].
    Crashed,
    /// See [`ExecutionResult::Timeout`].
    Timeout,
    /// See [`ExecutionResult::Cancelled`].
    Cancelled,
    /// See [`ExecutionResult::Cached`].
    Cached,
    /// See [`ExecutionResult::Deferred`].
    Deferred,
    /// See [`ExecutionResult::Suspended`].
    Suspended,
    /// See [`ExecutionResult::Spawned`].
    Spawned,
    /// See [`ExecutionResult::Recurred`].
    Recurred,
}

impl ResultKind {
    /// Every kind.
    pub const ALL: [Self; 11] = [
        Self::Value,
        Self::Error,
        Self::Abandoned,
        Self::Crashed,
        Self::Timeout,
        Self::Cancelled,
        Self::Cached,
        Self::Deferred,
        Self::Suspended,
        Self::Spawned,
        Self::Recurred,
    ];

    /// Its name, as stored and shown: `value`, `error`, `cancelled`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Value => "value",
            Self::Error => "error",
            Self::Abandoned => "abandoned",
            Self::Crashed => "crashed",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
            Self::Cached => "cached",
            Self::Deferred => "deferred",
            Self::Suspended => "suspended",
            Self::Spawned => "spawned",
            Self::Recurred => "recurred",
        }
    }

    /// The kind with this name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl ExecutionResult {
    /// The execution this result hands over to, if any: the chain continues there.
    pub fn successor(&self) -> Option<ExecutionId> {
        match self {
            Self::Error { retry, .. }
            | Self::Abandoned { retry }
            | Self::Crashed { retry }
            | Self::Timeout { retry } => *retry,
            Self::Cached { successor }
            | Self::Deferred { successor }
            | Self::Suspended { successor }
            | Self::Spawned { successor }
            | Self::Recurred { successor } => Some(*successor),
            Self::Value { .. } | Self::Cancelled => None,
        }
    }

    /// Whether this ends the chain (no successor to follow).
    pub fn is_final(&self) -> bool {
        self.successor().is_none()
    }

    /// Whether the failure may be retried (errors not marked unretryable, abandonment, timeouts).
    pub fn is_retryable_failure(&self) -> bool {
        match self {
            Self::Error { error, .. } => error.retryable != Some(false),
            Self::Abandoned { .. } | Self::Crashed { .. } | Self::Timeout { .. } => true,
            _ => false,
        }
    }

    /// Whether this is a failure (error, abandoned, timeout), retried or not.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Self::Error { .. }
                | Self::Abandoned { .. }
                | Self::Crashed { .. }
                | Self::Timeout { .. }
        )
    }

    /// Sets the retry successor of a failure (no effect on other results).
    pub fn with_retry(mut self, next: ExecutionId) -> Self {
        if let Self::Error { retry, .. }
        | Self::Abandoned { retry }
        | Self::Crashed { retry }
        | Self::Timeout { retry } = &mut self
        {
            *retry = Some(next);
        }
        self
    }

    /// The kind of this result.
    pub fn kind(&self) -> ResultKind {
        match self {
            Self::Value { .. } => ResultKind::Value,
            Self::Error { .. } => ResultKind::Error,
            Self::Abandoned { .. } => ResultKind::Abandoned,
            Self::Crashed { .. } => ResultKind::Crashed,
            Self::Timeout { .. } => ResultKind::Timeout,
            Self::Cancelled => ResultKind::Cancelled,
            Self::Cached { .. } => ResultKind::Cached,
            Self::Deferred { .. } => ResultKind::Deferred,
            Self::Suspended { .. } => ResultKind::Suspended,
            Self::Spawned { .. } => ResultKind::Spawned,
            Self::Recurred { .. } => ResultKind::Recurred,
        }
    }
}

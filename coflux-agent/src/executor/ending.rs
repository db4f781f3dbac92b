//! [`Ending`]: how an execution left the pool — with a result, or suspended to be resumed by
//! a new attempt later.

use coflux_core::model::{Dependencies, ExecutionResult, Millis};

/// How an execution ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// It finished (value, error, timeout, ...).
    Result(ExecutionResult),
    /// It suspended itself: a new attempt of its step is to run later.
    Suspended(Suspension),
}

/// When a suspended execution's step is to run again.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Suspension {
    /// Not before this time (unix ms).
    pub execute_after: Option<Millis>,
    /// Executions to wait for first.
    pub dependencies: Dependencies,
}

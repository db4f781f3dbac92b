//! Runs, steps and executions as recorded.

use serde::{Deserialize, Serialize};

use super::{
    EnvironmentId, ExecutionId, ExecutionResult, InputId, Millis, ResultKind, RunId, StepId,
    StepOptions, TargetKind, TargetRef, Value, WorkerId,
};

/// A run: one submission of a workflow (or a spawn from a task).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id.
    pub id: RunId,
    /// The environment it was submitted in.
    pub environment: EnvironmentId,
    /// The execution that spawned it, if any.
    pub parent_execution: Option<ExecutionId>,
    /// When it was submitted.
    pub created_at: Millis,
}

/// A step: one call of a target within a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step's id.
    pub id: StepId,
    /// The execution that called it (`None` for the initial step).
    pub parent_execution: Option<ExecutionId>,
    /// The target called.
    pub target: TargetRef,
    /// Workflow or task.
    pub kind: TargetKind,
    /// The arguments, by position.
    pub arguments: Vec<Value>,
    /// Its options.
    pub options: StepOptions,
    /// Its cache key, when caching is on.
    pub cache_key: Option<String>,
    /// Its memo key, when memoising is on.
    pub memo_key: Option<String>,
    /// When it was called.
    pub created_at: Millis,
}

/// An execution: one attempt of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    /// The execution's id.
    pub id: ExecutionId,
    /// The environment it runs in (a re-run may run in a child environment).
    pub environment: EnvironmentId,
    /// Not assigned before this time.
    pub execute_after: Option<Millis>,
    /// When it was created.
    pub created_at: Millis,
    /// When it was assigned to a worker, and to which.
    pub assignment: Option<(WorkerId, Millis)>,
    /// How it ended, and when.
    pub result: Option<(ExecutionResult, Millis)>,
    /// Executions (and inputs) that must finish before it is assigned (`wait_for`
    /// arguments, or what a suspended predecessor waited for).
    pub dependencies: Dependencies,
}

/// What an execution waits for before it may be assigned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependencies {
    /// The executions (their final results; executions referenced by a value are waited for
    /// too).
    pub executions: Vec<ExecutionId>,
    /// Inputs of the same run (answered, dismissed or cancelled): what a predecessor that
    /// suspended while waiting for an input (`cf.Prompt`) waited for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<InputId>,
    /// Whether one finished execution (or final input) is enough (a suspended `select`)
    /// rather than all (`wait_for`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub any: bool,
}

impl Dependencies {
    /// Waits for all of `executions`.
    pub fn all(executions: Vec<ExecutionId>) -> Self {
        Self {
            executions,
            inputs: Vec::new(),
            any: false,
        }
    }

    /// Waits for the first of `executions` to finish.
    pub fn any(executions: Vec<ExecutionId>) -> Self {
        Self {
            executions,
            inputs: Vec::new(),
            any: true,
        }
    }

    /// Waits for the first of `executions` to finish or of `inputs` to be final.
    pub fn any_of(executions: Vec<ExecutionId>, inputs: Vec<InputId>) -> Self {
        Self {
            executions,
            inputs,
            any: true,
        }
    }

    /// Whether there is nothing to wait for.
    pub fn is_empty(&self) -> bool {
        self.executions.is_empty() && self.inputs.is_empty()
    }

    /// How many of them must finish before the holder may run.
    pub fn needed(&self) -> usize {
        if self.any {
            1
        } else {
            self.executions.len() + self.inputs.len()
        }
    }
}

/// Where an execution is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "result", rename_all = "snake_case")]
pub enum ExecutionState {
    /// Waiting to be assigned (or for its delay).
    Queued,
    /// Assigned to a worker, no result yet.
    Assigned,
    /// Ended with a result of this kind.
    Finished(ResultKind),
}

impl ExecutionRecord {
    /// The execution's state.
    pub fn state(&self) -> ExecutionState {
        match (&self.result, &self.assignment) {
            (Some((r, _)), _) => ExecutionState::Finished(r.kind()),
            (None, Some(_)) => ExecutionState::Assigned,
            (None, None) => ExecutionState::Queued,
        }
    }
}

//! Errors of orchestration requests, with stable codes.

use serde::Serialize;

/// Why an orchestration request was refused. The `code()` of each variant is stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "code", content = "message", rename_all = "snake_case")]
pub enum OrchestrationError {
    /// No environment with that name.
    #[error("environment '{0}' not found")]
    EnvironmentNotFound(String),
    /// An active environment already has that name.
    #[error("environment '{0}' already exists")]
    EnvironmentExists(String),
    /// The environment is archived.
    #[error("environment '{0}' is archived")]
    EnvironmentArchived(String),
    /// The environment still has active children.
    #[error("environment '{0}' has active child environments")]
    EnvironmentHasChildren(String),
    /// No such run.
    #[error("run '{0}' not found")]
    RunNotFound(String),
    /// The run has executions without a result (it is running, queued or waiting).
    #[error("run '{0}' is still running: only a finished run can be deleted")]
    RunActive(String),
    /// Other runs link to executions of the run (cache hits, deferrals, spawned workflows).
    #[error(
        "run '{run}' cannot be deleted: runs {} link to its results (delete them first)",
        by.join(", ")
    )]
    RunReferenced {
        /// The run.
        run: String,
        /// The runs linking to it.
        by: Vec<String>,
    },
    /// No such step.
    #[error("step '{0}' not found")]
    StepNotFound(String),
    /// No such execution.
    #[error("execution '{0}' not found")]
    ExecutionNotFound(String),
    /// No such schedule.
    #[error("schedule '{0}' not found")]
    ScheduleNotFound(String),
    /// A step can only be re-run in its own environment or a descendant of it.
    #[error(
        "step '{step}' cannot be re-run in environment '{environment}': it must be the step's environment or a descendant of it"
    )]
    EnvironmentInvalid {
        /// The step.
        step: String,
        /// The requested environment.
        environment: String,
    },
    /// A re-based environment would inherit from itself or one of its descendants.
    #[error(
        "environment '{environment}' cannot inherit from '{parent}': that would make a cycle ('{parent}' is '{environment}' or inherits from it)"
    )]
    EnvironmentCycle {
        /// The environment being re-based.
        environment: String,
        /// The parent asked for.
        parent: String,
    },
    /// No worker of the environment hosts the workflow and no manifest of it registers it.
    #[error(
        "workflow '{target}' is not registered in environment '{environment}'{}",
        did_you_mean(suggestions)
    )]
    WorkflowNotFound {
        /// The workflow submitted (`module/name`).
        target: String,
        /// The environment.
        environment: String,
        /// The closest registered names (at most three).
        suggestions: Vec<String>,
    },
    /// A checkpoint write of an execution that has already ended (its state is final).
    #[error("execution '{0}' has ended: its checkpoint writes are rejected")]
    CheckpointRejected(String),
    /// No such stream.
    #[error("stream '{0}' not found")]
    StreamNotFound(String),
    /// A stream operation that does not apply (e.g. an append to a stream that has ended, or
    /// by an execution that does not produce it).
    #[error("stream '{stream}': {reason}")]
    StreamRejected {
        /// The stream (or the execution, before a stream is known).
        stream: String,
        /// Why.
        reason: String,
    },
    /// No such input.
    #[error("input '{0}' not found")]
    InputNotFound(String),
    /// An input operation that does not apply (an answer to a final input, or one that does
    /// not match its schema).
    #[error("input '{input}': {reason}")]
    InputRejected {
        /// The input.
        input: String,
        /// Why.
        reason: String,
    },
    /// The request was malformed.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A submission's input was refused (its message says what is wrong).
    #[error("{0}")]
    InvalidInput(String),
    /// A submitted target is registered as a task.
    #[error("'{0}' is registered as a task; only workflows can be submitted")]
    NotAWorkflow(String),
    /// The project is restarting or stopped; try again.
    #[error("the project is unavailable: {0}")]
    Unavailable(String),
}

impl OrchestrationError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::EnvironmentNotFound(_) => "environment_not_found",
            Self::EnvironmentExists(_) => "environment_exists",
            Self::EnvironmentArchived(_) => "environment_archived",
            Self::EnvironmentHasChildren(_) => "environment_has_children",
            Self::RunNotFound(_) => "run_not_found",
            Self::RunActive(_) => "run_active",
            Self::RunReferenced { .. } => "run_referenced",
            Self::StepNotFound(_) => "step_not_found",
            Self::ExecutionNotFound(_) => "execution_not_found",
            Self::ScheduleNotFound(_) => "schedule_not_found",
            Self::WorkflowNotFound { .. } => "workflow_not_found",
            Self::EnvironmentInvalid { .. } => "environment_invalid",
            Self::EnvironmentCycle { .. } => "environment_cycle",
            Self::CheckpointRejected(_) => "checkpoint_rejected",
            Self::StreamNotFound(_) => "stream_not_found",
            Self::StreamRejected { .. } => "stream_rejected",
            Self::InputNotFound(_) => "input_not_found",
            Self::InputRejected { .. } => "input_rejected",
            Self::Invalid(_) => "invalid_request",
            Self::InvalidInput(_) => "invalid_input",
            Self::NotAWorkflow(_) => "not_a_workflow",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

fn did_you_mean(suggestions: &[String]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!(" (did you mean '{one}'?)"),
        many => format!(
            " (did you mean one of: {}?)",
            many.iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

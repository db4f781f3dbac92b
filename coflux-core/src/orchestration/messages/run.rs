//! Messages to a run ([`RunMsg`]).

use crate::model::SubmitRequest;
use crate::model::{
    Checkpoints, Dependencies, EnvironmentId, ExecutionId, ExecutionResult, Millis, RunId, StepId,
    StepOptions, TargetRef, Value,
};

use super::ReplyTo;

/// Messages to a run.
#[derive(Debug, Clone)]
pub enum RunMsg {
    /// Create the run with its initial step.
    Create {
        /// The environment.
        environment: EnvironmentId,
        /// The workflow.
        target: TargetRef,
        /// Its arguments.
        arguments: Vec<Value>,
        /// Its options.
        options: StepOptions,
        /// Recorded with the run.
        idempotency_key: Option<String>,
        /// The execution that called the workflow, for a spawned run.
        spawned_by: Option<ExecutionId>,
        /// The call's number within `spawned_by`, if numbered.
        call: Option<u32>,
        /// Gets [`Reply::RunStarted`] ([`Reply::Submitted`] for a spawned run).
        reply: ReplyTo,
        /// Also wait for the run's result: gets [`Reply::Result`].
        wait: Option<ReplyTo>,
    },
    /// A run spawned by one of this run's executions was created.
    Spawned {
        /// The calling execution.
        parent: ExecutionId,
        /// The call's number within `parent`, if numbered.
        call: Option<u32>,
        /// The new run's initial execution.
        child: ExecutionId,
    },
    /// A running execution suspends itself: it ends, and a new attempt of its step runs later
    /// (after `execute_after`, once `dependencies` have finished).
    Suspend {
        /// The execution.
        execution: ExecutionId,
        /// Not before this time.
        execute_after: Option<Millis>,
        /// Executions to wait for first.
        dependencies: Dependencies,
        /// Gets [`Reply::Recorded`] once the suspension is committed.
        ack: Option<ReplyTo>,
    },
    /// A queued execution collapsed into another with the same defer key.
    Defer {
        /// The execution.
        execution: ExecutionId,
        /// The one that runs instead.
        successor: ExecutionId,
    },
    /// Tells a caller the run's id and initial execution (a repeated idempotent submission).
    Started {
        /// Gets [`Reply::RunStarted`].
        reply: ReplyTo,
    },
    /// A running execution calls a target.
    Submit {
        /// The caller.
        parent: ExecutionId,
        /// The call's number within `parent` (1, 2, ...), when the caller numbers its calls
        /// (agents do): a repeat of a numbered call gets the first one's child, so a submission
        /// sent again after a reconnect or a restart never creates a second child.
        call: Option<u32>,
        /// The call.
        request: SubmitRequest,
        /// Gets [`Reply::Submitted`].
        reply: ReplyTo,
        /// Also wait for the child's final result: gets [`Reply::Result`].
        wait: Option<ReplyTo>,
    },
    /// Wait for the final result of an execution's chain.
    Wait {
        /// The execution.
        execution: ExecutionId,
        /// Gets [`Reply::Result`].
        reply: ReplyTo,
    },
    /// Wait for the result of one of the run's steps, as seen from an environment: the latest
    /// attempt visible there ([`crate::model::visible_from`]) followed to its final result, or
    /// one attempt exactly (its own result, following only hand-overs to other steps: a retried
    /// error is that error).
    WaitRun {
        /// The step's number (1: the run's initial step, whose result is the run's).
        step: u32,
        /// One attempt, whatever the view.
        attempt: Option<u32>,
        /// The lineage of the environment it is seen from (itself, then its ancestors); empty:
        /// the run's own.
        view: Vec<EnvironmentId>,
        /// Gets [`Reply::Result`].
        reply: ReplyTo,
    },
    /// A worker reports how an execution ended.
    Result {
        /// The execution.
        execution: ExecutionId,
        /// How it ended.
        result: ExecutionResult,
        /// Gets [`Reply::Recorded`] once the result is committed (or was already recorded).
        ack: Option<ReplyTo>,
    },
    /// A running execution changed its step's checkpoints (`set` wins over `reset` for a name
    /// in both). Gets [`Reply::Recorded`] once committed.
    Checkpoint {
        /// The execution.
        execution: ExecutionId,
        /// Names given a value.
        set: Checkpoints,
        /// Names cleared.
        reset: Vec<String>,
        /// The acknowledgement.
        ack: ReplyTo,
    },
    /// A stream operation of a producer or a consumer (see [`crate::model::StreamOp`]); gets
    /// [`Reply::Stream`] (a consumer's read and a producer's demand wait as long as needed).
    Stream {
        /// What is asked.
        op: crate::model::StreamOp,
        /// The answer.
        reply: ReplyTo,
    },
    /// An input operation (see [`crate::model::InputOp`]); gets [`Reply::Input`] (a wait once
    /// the input is final).
    Input {
        /// What is asked.
        op: crate::model::InputOp,
        /// The answer.
        reply: ReplyTo,
    },
    /// The worker running an execution went away.
    Abandon {
        /// The execution.
        execution: ExecutionId,
        /// Run it again whatever its retry policy: it was assigned before the orchestrator
        /// restarted and no reconnecting worker claimed it (most likely it never reached one),
        /// so the restart must not fail it.
        requeue: bool,
    },
    /// Cancel an execution (queued or running).
    Cancel {
        /// The execution.
        execution: ExecutionId,
    },
    /// The cache lookup for an execution found `source`.
    CacheHit {
        /// The execution.
        execution: ExecutionId,
        /// The execution whose result it takes.
        source: ExecutionId,
    },
    /// Another run waits for the final result of one of this run's executions.
    Subscribe {
        /// The execution.
        execution: ExecutionId,
        /// The waiting run.
        subscriber: RunId,
    },
    /// The final result of another run's execution that this run subscribed to.
    Resolved {
        /// The execution.
        execution: ExecutionId,
        /// Its final result.
        result: ExecutionResult,
    },
    /// Re-run a step.
    Rerun {
        /// The step.
        step: StepId,
        /// Where to run it (`None`: the step's base environment).
        environment: Option<EnvironmentId>,
        /// The target environment and its ancestors (the step's base must be among them).
        lineage: Vec<EnvironmentId>,
        /// Gets [`Reply::Rerun`].
        reply: ReplyTo,
    },
}

impl RunMsg {
    /// The callers waiting for a reply to this message.
    pub fn reply_ids(&self) -> Vec<ReplyTo> {
        match self {
            Self::Started { reply }
            | Self::Wait { reply, .. }
            | Self::WaitRun { reply, .. }
            | Self::Rerun { reply, .. } => vec![*reply],
            Self::Submit { reply, wait, .. } | Self::Create { reply, wait, .. } => {
                std::iter::once(*reply).chain(*wait).collect()
            }
            Self::Suspend { ack, .. } => ack.iter().copied().collect(),
            Self::Checkpoint { ack, .. } => vec![*ack],
            Self::Stream { reply, .. } | Self::Input { reply, .. } => vec![*reply],
            _ => Vec::new(),
        }
    }

    /// The execution the message is about, if any (for tracing).
    pub fn execution(&self) -> Option<ExecutionId> {
        match self {
            Self::Submit {
                parent: execution, ..
            }
            | Self::Wait { execution, .. }
            | Self::Result { execution, .. }
            | Self::Checkpoint { execution, .. }
            | Self::Abandon { execution, .. }
            | Self::Cancel { execution }
            | Self::CacheHit { execution, .. }
            | Self::Subscribe { execution, .. }
            | Self::Resolved { execution, .. }
            | Self::Suspend { execution, .. }
            | Self::Defer { execution, .. }
            | Self::Spawned {
                parent: execution, ..
            } => Some(*execution),
            Self::Stream { op, .. } => Some(op.execution()),
            Self::Input { .. }
            | Self::Create { .. }
            | Self::Started { .. }
            | Self::WaitRun { .. }
            | Self::Rerun { .. } => None,
        }
    }
}

//! Plain data: ids, environments, targets, values, results, runs. No I/O, no actors.

pub mod asset;
pub mod environment;
pub mod ids;
pub mod input;
pub mod project;
pub mod queue;
pub mod result;
pub mod run;
pub mod schedule;
pub mod stream;
pub mod target;
pub mod value;

pub use environment::{Environment, EnvironmentName, EnvironmentState, lineage, visible_from};
pub use ids::{EnvironmentId, ExecutionId, IdParseError, RunId, StepId, WorkerId};
pub use input::{InputId, InputOp, InputRecord, InputReply, InputSpec, InputState};
pub use project::{InvalidProjectName, ProjectName};
pub use queue::{QueuedExecution, WaitReason};
pub use result::{ErrorInfo, ExecutionResult, Frame, ResultKind};
pub use run::{Dependencies, ExecutionRecord, ExecutionState, RunRecord, StepRecord};
pub use schedule::{CronSpec, InvalidCron, Schedule};
pub use stream::{StreamClosure, StreamId, StreamOp, StreamRecord, StreamReply, Stride};
pub use target::{
    CacheConfig, DeferConfig, OptionOverrides, ParamSelection, Parameter, Requires, RetryPolicy,
    StepOptions, StreamDefaults, SubmitRequest, TargetDefinition, TargetKind, TargetRef,
};
pub use value::{Reference, Value};

/// A step's checkpoint state in one environment: name → value (`cf.Checkpoint`).
pub type Checkpoints = std::collections::BTreeMap<String, Value>;

/// Milliseconds since the Unix epoch: the one time unit of the model and the store.
pub type Millis = i64;

/// The current wall-clock time in [`Millis`].
pub fn now_millis() -> Millis {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

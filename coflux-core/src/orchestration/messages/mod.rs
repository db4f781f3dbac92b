//! The messages exchanged by the orchestration state machines, and their [`Outbox`].
//!
//! Each state machine (project, environment, run) handles one message at a time and fills an
//! [`Outbox`]: the writes to persist, then the messages to send once those writes are committed.
//! The actor shells route envelopes through the group-commit writer; the test harness routes
//! them through a queue, one at a time. Each family of messages has its file: project.rs,
//! environment.rs, run.rs; envelopes, replies, worker commands and the outbox are here.

use std::sync::Arc;

use crate::model::{
    Checkpoints, Environment, EnvironmentId, ExecutionId, ExecutionResult, Millis, QueuedExecution,
    RunId, Schedule, StreamDefaults, TargetRef, Value, WorkerId,
};
use crate::store::Write;

use super::error::OrchestrationError;

mod environment;
mod project;
mod run;

pub use environment::{EnvironmentMsg, Ticket};
pub use project::{CacheCheck, ProjectMsg, RunOptions, Submission};
pub use run::RunMsg;

/// Identifies a caller waiting for a [`Reply`] (a oneshot in the actor shell, a slot in the
/// harness).
pub type ReplyTo = u64;

/// A message on its way to a component.
#[derive(Debug, Clone)]
pub enum Envelope {
    /// To the project.
    Project(ProjectMsg),
    /// To an environment.
    Environment(EnvironmentId, EnvironmentMsg),
    /// To a run.
    Run(RunId, RunMsg),
    /// To a worker.
    Worker(WorkerId, WorkerCommand),
    /// To a waiting caller.
    Reply(ReplyTo, Reply),
    /// A run's actor may be retired (sent by the actor host once the run is finished and idle;
    /// it goes through the writer so it arrives after the run's last commit).
    Retire(RunId),
    /// An actor that panicked can now be reloaded from the database (sent by the actor host; it
    /// goes through the writer so it arrives after everything the actor sent before).
    Reload(ReloadTarget),
}

/// Which actor to reload after a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadTarget {
    /// A run's actor.
    Run(RunId),
    /// An environment's actor.
    Environment(EnvironmentId),
    /// The project actor.
    Project,
}

/// Commands to a worker.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerCommand {
    /// Run an execution.
    Execute {
        /// The execution.
        execution: ExecutionId,
        /// The target.
        target: TargetRef,
        /// Its arguments.
        arguments: Arc<Vec<Value>>,
        /// Its timeout.
        timeout_ms: Option<u64>,
        /// Its step's checkpoint state.
        checkpoints: Arc<Checkpoints>,
        /// The call site's stream settings.
        streams: Option<StreamDefaults>,
    },
    /// Stop an execution.
    Abort {
        /// The execution.
        execution: ExecutionId,
    },
}

/// Answers to callers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A run was started.
    RunStarted(Result<(RunId, ExecutionId), OrchestrationError>),
    /// A child was submitted.
    Submitted(Result<ExecutionId, OrchestrationError>),
    /// The final result of a chain.
    Result(Result<ExecutionResult, OrchestrationError>),
    /// A step was re-run.
    Rerun(Result<ExecutionId, OrchestrationError>),
    /// An environment was created or changed.
    Environment(Result<Environment, OrchestrationError>),
    /// The environments.
    Environments(Vec<Environment>),
    /// A reported result is recorded.
    Recorded(Result<(), OrchestrationError>),
    /// The executions a worker claimed.
    Claimed(Vec<ExecutionId>),
    /// A schedule was created or removed.
    Schedule(Result<Box<Schedule>, OrchestrationError>),
    /// The answer to a stream operation.
    Stream(Result<crate::model::StreamReply, OrchestrationError>),
    /// The answer to an input operation.
    Input(Result<crate::model::InputRecord, OrchestrationError>),
    /// What waits in an environment's queue, and how many wait in all.
    Queue(Vec<QueuedExecution>, usize),
}

impl Reply {
    /// The same kind of reply, carrying `error` instead.
    pub fn failed(&self, error: OrchestrationError) -> Reply {
        match self {
            Self::RunStarted(_) => Self::RunStarted(Err(error)),
            Self::Submitted(_) => Self::Submitted(Err(error)),
            Self::Result(_) => Self::Result(Err(error)),
            Self::Rerun(_) => Self::Rerun(Err(error)),
            Self::Environment(_) | Self::Environments(_) => Self::Environment(Err(error)),
            Self::Recorded(_) => Self::Recorded(Err(error)),
            Self::Claimed(_) => Self::Claimed(Vec::new()),
            Self::Schedule(_) => Self::Schedule(Err(error)),
            Self::Stream(_) => Self::Stream(Err(error)),
            Self::Input(_) => Self::Input(Err(error)),
            Self::Queue(..) => Self::Queue(Vec::new(), 0),
        }
    }
}

/// A message to deliver later.
#[derive(Debug, Clone)]
pub struct Timer {
    /// When.
    pub at: Millis,
    /// What.
    pub envelope: Envelope,
}

/// What handling one message produced.
#[derive(Debug, Default)]
pub struct Outbox {
    /// State transitions to commit.
    pub writes: Vec<Write>,
    /// Messages to send once the writes are committed.
    pub messages: Vec<Envelope>,
    /// Messages to deliver at a later time.
    pub timers: Vec<Timer>,
}

impl Outbox {
    /// Queues a write.
    pub fn write(&mut self, write: Write) {
        self.writes.push(write);
    }
    /// Queues a message.
    pub fn send(&mut self, envelope: Envelope) {
        self.messages.push(envelope);
    }
    /// Queues a reply.
    pub fn reply(&mut self, to: ReplyTo, reply: Reply) {
        self.messages.push(Envelope::Reply(to, reply));
    }
    /// Whether nothing was produced.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.messages.is_empty() && self.timers.is_empty()
    }
}

impl Envelope {
    /// Whether this goes to one of the project's own state machines (as opposed to a worker or
    /// a waiting caller outside).
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            Self::Project(_) | Self::Environment(..) | Self::Run(..)
        )
    }
}

//! Messages to an environment ([`EnvironmentMsg`]) and the [`Ticket`] it queues.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::model::{
    Checkpoints, EnvironmentId, EnvironmentState, ExecutionId, Millis, Requires, StreamDefaults,
    TargetRef, Value, WorkerId,
};

use super::{CacheCheck, ReplyTo};

/// Everything an environment needs to schedule and dispatch an execution.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The execution.
    pub execution: ExecutionId,
    /// The environment it runs in.
    pub environment: EnvironmentId,
    /// The target to run.
    pub target: TargetRef,
    /// Its arguments.
    pub arguments: Arc<Vec<Value>>,
    /// Not before this time.
    pub execute_after: Option<Millis>,
    /// Tags the worker must provide.
    pub requires: Requires,
    /// A cache lookup still to make (first attempts of cached steps only).
    pub cache: Option<CacheCheck>,
    /// The execution's timeout.
    pub timeout_ms: Option<u64>,
    /// Queued executions with the same key collapse into the one due last.
    pub defer_key: Option<String>,
    /// The step's checkpoint state in its environment when the execution was queued.
    pub checkpoints: Arc<Checkpoints>,
    /// The call site's stream settings, for the executor.
    pub streams: Option<StreamDefaults>,
    /// When the execution was created (orders deferred executions with the same due time).
    pub created_at: Millis,
}

/// Messages to an environment.
#[derive(Debug, Clone)]
pub enum EnvironmentMsg {
    /// The environment's state (sent on creation and on every change).
    SetState(EnvironmentState),
    /// At most `max` executions of `target` run at once (`None`: no limit).
    SetLimit {
        /// The target.
        target: TargetRef,
        /// The limit.
        max: Option<u32>,
    },
    /// Schedule an execution.
    Enqueue(Ticket),
    /// The project found no cached result: the execution can be dispatched (it is now a cache
    /// source for `key`).
    CacheMissed {
        /// The execution.
        ticket: Ticket,
        /// Its cache key.
        key: String,
    },
    /// A timer fired: move due executions on.
    Tick,
    /// A worker connected.
    Connect {
        /// The worker.
        worker: WorkerId,
        /// The targets it hosts.
        targets: BTreeSet<TargetRef>,
        /// How many executions it runs at once.
        capacity: usize,
        /// Its tags.
        provides: Requires,
        /// Tags an execution's `requires` must include for it to run here (Coflux's
        /// `accepts`; empty: any execution).
        accepts: Requires,
    },
    /// A worker became unreachable (`false`: it keeps its executions but gets no new ones) or
    /// reachable again.
    SetAvailable {
        /// The worker.
        worker: WorkerId,
        /// Whether it may be assigned work.
        available: bool,
    },
    /// After a restart: an execution that was running on a worker of the previous process.
    /// A worker may claim it before `deadline`; after that it is abandoned.
    Orphan {
        /// The execution.
        execution: ExecutionId,
        /// Its target (it counts against the target's concurrency limit).
        target: TargetRef,
        /// When it is abandoned unless claimed.
        deadline: Millis,
        /// The worker it was assigned to (in the previous process).
        worker: WorkerId,
    },
    /// What waits in the queue and why (at most `limit` executions, oldest first).
    Queue {
        /// The most executions listed.
        limit: usize,
        /// Gets [`Reply::Queue`].
        reply: ReplyTo,
    },
    /// A (re)connected worker says it is still running these executions: those that are
    /// orphans become its assignments.
    Claim {
        /// The worker.
        worker: WorkerId,
        /// What it runs.
        executions: Vec<ExecutionId>,
        /// The worker of the agent's session before the restart, if it says: its orphans
        /// that are not claimed are abandoned at once instead of when the grace period ends.
        previous: Option<WorkerId>,
        /// Gets [`Reply::Claimed`] with the executions now assigned to it.
        reply: ReplyTo,
    },
    /// An execution of a worker waits for others (`true`: it does not count against the
    /// worker's capacity) or runs again.
    SetWaiting {
        /// The worker.
        worker: WorkerId,
        /// The execution.
        execution: ExecutionId,
        /// Whether it waits.
        waiting: bool,
    },
    /// A worker went away: its executions are abandoned.
    Disconnect {
        /// The worker.
        worker: WorkerId,
    },
    /// An execution ended: free its worker's slot.
    Finished {
        /// The execution.
        execution: ExecutionId,
    },
    /// Stop an execution: drop it from the queue, or abort it on its worker.
    Withdraw {
        /// The execution.
        execution: ExecutionId,
    },
}

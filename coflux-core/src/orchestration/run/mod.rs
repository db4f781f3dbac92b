//! The run state machine: steps and their executions, results and retries, waiters (local and
//! in other runs), memoising and re-runs.

use std::collections::HashMap;
use std::sync::Arc;

use rand::Rng;

use crate::model::SubmitRequest;
use crate::model::{
    Checkpoints, Dependencies, EnvironmentId, ExecutionId, ExecutionResult, Millis, ParamSelection,
    Reference, Requires, RetryPolicy, RunId, RunRecord, StepId, StepOptions, StepRecord,
    TargetKind, TargetRef, Value, WorkerId,
};
use crate::store::{CacheOutcome, Write};

use super::cache::{cache_key, call_key};
use super::error::OrchestrationError;
use super::messages::{
    CacheCheck, Envelope, EnvironmentMsg, Outbox, ProjectMsg, Reply, ReplyTo, RunMsg, Ticket,
};

mod calls;
mod checkpoints;
mod control;
mod dependencies;
mod handlers;
mod inputs;
mod policy;
mod progress;
mod recovery;
mod results;
mod streams;

use calls::Replay;
use dependencies::waited_for;

/// A bound on result chains (retries, cache links, ...) followed to find a final result.
const MAX_CHAIN: usize = 100_000;

#[derive(Debug, Clone)]
struct Attempt {
    environment: EnvironmentId,
    execute_after: Option<Millis>,
    created_at: Millis,
    assignment: Option<(WorkerId, Millis)>,
    result: Option<ExecutionResult>,
    dependencies: Dependencies,
}

#[derive(Debug)]
struct StepState {
    /// The step as stored, without its arguments (`record.arguments` is left empty: they are
    /// held once, in `arguments`).
    record: StepRecord,
    arguments: Arc<Vec<Value>>,
    attempts: Vec<Attempt>,
    /// Checkpoint state per environment (see [`checkpoints`]).
    checkpoints: HashMap<EnvironmentId, Arc<Checkpoints>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiter {
    Reply(ReplyTo),
    /// A caller waiting for one attempt's own result (see [`RunCore::resolve_from`]).
    Exact(ReplyTo),
    Run {
        run: RunId,
        execution: ExecutionId,
    },
    /// An execution of this run held until its dependencies finish.
    Dependency(ExecutionId),
}

enum Resolution {
    Final(ExecutionResult),
    Pending(ExecutionId),
}

/// Waiters taken from a run's state (see [`RunCore::take_waiters`]).
#[derive(Debug, Default)]
pub struct Waiters(Vec<(ExecutionId, Waiter)>);

/// One run's steps, executions and waiters.
#[derive(Debug)]
pub struct RunCore {
    id: RunId,
    record: Option<RunRecord>,
    steps: Vec<StepState>,
    waiters: HashMap<ExecutionId, Vec<Waiter>>,
    external: HashMap<ExecutionId, Option<ExecutionResult>>,
    memo: HashMap<(EnvironmentId, String), ExecutionId>,
    /// Executions held until their dependencies finish, with how many are still pending.
    held: HashMap<ExecutionId, usize>,
    /// Runs started by this run's executions (workflows they called): parent → initial
    /// executions of the spawned runs.
    spawned: HashMap<ExecutionId, Vec<ExecutionId>>,
    /// Children given to executions other than through their own steps (memo hits, replays
    /// after a suspension): parent → children, in link order.
    links: HashMap<ExecutionId, Vec<ExecutionId>>,
    /// The steps each execution created, in creation (step) order: finding an execution's
    /// children costs their number, not the run's size.
    own_children: HashMap<ExecutionId, Vec<StepId>>,
    /// How many executions have no result yet (whether the run is active, without a scan).
    open: usize,
    /// Replay state of running executions that resumed after a suspension.
    replays: HashMap<ExecutionId, Replay>,
    /// The child each numbered call of an execution got: (parent, call) → child.
    calls: HashMap<(ExecutionId, u32), ExecutionId>,
    /// Its steps' streams (see [`streams`]).
    streams: streams::Streams,
    /// Its inputs (see [`inputs`]).
    inputs: inputs::Inputs,
}

impl RunCore {
    /// An empty run, to be created by [`RunMsg::Create`].
    pub fn new(id: RunId) -> Self {
        Self {
            id,
            record: None,
            steps: Vec::new(),
            waiters: HashMap::new(),
            external: HashMap::new(),
            memo: HashMap::new(),
            held: HashMap::new(),
            spawned: HashMap::new(),
            links: HashMap::new(),
            own_children: HashMap::new(),
            open: 0,
            replays: HashMap::new(),
            calls: HashMap::new(),
            streams: streams::Streams::default(),
            inputs: inputs::Inputs::default(),
        }
    }

    /// The run's id.
    pub fn id(&self) -> RunId {
        self.id
    }

    /// Whether the run has been created.
    pub fn exists(&self) -> bool {
        self.record.is_some()
    }

    /// Whether the run is finished and nobody waits on it: its actor may be retired.
    pub fn is_idle(&self) -> bool {
        self.exists()
            && self.waiters.is_empty()
            && !self.is_active()
            && self.streams.is_idle()
            && self.inputs.is_idle()
    }

    /// How many steps the run has.
    pub fn step_count(&self) -> usize {
        self.steps.len()
    }

    /// Whether any execution is still without a result.
    pub fn is_active(&self) -> bool {
        self.open > 0
    }

    fn step(&self, id: StepId) -> Option<&StepState> {
        if id.run != self.id || id.number == 0 {
            return None;
        }
        self.steps.get(id.number as usize - 1)
    }

    fn step_mut(&mut self, id: StepId) -> Option<&mut StepState> {
        if id.run != self.id || id.number == 0 {
            return None;
        }
        self.steps.get_mut(id.number as usize - 1)
    }

    fn attempt(&self, id: ExecutionId) -> Option<&Attempt> {
        self.step(id.step)?
            .attempts
            .get((id.attempt as usize).checked_sub(1)?)
    }

    /// Handles one message.
    pub fn handle(&mut self, msg: RunMsg, now: Millis, out: &mut Outbox) {
        if !self.exists() && !matches!(msg, RunMsg::Create { .. }) {
            return reject_missing(self.id, msg, out);
        }
        match msg {
            msg @ (RunMsg::Started { .. }
            | RunMsg::Create { .. }
            | RunMsg::Spawned { .. }
            | RunMsg::Rerun { .. }) => self.on_lifecycle(msg, now, out),
            msg @ (RunMsg::Submit { .. }
            | RunMsg::Wait { .. }
            | RunMsg::WaitRun { .. }
            | RunMsg::Subscribe { .. }
            | RunMsg::Resolved { .. }) => self.on_calls(msg, now, out),
            msg @ (RunMsg::Suspend { .. }
            | RunMsg::Defer { .. }
            | RunMsg::Result { .. }
            | RunMsg::Checkpoint { .. }
            | RunMsg::Abandon { .. }
            | RunMsg::Cancel { .. }
            | RunMsg::CacheHit { .. }) => self.on_outcomes(msg, now, out),
            RunMsg::Stream { op, reply } => self.stream_op(op, reply, now, out),
            RunMsg::Input { op, reply } => self.input_op(op, reply, now, out),
        }
    }
}

/// Answers requests to a run that does not exist.
fn reject_missing(run: RunId, msg: RunMsg, out: &mut Outbox) {
    let err = OrchestrationError::RunNotFound(run.to_string());
    match msg {
        RunMsg::Submit { reply, wait, .. } => {
            if let Some(waiter) = wait {
                out.reply(waiter, Reply::Result(Err(err.clone())));
            }
            out.reply(reply, Reply::Submitted(Err(err)));
        }
        RunMsg::Wait { reply, .. } | RunMsg::WaitRun { reply, .. } => {
            out.reply(reply, Reply::Result(Err(err)))
        }
        RunMsg::Rerun { reply, .. } => out.reply(reply, Reply::Rerun(Err(err))),
        RunMsg::Create { reply, wait, .. } => {
            if let Some(waiter) = wait {
                out.reply(waiter, Reply::Result(Err(err.clone())));
            }
            out.reply(reply, Reply::RunStarted(Err(err)))
        }
        RunMsg::Started { reply } => out.reply(reply, Reply::RunStarted(Err(err))),
        RunMsg::Suspend { ack: Some(ack), .. } | RunMsg::Checkpoint { ack, .. } => {
            out.reply(ack, Reply::Recorded(Err(err)))
        }
        RunMsg::Stream { reply, .. } => out.reply(reply, Reply::Stream(Err(err))),
        RunMsg::Input { reply, .. } => out.reply(reply, Reply::Input(Err(err))),
        // The subscriber waits for a result: it gets an error rather than nothing.
        RunMsg::Subscribe {
            execution,
            subscriber,
        } => out.send(Envelope::Run(
            subscriber,
            RunMsg::Resolved {
                execution,
                result: ExecutionResult::Error {
                    error: crate::model::ErrorInfo::new("coflux.RunNotFound", err.to_string()),
                    retry: None,
                },
            },
        )),
        _ => {}
    }
}

fn deliver(waiter: Waiter, result: ExecutionResult, out: &mut Outbox) {
    match waiter {
        Waiter::Reply(reply) | Waiter::Exact(reply) => out.reply(reply, Reply::Result(Ok(result))),
        Waiter::Run { run, execution } => {
            out.send(Envelope::Run(run, RunMsg::Resolved { execution, result }))
        }
        Waiter::Dependency(_) => {} // handled by the run itself (see `RunCore::wait`)
    }
}

fn ticket(step: &StepState, attempt: u32) -> Ticket {
    let a = &step.attempts[attempt as usize - 1];
    let cache = match (&step.record.cache_key, &step.record.options.cache) {
        (Some(key), Some(config)) if attempt == 1 => Some(CacheCheck {
            key: key.clone(),
            max_age_ms: config.max_age_ms,
        }),
        _ => None,
    };
    let defer_key = step
        .record
        .options
        .defer
        .as_ref()
        .map(|d| call_key(&step.record.target, &d.params, &step.arguments));
    Ticket {
        execution: step.record.id.execution(attempt),
        environment: a.environment,
        target: step.record.target.clone(),
        arguments: step.arguments.clone(),
        execute_after: a.execute_after,
        requires: step.record.options.requires.clone(),
        cache,
        timeout_ms: step.record.options.timeout_ms,
        streams: step.record.options.streams,
        defer_key,
        created_at: a.created_at,
        checkpoints: step
            .checkpoints
            .get(&a.environment)
            .cloned()
            .unwrap_or_default(),
    }
}

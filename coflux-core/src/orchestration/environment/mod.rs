//! The environment state machine: the queue of executions, their delays, and dispatch to the
//! connected workers that host their targets, have free capacity and provide what they require.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use crate::model::{
    EnvironmentId, EnvironmentState, ExecutionId, Millis, Requires, TargetRef, WorkerId,
};
use crate::store::Write;

use super::messages::{
    Envelope, EnvironmentMsg, Outbox, ProjectMsg, RunMsg, Ticket, Timer, WorkerCommand,
};

#[derive(Debug)]
struct WorkerSlot {
    targets: BTreeSet<TargetRef>,
    capacity: usize,
    provides: Requires,
    /// Keys and values an execution's `requires` must include (one value per key).
    accepts: Requires,
    running: usize,
    /// Its executions waiting for others (not counted in `running`).
    waiting: HashSet<ExecutionId>,
    /// False while the worker is unreachable (e.g. its agent is reconnecting): it keeps its
    /// executions but gets no new ones.
    available: bool,
}

impl WorkerSlot {
    fn accepts(&self, ticket: &Ticket) -> bool {
        self.available && self.running < self.capacity && self.fits(ticket)
    }

    /// Whether it could ever run `ticket` (its target, `requires` and `accepts`), busy or not.
    fn fits(&self, ticket: &Ticket) -> bool {
        self.targets.contains(&ticket.target)
            && ticket.requires.iter().all(|(key, values)| {
                values.is_empty()
                    || self
                        .provides
                        .get(key)
                        .is_some_and(|have| have.iter().any(|v| values.contains(v)))
            })
            && self.accepts.iter().all(|(key, values)| {
                ticket
                    .requires
                    .get(key)
                    .is_some_and(|wanted| wanted.iter().any(|v| values.contains(v)))
            })
    }
}

/// An environment's queue and workers.
#[derive(Debug)]
pub struct EnvironmentCore {
    id: EnvironmentId,
    state: EnvironmentState,
    delayed: BTreeMap<(Millis, ExecutionId), Ticket>,
    ready: VecDeque<Ticket>,
    workers: BTreeMap<WorkerId, WorkerSlot>,
    assigned: HashMap<ExecutionId, WorkerId>,
    /// Executions whose cache lookup is with the project.
    in_lookup: HashSet<ExecutionId>,
    /// Every execution held here (delayed, in lookup, ready or assigned): a second `Enqueue` of
    /// one of them (e.g. from a revived run) is ignored.
    known: HashSet<ExecutionId>,
    timer_at: Option<Millis>,
    /// Executions left running by the previous process, with when they are abandoned unless a
    /// worker claims them.
    orphans: BTreeMap<ExecutionId, Millis>,
    /// The worker each orphan was assigned to (entries of orphans gone are never read).
    orphan_workers: HashMap<ExecutionId, WorkerId>,
    /// When assigned executions with a timeout are timed out by the orchestrator if their
    /// worker has not reported (entries of executions that ended are skipped when due).
    deadlines: BTreeSet<(Millis, ExecutionId)>,
    /// The queued execution holding each defer key, with its order (due time, creation).
    deferred: HashMap<String, (ExecutionId, (Millis, Millis))>,
    /// Per-target concurrency limits.
    limits: HashMap<TargetRef, u32>,
    /// The target of each assigned execution that counts against a limit (running, not
    /// waiting), and how many run per target.
    limited: HashMap<ExecutionId, TargetRef>,
    running_per_target: HashMap<TargetRef, u32>,
    /// The target of each assigned execution.
    assigned_targets: HashMap<ExecutionId, TargetRef>,
}

/// How long after an execution's timeout the orchestrator ends it itself, if its worker has
/// not (the worker normally reports the timeout first).
pub const TIMEOUT_SLACK_MS: Millis = 2_000;

impl EnvironmentCore {
    /// A new, active environment with an empty queue.
    pub fn new(id: EnvironmentId) -> Self {
        Self {
            id,
            state: EnvironmentState::Active,
            delayed: BTreeMap::new(),
            ready: VecDeque::new(),
            workers: BTreeMap::new(),
            assigned: HashMap::new(),
            in_lookup: HashSet::new(),
            known: HashSet::new(),
            timer_at: None,
            orphans: BTreeMap::new(),
            orphan_workers: HashMap::new(),
            deadlines: BTreeSet::new(),
            deferred: HashMap::new(),
            limits: HashMap::new(),
            limited: HashMap::new(),
            running_per_target: HashMap::new(),
            assigned_targets: HashMap::new(),
        }
    }

    /// The environment's id.
    pub fn id(&self) -> EnvironmentId {
        self.id
    }

    /// Records an execution as running on `worker` (when rebuilding the environment's state).
    pub fn restore_assignment(&mut self, execution: ExecutionId, worker: WorkerId) {
        self.known.insert(execution);
        self.assigned.insert(execution, worker);
        if let Some(slot) = self.workers.get_mut(&worker) {
            slot.running += 1;
        }
    }

    /// Handles one message.
    pub fn handle(&mut self, msg: EnvironmentMsg, now: Millis, out: &mut Outbox) {
        match msg {
            msg @ (EnvironmentMsg::SetState { .. }
            | EnvironmentMsg::SetLimit { .. }
            | EnvironmentMsg::Queue { .. }) => self.on_settings(msg, out),
            msg @ (EnvironmentMsg::CacheMissed { .. }
            | EnvironmentMsg::Orphan { .. }
            | EnvironmentMsg::Claim { .. }
            | EnvironmentMsg::Tick) => self.on_queued(msg, now, out),
            msg @ (EnvironmentMsg::Connect { .. }
            | EnvironmentMsg::SetWaiting { .. }
            | EnvironmentMsg::SetAvailable { .. }
            | EnvironmentMsg::Disconnect { .. }
            | EnvironmentMsg::Finished { .. }
            | EnvironmentMsg::Withdraw { .. }) => self.on_workers(msg, out),
            EnvironmentMsg::Enqueue(ticket) => {
                if !self.enqueue(ticket, now, out) {
                    return self.arm_timer(out);
                }
            }
        }
        self.dispatch(now, out);
        self.arm_timer(out);
    }

    /// Debounce: of the queued executions with the same defer key, only the one due last (the
    /// latest created, among equals) stays; the other is deferred to it. Returns the ticket if
    /// it stays queued.
    fn collapse(&mut self, ticket: Ticket, out: &mut Outbox) -> Option<Ticket> {
        let Some(key) = ticket.defer_key.clone() else {
            return Some(ticket);
        };
        let order = (
            ticket.execute_after.unwrap_or(ticket.created_at),
            ticket.created_at,
        );
        let held = self
            .deferred
            .get(&key)
            .copied()
            .filter(|(e, _)| self.is_queued(*e));
        let Some((other, other_order)) = held else {
            self.deferred.insert(key, (ticket.execution, order));
            return Some(ticket);
        };
        let (loser, survivor) = if order >= other_order {
            self.deferred.insert(key, (ticket.execution, order));
            self.unqueue(other);
            (other, ticket.execution)
        } else {
            (ticket.execution, other)
        };
        self.known.remove(&loser);
        out.send(Envelope::Run(
            loser.run(),
            RunMsg::Defer {
                execution: loser,
                successor: survivor,
            },
        ));
        (loser != ticket.execution).then_some(ticket)
    }

    /// Whether the execution waits in the queue (delayed or ready, not being looked up in the
    /// cache nor assigned).
    fn is_queued(&self, execution: ExecutionId) -> bool {
        self.ready.iter().any(|t| t.execution == execution)
            || self.delayed.keys().any(|(_, e)| *e == execution)
    }

    fn unqueue(&mut self, execution: ExecutionId) {
        self.ready.retain(|t| t.execution != execution);
        self.delayed.retain(|(_, e), _| *e != execution);
    }

    fn due(&mut self, ticket: Ticket, out: &mut Outbox) {
        if ticket.cache.is_some() {
            self.in_lookup.insert(ticket.execution);
            out.send(Envelope::Project(ProjectMsg::CacheLookup(ticket)));
        } else {
            self.ready.push_back(ticket);
        }
    }

    /// Ends an execution whose worker did not report it within its timeout: the worker is told
    /// to abort it and the run records a timeout (retried where its policy allows).
    fn time_out(&mut self, execution: ExecutionId, out: &mut Outbox) {
        let Some(worker) = self.assigned.get(&execution).copied() else {
            return; // it ended in time
        };
        self.release(execution);
        self.known.remove(&execution);
        out.send(Envelope::Worker(worker, WorkerCommand::Abort { execution }));
        out.send(Envelope::Run(
            execution.run(),
            RunMsg::Result {
                execution,
                result: crate::model::ExecutionResult::Timeout { retry: None },
                ack: None,
            },
        ));
    }

    /// Counts `execution` against its target's limit.
    fn limit(&mut self, execution: ExecutionId, target: TargetRef) {
        if self.limited.contains_key(&execution) {
            return;
        }
        *self.running_per_target.entry(target.clone()).or_default() += 1;
        self.limited.insert(execution, target);
    }

    /// Stops counting `execution` against its target's limit.
    fn unlimit(&mut self, execution: ExecutionId) {
        if let Some(target) = self.limited.remove(&execution)
            && let Some(count) = self.running_per_target.get_mut(&target)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.running_per_target.remove(&target);
            }
        }
    }

    /// Whether another execution of `target` may start.
    fn under_limit(&self, target: &TargetRef) -> bool {
        self.limits
            .get(target)
            .is_none_or(|max| self.running_per_target.get(target).copied().unwrap_or(0) < *max)
    }

    fn release(&mut self, execution: ExecutionId) {
        self.unlimit(execution);
        self.assigned_targets.remove(&execution);
        if let Some(worker) = self.assigned.remove(&execution)
            && let Some(slot) = self.workers.get_mut(&worker)
            && !slot.waiting.remove(&execution)
        {
            slot.running = slot.running.saturating_sub(1);
        }
    }

    fn dispatch(&mut self, now: Millis, out: &mut Outbox) {
        if self.state != EnvironmentState::Active || self.ready.is_empty() {
            return;
        }
        // Tickets no worker takes now (over a limit, no accepting worker); they go back to the
        // front in their order. When every worker is full the rest of the queue stays where it
        // is: moving it would cost the queue's length for every message.
        let mut kept = Vec::new();
        while let Some(ticket) = self.ready.pop_front() {
            if !self
                .workers
                .values()
                .any(|w| w.available && w.running < w.capacity)
            {
                self.ready.push_front(ticket);
                break;
            }
            if !self.under_limit(&ticket.target) {
                kept.push(ticket);
                continue;
            }
            let chosen = self
                .workers
                .iter()
                .filter(|(_, w)| w.accepts(&ticket))
                .min_by_key(|(_, w)| w.running)
                .map(|(id, _)| *id);
            let Some(worker) = chosen else {
                kept.push(ticket);
                continue;
            };
            if let Some(slot) = self.workers.get_mut(&worker) {
                slot.running += 1;
            }
            self.assigned.insert(ticket.execution, worker);
            self.assigned_targets
                .insert(ticket.execution, ticket.target.clone());
            self.limit(ticket.execution, ticket.target.clone());
            if let Some(timeout) = ticket.timeout_ms.filter(|t| *t > 0) {
                let timeout = Millis::try_from(timeout).unwrap_or(Millis::MAX / 2);
                self.deadlines.insert((
                    now.saturating_add(timeout).saturating_add(TIMEOUT_SLACK_MS),
                    ticket.execution,
                ));
            }
            out.write(Write::Assign {
                execution: ticket.execution,
                worker,
                at: now,
            });
            out.send(Envelope::Worker(
                worker,
                WorkerCommand::Execute {
                    execution: ticket.execution,
                    target: ticket.target,
                    arguments: ticket.arguments,
                    timeout_ms: ticket.timeout_ms,
                    checkpoints: ticket.checkpoints,
                    streams: ticket.streams,
                },
            ));
        }
        for ticket in kept.into_iter().rev() {
            self.ready.push_front(ticket);
        }
    }

    fn arm_timer(&mut self, out: &mut Outbox) {
        let next_delayed = self.delayed.first_key_value().map(|((at, _), _)| *at);
        let next_orphan = self.orphans.values().min().copied();
        let next_deadline = self.deadlines.first().map(|(at, _)| *at);
        let Some(at) = next_delayed
            .into_iter()
            .chain(next_orphan)
            .chain(next_deadline)
            .min()
        else {
            return;
        };
        if self.timer_at.is_none_or(|armed| at < armed) {
            self.timer_at = Some(at);
            out.timers.push(Timer {
                at,
                envelope: Envelope::Environment(self.id, EnvironmentMsg::Tick),
            });
        }
    }

    fn archive(&mut self, out: &mut Outbox) {
        let queued = self
            .ready
            .drain(..)
            .map(|t| t.execution)
            .chain(self.delayed.values().map(|t| t.execution));
        let mut cancel: Vec<ExecutionId> = queued.collect();
        cancel.extend(std::mem::take(&mut self.orphans).into_keys());
        self.delayed.clear();
        self.limited.clear();
        self.running_per_target.clear();
        self.assigned_targets.clear();
        for (execution, worker) in self.assigned.drain() {
            out.send(Envelope::Worker(worker, WorkerCommand::Abort { execution }));
            cancel.push(execution);
        }
        for execution in cancel {
            out.send(Envelope::Run(execution.run(), RunMsg::Cancel { execution }));
        }
        for worker in self.workers.values_mut() {
            worker.running = 0;
        }
        self.known.retain(|e| self.in_lookup.contains(e));
    }
}

mod handlers;
mod queue;

#[cfg(test)]
mod tests;

//! The environment state machine: the queue of executions, their delays, and dispatch to the
//! connected workers that host their targets, have free capacity and provide what they require.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

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
    running: usize,
}

impl WorkerSlot {
    fn accepts(&self, ticket: &Ticket) -> bool {
        self.running < self.capacity
            && self.targets.contains(&ticket.target)
            && ticket.requires.iter().all(|(key, values)| {
                values.is_empty()
                    || self
                        .provides
                        .get(key)
                        .is_some_and(|have| have.iter().any(|v| values.contains(v)))
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
    timer_at: Option<Millis>,
}

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
            timer_at: None,
        }
    }

    /// The environment's id.
    pub fn id(&self) -> EnvironmentId {
        self.id
    }

    /// Executions queued (due or delayed) and not yet assigned.
    pub fn queued(&self) -> usize {
        self.ready.len() + self.delayed.len()
    }

    /// Handles one message.
    pub fn handle(&mut self, msg: EnvironmentMsg, now: Millis, out: &mut Outbox) {
        match msg {
            EnvironmentMsg::SetState(state) => {
                self.state = state;
                if state == EnvironmentState::Archived {
                    self.archive(out);
                }
            }
            EnvironmentMsg::Enqueue(ticket) => match ticket.execute_after {
                Some(at) if at > now => {
                    self.delayed.insert((at, ticket.execution), ticket);
                }
                _ => self.due(ticket, out),
            },
            EnvironmentMsg::CacheMissed(ticket) => self.ready.push_back(ticket),
            EnvironmentMsg::Tick => {
                self.timer_at = None;
                while let Some(entry) = self.delayed.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let ticket = entry.remove();
                    self.due(ticket, out);
                }
            }
            EnvironmentMsg::Connect {
                worker,
                targets,
                capacity,
                provides,
            } => {
                self.workers.insert(
                    worker,
                    WorkerSlot {
                        targets,
                        capacity,
                        provides,
                        running: 0,
                    },
                );
            }
            EnvironmentMsg::Disconnect { worker } => {
                self.workers.remove(&worker);
                let lost: Vec<_> = self
                    .assigned
                    .iter()
                    .filter(|(_, w)| **w == worker)
                    .map(|(e, _)| *e)
                    .collect();
                for execution in lost {
                    self.assigned.remove(&execution);
                    out.send(Envelope::Run(
                        execution.run(),
                        RunMsg::Abandon { execution },
                    ));
                }
            }
            EnvironmentMsg::Finished { execution } => self.release(execution),
            EnvironmentMsg::Withdraw { execution } => {
                self.ready.retain(|t| t.execution != execution);
                self.delayed.retain(|(_, e), _| *e != execution);
                if let Some(worker) = self.assigned.get(&execution).copied() {
                    self.release(execution);
                    out.send(Envelope::Worker(worker, WorkerCommand::Abort { execution }));
                }
            }
        }
        self.dispatch(now, out);
        self.arm_timer(out);
    }

    fn due(&mut self, ticket: Ticket, out: &mut Outbox) {
        if ticket.cache.is_some() {
            out.send(Envelope::Project(ProjectMsg::CacheLookup(ticket)));
        } else {
            self.ready.push_back(ticket);
        }
    }

    fn release(&mut self, execution: ExecutionId) {
        if let Some(worker) = self.assigned.remove(&execution)
            && let Some(slot) = self.workers.get_mut(&worker)
        {
            slot.running = slot.running.saturating_sub(1);
        }
    }

    fn dispatch(&mut self, now: Millis, out: &mut Outbox) {
        if self.state != EnvironmentState::Active || self.ready.is_empty() {
            return;
        }
        let mut kept = VecDeque::new();
        while let Some(ticket) = self.ready.pop_front() {
            if !self.workers.values().any(|w| w.running < w.capacity) {
                kept.push_back(ticket);
                kept.extend(self.ready.drain(..));
                break;
            }
            let chosen = self
                .workers
                .iter()
                .filter(|(_, w)| w.accepts(&ticket))
                .min_by_key(|(_, w)| w.running)
                .map(|(id, _)| *id);
            let Some(worker) = chosen else {
                kept.push_back(ticket);
                continue;
            };
            if let Some(slot) = self.workers.get_mut(&worker) {
                slot.running += 1;
            }
            self.assigned.insert(ticket.execution, worker);
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
                },
            ));
        }
        self.ready = kept;
    }

    fn arm_timer(&mut self, out: &mut Outbox) {
        let Some(((at, _), _)) = self.delayed.first_key_value() else {
            return;
        };
        if self.timer_at.is_none_or(|armed| *at < armed) {
            self.timer_at = Some(*at);
            out.timers.push(Timer {
                at: *at,
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
        self.delayed.clear();
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
    }
}

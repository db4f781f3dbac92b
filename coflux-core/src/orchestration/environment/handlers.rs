//! [`EnvironmentCore::handle`]'s message families, one function each.

use std::collections::HashSet;

use super::{EnvironmentCore, WorkerSlot};
use crate::model::{EnvironmentState, Millis};
use crate::orchestration::messages::{
    Envelope, EnvironmentMsg, Outbox, ProjectMsg, Reply, RunMsg, Ticket, WorkerCommand,
};
use crate::store::CacheOutcome;

impl EnvironmentCore {
    /// A new execution to queue; false when it was collapsed into a later one (then nothing
    /// is dispatched).
    pub(super) fn enqueue(&mut self, ticket: Ticket, now: Millis, out: &mut Outbox) -> bool {
        if self.state == EnvironmentState::Archived {
            let execution = ticket.execution;
            out.send(Envelope::Run(execution.run(), RunMsg::Cancel { execution }));
        } else if self.known.insert(ticket.execution) {
            let Some(ticket) = self.collapse(ticket, out) else {
                return false;
            };
            match ticket.execute_after {
                Some(at) if at > now => {
                    self.delayed.insert((at, ticket.execution), ticket);
                }
                _ => self.due(ticket, out),
            }
        }
        true
    }

    /// The environment's state and limits, and queue inspection.
    pub(super) fn on_settings(&mut self, msg: EnvironmentMsg, out: &mut Outbox) {
        match msg {
            EnvironmentMsg::SetState(state) => {
                self.state = state;
                if state == EnvironmentState::Archived {
                    self.archive(out);
                }
            }
            EnvironmentMsg::SetLimit { target, max } => match max {
                Some(max) => {
                    self.limits.insert(target, max);
                }
                None => {
                    self.limits.remove(&target);
                }
            },
            EnvironmentMsg::Queue { limit, reply } => {
                let (waiting, total) = self.queue(limit);
                out.reply(reply, Reply::Queue(waiting, total));
            }
            _ => unreachable!("routed by handle"),
        }
    }

    /// Executions arriving from a cache lookup or a previous process, claims and timers.
    pub(super) fn on_queued(&mut self, msg: EnvironmentMsg, now: Millis, out: &mut Outbox) {
        match msg {
            EnvironmentMsg::CacheMissed { ticket, key } => {
                let execution = ticket.execution;
                if !self.in_lookup.remove(&execution) {
                    // Withdrawn (cancelled) while the project looked it up: it must neither run
                    // nor stay registered as a cache source.
                    out.send(Envelope::Project(ProjectMsg::CacheUpdate {
                        key,
                        execution,
                        environment: self.id,
                        created_at: now,
                        outcome: CacheOutcome::Failed,
                    }));
                } else if self.state == EnvironmentState::Archived {
                    self.known.remove(&execution);
                    out.send(Envelope::Run(execution.run(), RunMsg::Cancel { execution }));
                } else {
                    self.ready.push_back(ticket);
                }
            }
            EnvironmentMsg::Orphan {
                execution,
                target,
                deadline,
                worker,
            } => {
                self.known.insert(execution);
                self.orphans.insert(execution, deadline);
                self.orphan_workers.insert(execution, worker);
                self.assigned_targets.insert(execution, target.clone());
                self.limit(execution, target);
            }
            EnvironmentMsg::Claim {
                worker,
                executions,
                previous,
                reply,
            } => {
                let mut claimed = Vec::new();
                if self.workers.contains_key(&worker) {
                    for execution in executions {
                        if self.orphans.remove(&execution).is_some() {
                            self.assigned.insert(execution, worker);
                            if let Some(slot) = self.workers.get_mut(&worker) {
                                slot.running += 1;
                            }
                            claimed.push(execution);
                        }
                    }
                    // What its previous session was assigned and it does not run (the assignment
                    // was lost with the old process): abandoned at the next tick, not at the
                    // end of the grace period.
                    if let Some(previous) = previous {
                        for (execution, deadline) in self.orphans.iter_mut() {
                            if self.orphan_workers.get(execution) == Some(&previous) {
                                *deadline = (*deadline).min(now);
                            }
                        }
                    }
                }
                out.reply(reply, Reply::Claimed(claimed));
            }
            EnvironmentMsg::Tick => {
                self.timer_at = None;
                let expired: Vec<_> = self
                    .orphans
                    .iter()
                    .filter(|(_, deadline)| **deadline <= now)
                    .map(|(e, _)| *e)
                    .collect();
                for execution in expired {
                    self.orphans.remove(&execution);
                    self.known.remove(&execution);
                    self.unlimit(execution);
                    self.assigned_targets.remove(&execution);
                    out.send(Envelope::Run(
                        execution.run(),
                        RunMsg::Abandon {
                            execution,
                            requeue: true,
                        },
                    ));
                }
                while let Some(entry) = self.delayed.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let ticket = entry.remove();
                    self.due(ticket, out);
                }
                while let Some(&(at, execution)) = self.deadlines.first() {
                    if at > now {
                        break;
                    }
                    self.deadlines.pop_first();
                    self.time_out(execution, out);
                }
            }
            _ => unreachable!("routed by handle"),
        }
    }

    /// Workers connecting, waiting, leaving, and their executions ending.
    pub(super) fn on_workers(&mut self, msg: EnvironmentMsg, out: &mut Outbox) {
        match msg {
            EnvironmentMsg::Connect {
                worker,
                targets,
                capacity,
                provides,
                accepts,
            } => {
                self.workers.insert(
                    worker,
                    WorkerSlot {
                        targets,
                        // As in Coflux, a capacity of 0 means unlimited.
                        capacity: if capacity == 0 { usize::MAX } else { capacity },
                        provides,
                        accepts,
                        running: 0,
                        waiting: HashSet::new(),
                        available: true,
                    },
                );
            }
            EnvironmentMsg::SetWaiting {
                worker,
                execution,
                waiting,
            } => {
                if self.assigned.get(&execution) == Some(&worker)
                    && let Some(slot) = self.workers.get_mut(&worker)
                {
                    let changed = if waiting {
                        slot.waiting.insert(execution)
                    } else {
                        slot.waiting.remove(&execution)
                    };
                    if changed && waiting {
                        slot.running = slot.running.saturating_sub(1);
                        self.unlimit(execution);
                    } else if changed {
                        slot.running += 1;
                        // Back from waiting: it counts against its target's limit again,
                        // even above the limit (it was running before).
                        if let Some(target) = self.assigned_targets.get(&execution).cloned() {
                            self.limit(execution, target);
                        }
                    }
                }
            }
            EnvironmentMsg::SetAvailable { worker, available } => {
                if let Some(slot) = self.workers.get_mut(&worker) {
                    slot.available = available;
                }
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
                    self.release(execution);
                    self.known.remove(&execution);
                    out.send(Envelope::Run(
                        execution.run(),
                        RunMsg::Abandon {
                            execution,
                            requeue: false,
                        },
                    ));
                }
            }
            EnvironmentMsg::Finished { execution } => {
                self.orphans.remove(&execution);
                self.release(execution);
                self.in_lookup.remove(&execution);
                self.known.remove(&execution);
            }
            EnvironmentMsg::Withdraw { execution } => {
                self.known.remove(&execution);
                if self.orphans.remove(&execution).is_some() {
                    self.unlimit(execution);
                    self.assigned_targets.remove(&execution);
                }
                self.in_lookup.remove(&execution);
                self.unqueue(execution);
                if let Some(worker) = self.assigned.get(&execution).copied() {
                    self.release(execution);
                    out.send(Envelope::Worker(worker, WorkerCommand::Abort { execution }));
                }
            }
            _ => unreachable!("routed by handle"),
        }
    }
}

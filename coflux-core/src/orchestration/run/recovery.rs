//! A run rebuilt from the store: after a restart (executions that were assigned become orphans
//! a reconnecting agent may claim, or are abandoned), after a panic (waiters handed over), and
//! what a re-created environment actor must schedule again.

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{EnvironmentId, ExecutionId, ExecutionResult, Millis, WorkerId};
use crate::store::RunSnapshot;

use super::super::messages::{Envelope, EnvironmentMsg, Outbox, Ticket};
use super::{Attempt, Resolution, RunCore, StepState, Waiter, Waiters, inputs, streams, ticket};

impl RunCore {
    /// Restores a run from the store, after a restart or when its actor died. Executions that
    /// were assigned to a worker are abandoned (and retried where their policy allows): whoever
    /// waited for them is gone. Their workers are told to abort them, in case they still run
    /// them. Queued executions are queued again (an environment ignores executions it already
    /// holds).
    pub fn restore(snapshot: RunSnapshot, now: Millis, out: &mut Outbox) -> Self {
        Self::recover(snapshot, now, 0, out)
    }

    /// Like [`RunCore::restore`], after a restart of the orchestrator: with a `grace_ms` above
    /// zero, executions that were assigned are not abandoned at once but become *orphans* of
    /// their environment, which a reconnecting agent still running them may claim within the
    /// grace period; unclaimed ones are abandoned when it ends.
    pub fn recover(snapshot: RunSnapshot, now: Millis, grace_ms: u64, out: &mut Outbox) -> Self {
        let mut core = Self::load(snapshot);
        let mut abandoned = Vec::new();
        let mut held = Vec::new();
        for step in &core.steps {
            for (i, attempt) in step.attempts.iter().enumerate() {
                if attempt.result.is_some() {
                    continue;
                }
                let execution = step.record.id.execution(i as u32 + 1);
                if attempt.assignment.is_none() && !attempt.dependencies.is_empty() {
                    held.push((execution, attempt.dependencies.clone()));
                    continue;
                }
                if let Some((worker, _)) = attempt.assignment.filter(|_| grace_ms > 0) {
                    out.send(Envelope::Environment(
                        attempt.environment,
                        EnvironmentMsg::Orphan {
                            execution,
                            target: step.record.target.clone(),
                            deadline: now
                                .saturating_add(i64::try_from(grace_ms).unwrap_or(i64::MAX)),
                            worker,
                        },
                    ));
                } else if attempt.assignment.is_some() {
                    abandoned.push((execution, attempt.environment));
                } else {
                    out.send(Envelope::Environment(
                        attempt.environment,
                        EnvironmentMsg::Enqueue(ticket(step, execution.attempt)),
                    ));
                }
            }
        }
        for (execution, dependencies) in held {
            core.hold(execution, dependencies, out);
        }
        for (execution, environment) in abandoned {
            out.send(Envelope::Environment(
                environment,
                EnvironmentMsg::Withdraw { execution },
            ));
            core.record_result(
                execution,
                ExecutionResult::Abandoned { retry: None },
                now,
                out,
            );
        }
        core
    }

    /// Rebuilds a run's state from the store, doing nothing else.
    fn load(snapshot: RunSnapshot) -> Self {
        let mut core = Self::new(snapshot.run.id);
        core.record = Some(snapshot.run);
        for mut record in snapshot.steps {
            if let Some(parent) = record.parent_execution {
                core.own_children.entry(parent).or_default().push(record.id);
            }
            let arguments = Arc::new(std::mem::take(&mut record.arguments));
            core.steps.push(StepState {
                record,
                arguments,
                attempts: Vec::new(),
                checkpoints: HashMap::new(),
            });
        }
        for (step, environment, state) in snapshot.checkpoints {
            if let Some(step) = core.step_mut(step) {
                step.checkpoints.insert(environment, Arc::new(state));
            }
        }
        core.streams = streams::Streams::load(snapshot.streams);
        core.inputs = inputs::Inputs::load(snapshot.inputs);
        for e in snapshot.executions {
            let open = e.result.is_none();
            if let Some(step) = core.step_mut(e.id.step) {
                step.attempts.push(Attempt {
                    environment: e.environment,
                    execute_after: e.execute_after,
                    created_at: e.created_at,
                    assignment: e.assignment,
                    result: e.result.map(|(r, _)| r),
                    dependencies: e.dependencies,
                });
                core.open += usize::from(open);
            }
        }
        for &(parent, child) in &snapshot.children {
            let children = if child.run() != core.id {
                &mut core.spawned
            } else {
                &mut core.links
            };
            children.entry(parent).or_default().push(child);
        }
        core.calls = snapshot
            .calls
            .iter()
            .map(|(parent, call, child)| ((*parent, *call), *child))
            .collect();
        for step in &core.steps {
            if let (Some(key), Some(first)) = (&step.record.memo_key, step.attempts.first()) {
                core.memo.insert(
                    (first.environment, key.clone()),
                    step.record.id.execution(1),
                );
            }
        }
        core
    }

    /// The tickets of a stored run's executions that are queued (no assignment, no result) in
    /// `environment`: what a re-created environment actor must schedule again. Executions held
    /// by dependencies of this run that have not finished (or inputs of it not yet final) are
    /// left to the run.
    pub fn queued_tickets(snapshot: &RunSnapshot, environment: EnvironmentId) -> Vec<Ticket> {
        let core = Self::load(snapshot.clone());
        let mut tickets = Vec::new();
        for step in &core.steps {
            for (i, a) in step.attempts.iter().enumerate() {
                let deps = &a.dependencies;
                let mut pending = deps
                    .executions
                    .iter()
                    .map(|d| {
                        matches!(core.resolve(*d), Resolution::Pending(p) if p.run() == core.id)
                    })
                    .chain(deps.inputs.iter().map(|i| core.input_pending(*i)));
                // Held while one is pending (all needed) or while all are (any one is enough).
                let held = !deps.is_empty()
                    && if deps.any {
                        pending.all(|p| p)
                    } else {
                        pending.any(|p| p)
                    };
                if a.result.is_none()
                    && a.assignment.is_none()
                    && a.environment == environment
                    && !held
                {
                    tickets.push(ticket(step, i as u32 + 1));
                }
            }
        }
        tickets
    }

    /// The executions of a stored run that are assigned to a worker and have no result, in
    /// `environment`, with their worker.
    pub fn assigned_executions(
        snapshot: &RunSnapshot,
        environment: EnvironmentId,
    ) -> Vec<(ExecutionId, WorkerId)> {
        snapshot
            .executions
            .iter()
            .filter(|e| e.result.is_none() && e.environment == environment)
            .filter_map(|e| e.assignment.map(|(worker, _)| (e.id, worker)))
            .collect()
    }

    /// Takes the callers and runs waiting on this run's executions (to hand them to a reloaded
    /// state after a panic).
    pub fn take_waiters(&mut self) -> Waiters {
        Waiters(
            self.waiters
                .drain()
                .flat_map(|(e, ws)| ws.into_iter().map(move |w| (e, w)))
                // Held executions are held again by the reloaded state itself.
                .filter(|(_, w)| !matches!(w, Waiter::Dependency(_)))
                .collect(),
        )
    }

    /// Registers waiters taken from an earlier state: each waits again from where it waited.
    pub fn adopt_waiters(&mut self, waiters: Waiters, out: &mut Outbox) {
        for (execution, waiter) in waiters.0 {
            self.wait(waiter, execution, out);
        }
    }
}

//! Ending executions from outside their code: suspension, cancellation (through child steps
//! and spawned runs) and re-runs.

use super::*;

impl RunCore {
    /// Ends a running execution as suspended; a new attempt of its step runs after
    /// `execute_after`, once `dependencies` have finished.
    pub(super) fn suspend(
        &mut self,
        execution: ExecutionId,
        execute_after: Option<Millis>,
        dependencies: Dependencies,
        now: Millis,
        out: &mut Outbox,
    ) -> Result<(), OrchestrationError> {
        let attempt = self
            .attempt(execution)
            .ok_or_else(|| OrchestrationError::ExecutionNotFound(execution.to_string()))?;
        if attempt.result.is_some() {
            // A producer suspending after it returned its streams (from a generator body):
            // its streams pause, and a new attempt of the step continues them.
            if self.feeds_streams(execution) {
                let environment = attempt.environment;
                self.pause_streams(execution, out);
                self.add_attempt(
                    execution.step,
                    environment,
                    execute_after.filter(|at| *at > now),
                    dependencies,
                    now,
                    out,
                );
            }
            return Ok(()); // already ended (e.g. cancelled meanwhile)
        }
        let environment = attempt.environment;
        let next = self.add_attempt(
            execution.step,
            environment,
            execute_after.filter(|at| *at > now),
            dependencies,
            now,
            out,
        );
        out.send(Envelope::Environment(
            environment,
            EnvironmentMsg::Withdraw { execution },
        ));
        self.record_result(
            execution,
            ExecutionResult::Suspended { successor: next },
            now,
            out,
        );
        Ok(())
    }

    pub(super) fn cancel(&mut self, execution: ExecutionId, now: Millis, out: &mut Outbox) {
        let Some(attempt) = self.attempt(execution) else {
            return;
        };
        if self.feeds_streams(execution) {
            // A producer that returned and still feeds its streams: they end as cancelled (its
            // agent stops it on its next item or demand).
            return self.cancel_streams(execution, now, out);
        }
        if let Some(result) = &attempt.result {
            // Cancelling a retried or suspended execution cancels the attempt that replaced it
            // (a cache link is not followed: its source belongs to other callers too).
            if let Some(next) = result.successor()
                && next.step == execution.step
            {
                self.cancel(next, now, out);
            }
            return;
        }
        out.send(Envelope::Environment(
            attempt.environment,
            EnvironmentMsg::Withdraw { execution },
        ));
        self.record_result(execution, ExecutionResult::Cancelled, now, out);
    }

    /// Cancels the pending executions of the steps `execution` called (recursively), and the
    /// runs it spawned.
    pub(super) fn cancel_children(
        &mut self,
        execution: ExecutionId,
        now: Millis,
        out: &mut Outbox,
    ) {
        for child in self.spawned.get(&execution).into_iter().flatten() {
            out.send(Envelope::Run(
                child.run(),
                RunMsg::Cancel { execution: *child },
            ));
        }
        let children: Vec<ExecutionId> = self
            .own_children
            .get(&execution)
            .into_iter()
            .flatten()
            .filter_map(|id| self.step(*id))
            .flat_map(|s| {
                s.attempts
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.result.is_none())
                    .map(|(i, _)| s.record.id.execution(i as u32 + 1))
            })
            .collect();
        // Producers that returned and still feed their streams are stopped too.
        let children: Vec<ExecutionId> = children
            .into_iter()
            .chain(self.feeding_children(execution))
            .collect();
        for child in children {
            self.cancel(child, now, out);
        }
    }

    pub(super) fn rerun(
        &mut self,
        step_id: StepId,
        environment: Option<EnvironmentId>,
        lineage: &[EnvironmentId],
        now: Millis,
        out: &mut Outbox,
    ) -> Result<ExecutionId, OrchestrationError> {
        let step = self
            .step(step_id)
            .ok_or_else(|| OrchestrationError::StepNotFound(step_id.to_string()))?;
        let base = match step.record.parent_execution {
            Some(parent) => self.attempt(parent).map(|a| a.environment),
            None => step.attempts.first().map(|a| a.environment),
        }
        .ok_or_else(|| OrchestrationError::StepNotFound(step_id.to_string()))?;
        let target = environment.unwrap_or(base);
        if environment.is_some() && !lineage.contains(&base) {
            return Err(OrchestrationError::EnvironmentInvalid {
                step: step_id.to_string(),
                environment: target.to_string(),
            });
        }
        let active: Vec<ExecutionId> = step
            .attempts
            .iter()
            .enumerate()
            .filter(|(_, a)| a.result.is_none() && a.environment == target)
            .map(|(i, _)| step_id.execution(i as u32 + 1))
            .collect();
        for execution in active {
            self.cancel(execution, now, out);
        }
        self.fork_checkpoints(step_id, target, lineage, now, out);
        Ok(self.add_attempt(step_id, target, None, Dependencies::default(), now, out))
    }
}

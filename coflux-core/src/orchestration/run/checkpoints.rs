//! Checkpoints (`cf.Checkpoint`): durable state of a step, per environment, that every later
//! attempt of the step (retries, suspensions, recurrences, re-runs) starts from.
//!
//! A step has one state per environment it ran in. Writes come from a running attempt and
//! replace names in the state of the attempt's environment; an attempt that has ended is
//! refused (its writes could otherwise land after its successor started). A re-run in an
//! environment where the step has no state yet starts from a copy of the nearest ancestor's
//! (the fork is taken when the re-run is made); from then on the two evolve separately, so a
//! re-run in a child environment never changes what the parent sees.

use super::*;

impl RunCore {
    /// Applies a running execution's checkpoint writes (`set` after `reset`).
    pub(super) fn record_checkpoint(
        &mut self,
        execution: ExecutionId,
        set: Checkpoints,
        reset: Vec<String>,
        now: Millis,
        out: &mut Outbox,
    ) -> Result<(), OrchestrationError> {
        let attempt = self
            .attempt(execution)
            .ok_or_else(|| OrchestrationError::ExecutionNotFound(execution.to_string()))?;
        // A producer that returned its streams still runs (and writes) while it feeds them.
        if attempt.result.is_some() && !self.feeds_streams(execution) {
            return Err(OrchestrationError::CheckpointRejected(
                execution.to_string(),
            ));
        }
        let environment = attempt.environment;
        if set.is_empty() && reset.is_empty() {
            // A flush: acknowledged after the writes before it, without one of its own.
            return Ok(());
        }
        let Some(step) = self.step_mut(execution.step) else {
            return Err(OrchestrationError::StepNotFound(execution.step.to_string()));
        };
        let state = step.checkpoints.entry(environment).or_default();
        let next = Arc::make_mut(state);
        for name in &reset {
            next.remove(name);
        }
        next.extend(set);
        out.write(Write::PutCheckpoints {
            step: execution.step,
            environment,
            state: Arc::clone(state),
            at: now,
        });
        Ok(())
    }

    /// Before a re-run in `target`: gives the step a copy of its nearest ancestor's state
    /// (`lineage`: `target`, then its ancestors) if it has none of its own there.
    pub(super) fn fork_checkpoints(
        &mut self,
        step: StepId,
        target: EnvironmentId,
        lineage: &[EnvironmentId],
        now: Millis,
        out: &mut Outbox,
    ) {
        let Some(state) = self.step_mut(step) else {
            return;
        };
        if state.checkpoints.contains_key(&target) {
            return;
        }
        let inherited = lineage
            .iter()
            .find_map(|env| state.checkpoints.get(env))
            .cloned();
        if let Some(inherited) = inherited {
            state.checkpoints.insert(target, Arc::clone(&inherited));
            out.write(Write::PutCheckpoints {
                step,
                environment: target,
                state: inherited,
                at: now,
            });
        }
    }
}

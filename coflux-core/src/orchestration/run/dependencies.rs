//! Executions held until others finish: `wait_for` arguments and suspended selects (all of
//! them, or any one), including executions referenced by their results, and inputs of the
//! run a suspended `select` waited for.

use super::*;

impl RunCore {
    /// Holds `execution` (not yet queued) until `dependencies` have final results (all, or
    /// any one); executions referenced by their values are waited for too, and inputs until
    /// they are answered, dismissed or cancelled.
    pub(super) fn hold(
        &mut self,
        execution: ExecutionId,
        dependencies: Dependencies,
        out: &mut Outbox,
    ) {
        let needed = dependencies.needed();
        // One extra count guards against releasing while the waits are being registered.
        *self.held.entry(execution).or_insert(0) += needed + 1;
        for dependency in dependencies.executions {
            self.wait(Waiter::Dependency(execution), dependency, out);
        }
        for input in dependencies.inputs {
            if !self.hold_on_input(execution, input) {
                self.unhold(execution, out);
            }
        }
        self.unhold(execution, out);
    }

    pub(super) fn unhold(&mut self, execution: ExecutionId, out: &mut Outbox) {
        let Some(count) = self.held.get_mut(&execution) else {
            return;
        };
        *count -= 1;
        if *count > 0 {
            return;
        }
        self.held.remove(&execution);
        let Some(step) = self.step(execution.step) else {
            return;
        };
        let attempt = &step.attempts[execution.attempt as usize - 1];
        if attempt.result.is_none() {
            out.send(Envelope::Environment(
                attempt.environment,
                EnvironmentMsg::Enqueue(ticket(step, execution.attempt)),
            ));
        }
    }

    pub(super) fn dependency_met(
        &mut self,
        held: ExecutionId,
        result: &ExecutionResult,
        out: &mut Outbox,
    ) {
        if let ExecutionResult::Value { value } = result {
            let inner = execution_references(value);
            if !inner.is_empty() && self.held.contains_key(&held) {
                self.hold(held, Dependencies::all(inner), out);
            }
        }
        self.unhold(held, out);
    }
}

/// The executions referenced by the arguments at `indexes` (`wait_for`).
pub(super) fn waited_for(indexes: &[u32], arguments: &[Value]) -> Vec<ExecutionId> {
    let mut found = Vec::new();
    for index in indexes {
        if let Some(argument) = arguments.get(*index as usize) {
            for execution in execution_references(argument) {
                if !found.contains(&execution) {
                    found.push(execution);
                }
            }
        }
    }
    found
}

/// The executions a value refers to.
pub(super) fn execution_references(value: &Value) -> Vec<ExecutionId> {
    value
        .references()
        .iter()
        .filter_map(|r| match r {
            Reference::Execution { execution, .. } => Some(*execution),
            _ => None,
        })
        .collect()
}

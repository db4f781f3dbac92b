//! Results: following an execution's chain to its final result, waiters, and which attempt
//! of a step a result request sees from an environment.

use super::*;

impl RunCore {
    /// The execution whose result a [`RunMsg::WaitRun`] asks for: `attempt` of step number
    /// `step`, or its latest attempt visible from `view` (by default the run's environment).
    pub(super) fn seen(
        &self,
        step: u32,
        attempt: Option<u32>,
        view: &[EnvironmentId],
    ) -> Result<ExecutionId, OrchestrationError> {
        let Some(record) = &self.record else {
            return Err(OrchestrationError::RunNotFound(self.id.to_string()));
        };
        let id = StepId {
            run: self.id,
            number: step,
        };
        let Some(state) = self.step(id) else {
            return Err(OrchestrationError::StepNotFound(id.to_string()));
        };
        if let Some(attempt) = attempt {
            let execution = id.execution(attempt);
            return match self.attempt(execution) {
                Some(_) => Ok(execution),
                None => Err(OrchestrationError::ExecutionNotFound(execution.to_string())),
            };
        }
        let home = record.environment;
        (1..=state.attempts.len() as u32)
            .rev()
            .find(|n| {
                let environment = state.attempts[*n as usize - 1].environment;
                crate::model::visible_from(home, view, environment)
            })
            .map(|n| id.execution(n))
            .ok_or_else(|| OrchestrationError::StepNotFound(id.to_string()))
    }

    /// Follows `execution`'s chain to its final result, or to the pending execution at its end.
    pub(super) fn resolve(&self, execution: ExecutionId) -> Resolution {
        self.resolve_from(execution, false)
    }

    /// Like [`RunCore::resolve`]; with `exact`, stops at a hand-over to a later attempt of the
    /// same step (a retry, a suspension's replay, a recurrence): that result is final.
    pub(super) fn resolve_from(&self, mut execution: ExecutionId, exact: bool) -> Resolution {
        for _ in 0..MAX_CHAIN {
            let result = if execution.run() == self.id {
                self.attempt(execution).and_then(|a| a.result.as_ref())
            } else {
                self.external.get(&execution).and_then(Option::as_ref)
            };
            match result {
                None => return Resolution::Pending(execution),
                Some(r) => match r.successor() {
                    Some(next) if !(exact && next.step == execution.step) => execution = next,
                    _ => return Resolution::Final(r.clone()),
                },
            }
        }
        tracing::error!(run = %self.id, execution = %execution, "result chain too long or cyclic");
        Resolution::Final(ExecutionResult::Error {
            error: crate::model::ErrorInfo::new(
                "coflux.ChainError",
                "the result chain is too long or cyclic",
            ),
            retry: None,
        })
    }

    pub(super) fn wait(&mut self, waiter: Waiter, execution: ExecutionId, out: &mut Outbox) {
        match self.resolve_from(execution, matches!(waiter, Waiter::Exact(_))) {
            Resolution::Final(result) => match waiter {
                Waiter::Dependency(held) => self.dependency_met(held, &result, out),
                other => deliver(other, result, out),
            },
            Resolution::Pending(pending) => {
                if pending.run() != self.id && !self.external.contains_key(&pending) {
                    self.external.insert(pending, None);
                    out.send(Envelope::Run(
                        pending.run(),
                        RunMsg::Subscribe {
                            execution: pending,
                            subscriber: self.id,
                        },
                    ));
                }
                self.waiters.entry(pending).or_default().push(waiter);
            }
        }
    }

    pub(super) fn wake(&mut self, execution: ExecutionId, out: &mut Outbox) {
        for waiter in self.waiters.remove(&execution).unwrap_or_default() {
            self.wait(waiter, execution, out);
        }
    }
}

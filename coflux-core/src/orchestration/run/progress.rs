//! How a run moves on: a step added (with its first attempt), an attempt added (a retry, a
//! re-run, a recurrence), and a result recorded (retries scheduled, waiters answered, the run
//! finished).

use std::sync::Arc;

use super::policy::FollowUp;
use super::*;

impl RunCore {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn add_step(
        &mut self,
        parent: Option<ExecutionId>,
        environment: EnvironmentId,
        target: TargetRef,
        kind: TargetKind,
        arguments: Vec<Value>,
        options: StepOptions,
        now: Millis,
        out: &mut Outbox,
    ) -> ExecutionId {
        let id = StepId {
            run: self.id,
            number: self.steps.len() as u32 + 1,
        };
        let cache_key = options
            .cache
            .as_ref()
            .map(|c| cache_key(&target, c, &arguments));
        let memo_key = options
            .memo
            .as_ref()
            .map(|m| call_key(&target, m, &arguments));
        let execute_after = options
            .delay_ms
            .filter(|d| *d > 0)
            .map(|d| now.saturating_add(i64::try_from(d).unwrap_or(i64::MAX)));
        let dependencies = Dependencies::all(waited_for(&options.wait_for, &arguments));
        let mut record = StepRecord {
            id,
            parent_execution: parent,
            target,
            kind,
            arguments,
            options,
            cache_key,
            memo_key: memo_key.clone(),
            created_at: now,
        };
        out.write(Write::CreateStep(Box::new(record.clone())));
        let arguments = std::mem::take(&mut record.arguments);
        if let Some(parent) = parent {
            self.own_children.entry(parent).or_default().push(id);
        }
        self.steps.push(StepState {
            record,
            arguments: Arc::new(arguments),
            // Most steps have one attempt: room for one, not the four a first push reserves.
            attempts: Vec::with_capacity(1),
            checkpoints: HashMap::new(),
        });
        let execution = id.execution(1);
        if let Some(key) = memo_key {
            self.memo.insert((environment, key), execution);
        }
        self.add_attempt(id, environment, execute_after, dependencies, now, out);
        execution
    }

    pub(super) fn add_attempt(
        &mut self,
        step_id: StepId,
        environment: EnvironmentId,
        execute_after: Option<Millis>,
        dependencies: Dependencies,
        now: Millis,
        out: &mut Outbox,
    ) -> ExecutionId {
        let Some(step) = self.step_mut(step_id) else {
            return step_id.execution(1);
        };
        step.attempts.push(Attempt {
            environment,
            execute_after,
            created_at: now,
            assignment: None,
            result: None,
            dependencies: dependencies.clone(),
        });
        let execution = step_id.execution(step.attempts.len() as u32);
        out.write(Write::CreateExecution {
            id: execution,
            environment,
            execute_after,
            created_at: now,
            dependencies: dependencies.clone(),
        });
        // A first attempt becomes a cache source when its lookup misses (the project registers
        // it then, atomically with the lookup, so two pending executions never link to each
        // other); later attempts never look up, so they are sources from the start.
        if let Some(key) = step
            .record
            .cache_key
            .as_ref()
            .filter(|_| execution.attempt > 1)
        {
            out.send(Envelope::Project(ProjectMsg::CacheUpdate {
                key: key.clone(),
                execution,
                environment,
                created_at: now,
                outcome: CacheOutcome::Pending,
            }));
        }
        if dependencies.is_empty() {
            out.send(Envelope::Environment(
                environment,
                EnvironmentMsg::Enqueue(ticket(step, execution.attempt)),
            ));
        } else {
            self.hold(execution, dependencies, out);
        }
        self.open += 1;
        execution
    }

    pub(super) fn record_result(
        &mut self,
        execution: ExecutionId,
        result: ExecutionResult,
        now: Millis,
        out: &mut Outbox,
    ) {
        let Some(attempt) = self.attempt(execution) else {
            return;
        };
        if attempt.result.is_some() {
            out.send(Envelope::Environment(
                attempt.environment,
                EnvironmentMsg::Finished { execution },
            ));
            return;
        }
        let environment = attempt.environment;
        let mut result = result;
        if let Some((follow_up, delay)) = self.follow_up(execution, &result) {
            let at = Some(now.saturating_add(delay)).filter(|at| *at > now);
            let next = self.add_attempt(
                execution.step,
                environment,
                at,
                Dependencies::default(),
                now,
                out,
            );
            result = match follow_up {
                FollowUp::Retry => result.with_retry(next),
                FollowUp::Recurrence => ExecutionResult::Recurred { successor: next },
            };
        }
        out.write(Write::RecordResult {
            execution,
            result: result.clone(),
            at: now,
        });
        out.send(Envelope::Environment(
            environment,
            EnvironmentMsg::Finished { execution },
        ));
        let Some(step) = self.step_mut(execution.step) else {
            return;
        };
        if let Some(key) = &step.record.cache_key {
            let outcome = match result {
                ExecutionResult::Value { .. } => CacheOutcome::Succeeded(now),
                _ => CacheOutcome::Failed,
            };
            let created_at = step.attempts[execution.attempt as usize - 1].created_at;
            out.send(Envelope::Project(ProjectMsg::CacheUpdate {
                key: key.clone(),
                execution,
                environment,
                created_at,
                outcome,
            }));
        }
        // An execution that ends without finishing its work (cancelled, timed out) takes its
        // pending children with it.
        let ends_children = matches!(
            result,
            ExecutionResult::Cancelled | ExecutionResult::Timeout { .. }
        );
        let cancelled = matches!(result, ExecutionResult::Cancelled);
        let closure = streams::closure_of(&result);
        let suspended = matches!(result, ExecutionResult::Suspended { .. });
        step.attempts[execution.attempt as usize - 1].result = Some(result);
        self.open -= 1;
        self.streams_after_result(execution, closure, suspended, now, out);
        if cancelled {
            self.cancel_inputs_of(execution, now, out);
        }
        self.replays.remove(&execution);
        if ends_children {
            self.cancel_children(execution, now, out);
        }
        self.wake(execution, out);
    }
}

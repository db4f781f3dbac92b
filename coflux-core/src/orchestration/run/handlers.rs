//! [`RunCore::handle`]'s message families, one function each.

use super::{RunCore, Waiter};
use crate::model::{Dependencies, ExecutionResult, Millis, RunRecord, StepId, TargetKind};
use crate::orchestration::error::OrchestrationError;
use crate::orchestration::messages::{Envelope, Outbox, Reply, RunMsg};
use crate::store::Write;

impl RunCore {
    /// The run's creation, its spawned children and step re-runs.
    pub(super) fn on_lifecycle(&mut self, msg: RunMsg, now: Millis, out: &mut Outbox) {
        match msg {
            RunMsg::Started { reply } => {
                let initial = StepId {
                    run: self.id,
                    number: 1,
                }
                .execution(1);
                out.reply(reply, Reply::RunStarted(Ok((self.id, initial))));
            }
            RunMsg::Create {
                environment,
                target,
                arguments,
                options,
                idempotency_key,
                spawned_by,
                call,
                reply,
                wait,
            } => {
                if self.exists() {
                    let error = OrchestrationError::Invalid("run exists".into());
                    if let Some(wait) = wait {
                        out.reply(wait, Reply::Result(Err(error.clone())));
                    }
                    return out.reply(reply, Reply::RunStarted(Err(error)));
                }
                let record = RunRecord {
                    id: self.id,
                    environment,
                    parent_execution: spawned_by,
                    created_at: now,
                };
                out.write(Write::CreateRun(record.clone()));
                if let Some(key) = idempotency_key {
                    out.write(Write::PutIdempotencyKey {
                        environment,
                        key,
                        run: self.id,
                        at: now,
                    });
                }
                self.record = Some(record);
                let execution = self.add_step(
                    None,
                    environment,
                    target,
                    TargetKind::Workflow,
                    arguments,
                    options,
                    now,
                    out,
                );
                match spawned_by {
                    Some(parent) => {
                        out.write(Write::LinkChild {
                            parent,
                            child: execution,
                        });
                        if let Some(call) = call {
                            out.write(Write::PutCall {
                                parent,
                                call,
                                child: execution,
                            });
                        }
                        out.send(Envelope::Run(
                            parent.run(),
                            RunMsg::Spawned {
                                parent,
                                call,
                                child: execution,
                            },
                        ));
                        out.reply(reply, Reply::Submitted(Ok(execution)));
                    }
                    None => out.reply(reply, Reply::RunStarted(Ok((self.id, execution)))),
                }
                if let Some(wait) = wait {
                    self.wait(Waiter::Reply(wait), execution, out);
                }
            }
            RunMsg::Spawned {
                parent,
                call,
                child,
            } => {
                self.spawned.entry(parent).or_default().push(child);
                if let Some(call) = call {
                    self.calls.insert((parent, call), child);
                }
                let ended = self.attempt(parent).is_none_or(|a| {
                    matches!(
                        a.result,
                        Some(ExecutionResult::Cancelled | ExecutionResult::Timeout { .. })
                    )
                });
                if ended {
                    out.send(Envelope::Run(
                        child.run(),
                        RunMsg::Cancel { execution: child },
                    ));
                }
            }
            RunMsg::Rerun {
                step,
                environment,
                lineage,
                reply,
            } => {
                let result = self.rerun(step, environment, &lineage, now, out);
                out.reply(reply, Reply::Rerun(result));
            }
            _ => unreachable!("routed by handle"),
        }
    }

    /// Submissions from executions and callers waiting for results.
    pub(super) fn on_calls(&mut self, msg: RunMsg, now: Millis, out: &mut Outbox) {
        match msg {
            RunMsg::Submit {
                parent,
                call,
                request,
                reply,
                wait,
            } => {
                if let Some(child) = call.and_then(|c| self.calls.get(&(parent, c)).copied()) {
                    // A repeat (sent again after a reconnect or a restart): the first answer.
                    if let Some(waiter) = wait {
                        self.wait(Waiter::Reply(waiter), child, out);
                    }
                    return out.reply(reply, Reply::Submitted(Ok(child)));
                }
                if request.kind == TargetKind::Workflow {
                    return self.spawn(parent, call, request, reply, wait, out);
                }
                let result = self.submit(parent, request, now, out);
                if let (Ok(child), Some(call)) = (&result, call) {
                    self.calls.insert((parent, call), *child);
                    out.write(Write::PutCall {
                        parent,
                        call,
                        child: *child,
                    });
                }
                match (&result, wait) {
                    (Ok(child), Some(waiter)) => self.wait(Waiter::Reply(waiter), *child, out),
                    (Err(e), Some(waiter)) => out.reply(waiter, Reply::Result(Err(e.clone()))),
                    (_, None) => {}
                }
                out.reply(reply, Reply::Submitted(result));
            }
            RunMsg::Wait { execution, reply } => {
                if execution.run() != self.id || self.attempt(execution).is_none() {
                    return out.reply(
                        reply,
                        Reply::Result(Err(OrchestrationError::ExecutionNotFound(
                            execution.to_string(),
                        ))),
                    );
                }
                self.wait(Waiter::Reply(reply), execution, out);
            }
            RunMsg::WaitRun {
                step,
                attempt,
                view,
                reply,
            } => match self.seen(step, attempt, &view) {
                Ok(execution) if attempt.is_some() => {
                    self.wait(Waiter::Exact(reply), execution, out)
                }
                Ok(execution) => self.wait(Waiter::Reply(reply), execution, out),
                Err(e) => out.reply(reply, Reply::Result(Err(e))),
            },
            RunMsg::Subscribe {
                execution,
                subscriber,
            } => {
                self.wait(
                    Waiter::Run {
                        run: subscriber,
                        execution,
                    },
                    execution,
                    out,
                );
            }
            RunMsg::Resolved { execution, result } => {
                self.external.insert(execution, Some(result));
                self.wake(execution, out);
            }
            _ => unreachable!("routed by handle"),
        }
    }

    /// What becomes of an execution: suspended, deferred, a result, a checkpoint, abandoned, cancelled or cached.
    pub(super) fn on_outcomes(&mut self, msg: RunMsg, now: Millis, out: &mut Outbox) {
        match msg {
            RunMsg::Suspend {
                execution,
                execute_after,
                dependencies,
                ack,
            } => {
                let result = self.suspend(execution, execute_after, dependencies, now, out);
                if let Some(ack) = ack {
                    out.reply(ack, Reply::Recorded(result));
                }
            }
            RunMsg::Defer {
                execution,
                successor,
            } => {
                self.record_result(execution, ExecutionResult::Deferred { successor }, now, out);
            }
            RunMsg::Result {
                execution,
                result,
                ack,
            } => {
                self.record_result(execution, result, now, out);
                if let Some(ack) = ack {
                    out.reply(ack, Reply::Recorded(Ok(())));
                }
            }
            RunMsg::Checkpoint {
                execution,
                set,
                reset,
                ack,
            } => {
                let result = self.record_checkpoint(execution, set, reset, now, out);
                out.reply(ack, Reply::Recorded(result));
            }
            RunMsg::Abandon { execution, requeue } => {
                let open = self
                    .attempt(execution)
                    .filter(|a| requeue && a.result.is_none())
                    .map(|a| a.environment);
                let retry = open.map(|environment| {
                    let step = execution.step;
                    self.add_attempt(step, environment, None, Dependencies::default(), now, out)
                });
                self.record_result(execution, ExecutionResult::Abandoned { retry }, now, out);
            }
            RunMsg::Cancel { execution } => self.cancel(execution, now, out),
            RunMsg::CacheHit { execution, source } => {
                self.record_result(
                    execution,
                    ExecutionResult::Cached { successor: source },
                    now,
                    out,
                );
            }
            _ => unreachable!("routed by handle"),
        }
    }
}

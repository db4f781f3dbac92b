//! The harness's scripted requests: what a test asks of the orchestrator (environments,
//! workers, submissions, waits, reports, schedules, limits, cancellation), each run to idle.

use std::collections::BTreeSet;

use crate::model::SubmitRequest;
use crate::model::{
    Checkpoints, Dependencies, Environment, EnvironmentId, EnvironmentName, EnvironmentState,
    ErrorInfo, ExecutionId, ExecutionResult, Millis, RunId, Schedule, StepId, StepOptions,
    TargetKind, TargetRef, Value, WorkerId,
};

use super::{Assigned, Harness};
use crate::orchestration::error::OrchestrationError;
use crate::orchestration::messages::{
    Envelope, EnvironmentMsg, ProjectMsg, Reply, ReplyTo, RunMsg, RunOptions, Submission,
};

impl Harness {
    /// Creates an environment.
    pub fn create_environment(
        &mut self,
        name: &str,
        parent: Option<&str>,
    ) -> Result<Environment, OrchestrationError> {
        let name = env_name(name)?;
        let parent = parent.map(env_name).transpose()?;
        match self.request(|reply| {
            Envelope::Project(ProjectMsg::CreateEnvironment {
                name,
                parent,
                reply,
            })
        }) {
            Reply::Environment(r) => r,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Pauses, resumes or archives an environment.
    pub fn set_environment_state(
        &mut self,
        name: &str,
        state: EnvironmentState,
    ) -> Result<Environment, OrchestrationError> {
        let name = env_name(name)?;
        match self.request(|reply| {
            Envelope::Project(ProjectMsg::SetEnvironmentState { name, state, reply })
        }) {
            Reply::Environment(r) => r,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Connects a scripted worker hosting `targets` with `capacity` slots.
    pub fn connect_worker(
        &mut self,
        environment: EnvironmentId,
        worker: u64,
        targets: &[TargetRef],
        capacity: usize,
    ) -> WorkerId {
        let worker = WorkerId(worker);
        let targets: BTreeSet<TargetRef> = targets.iter().cloned().collect();
        let msg = EnvironmentMsg::Connect {
            worker,
            targets,
            capacity,
            provides: Default::default(),
            accepts: Default::default(),
        };
        self.queue
            .push_back(Envelope::Environment(environment, msg));
        self.run_until_idle();
        worker
    }

    /// Disconnects a scripted worker (its executions are abandoned).
    pub fn disconnect_worker(&mut self, environment: EnvironmentId, worker: WorkerId) {
        self.queue.push_back(Envelope::Environment(
            environment,
            EnvironmentMsg::Disconnect { worker },
        ));
        self.run_until_idle();
    }

    /// Submits a workflow.
    pub fn submit(
        &mut self,
        environment: &str,
        target: &TargetRef,
        arguments: Vec<Value>,
        options: StepOptions,
    ) -> Result<(RunId, ExecutionId), OrchestrationError> {
        self.submit_keyed(environment, target, arguments, options, None)
    }

    /// Submits a workflow with an idempotency key.
    pub fn submit_keyed(
        &mut self,
        environment: &str,
        target: &TargetRef,
        arguments: Vec<Value>,
        options: StepOptions,
        idempotency_key: Option<&str>,
    ) -> Result<(RunId, ExecutionId), OrchestrationError> {
        let environment = env_name(environment)?;
        let target = target.clone();
        let idempotency_key = idempotency_key.map(str::to_string);
        match self.request(|reply| {
            Envelope::Project(ProjectMsg::StartRun {
                environment,
                target,
                arguments,
                // The harness has no workers: its runs are started unchecked.
                submission: Box::new(Submission {
                    options: RunOptions::Given(options),
                    idempotency_key,
                    allow_unregistered: true,
                    hosted: Default::default(),
                }),
                reply,
            })
        }) {
            Reply::RunStarted(r) => r,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// A running execution calls a task.
    pub fn call(
        &mut self,
        parent: ExecutionId,
        target: &TargetRef,
        arguments: Vec<Value>,
        options: StepOptions,
    ) -> Result<ExecutionId, OrchestrationError> {
        self.call_kind(parent, target, TargetKind::Task, arguments, options)
    }

    /// A running execution calls a workflow (which starts a run of its own) or a task.
    pub fn call_kind(
        &mut self,
        parent: ExecutionId,
        target: &TargetRef,
        kind: TargetKind,
        arguments: Vec<Value>,
        options: StepOptions,
    ) -> Result<ExecutionId, OrchestrationError> {
        self.call_numbered(parent, None, target, kind, arguments, options)
    }

    /// Like [`Harness::call_kind`], as an agent calls: with the call's number within `parent`.
    pub fn call_numbered(
        &mut self,
        parent: ExecutionId,
        call: Option<u32>,
        target: &TargetRef,
        kind: TargetKind,
        arguments: Vec<Value>,
        options: StepOptions,
    ) -> Result<ExecutionId, OrchestrationError> {
        let request = SubmitRequest {
            target: target.clone(),
            kind,
            arguments,
            options,
        };
        match self.request(|reply| {
            Envelope::Run(
                parent.run(),
                RunMsg::Submit {
                    parent,
                    call,
                    request,
                    reply,
                    wait: None,
                },
            )
        }) {
            Reply::Submitted(r) => r,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Starts waiting for an execution's final result; see [`Harness::result_of`].
    pub fn wait(&mut self, execution: ExecutionId) -> ReplyTo {
        self.request_later(|reply| {
            Envelope::Run(execution.run(), RunMsg::Wait { execution, reply })
        })
    }

    /// Starts waiting for a run's result (from its own environment).
    pub fn wait_run(&mut self, run: RunId) -> ReplyTo {
        self.wait_seen(run, 1, None, None)
    }

    /// Starts waiting for a step's result as seen from `view`, or for one attempt's.
    pub fn wait_seen(
        &mut self,
        run: RunId,
        step: u32,
        attempt: Option<u32>,
        view: Option<EnvironmentId>,
    ) -> ReplyTo {
        let view = view.map(|v| self.project.lineage(v)).unwrap_or_default();
        self.request_later(|reply| {
            Envelope::Run(
                run,
                RunMsg::WaitRun {
                    step,
                    attempt,
                    view,
                    reply,
                },
            )
        })
    }

    /// The final result delivered to a waiter, if delivered yet.
    pub fn result_of(&mut self, waiter: ReplyTo) -> Option<ExecutionResult> {
        match self.replies.remove(&waiter)? {
            Reply::Result(Ok(r)) => Some(r),
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// The error delivered to a waiter, if it was refused.
    pub fn error_of(&mut self, waiter: ReplyTo) -> Option<OrchestrationError> {
        match self.replies.remove(&waiter)? {
            Reply::Result(Err(e)) => Some(e),
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Re-runs a step, optionally in another environment.
    pub fn rerun(
        &mut self,
        step: StepId,
        environment: Option<&str>,
    ) -> Result<ExecutionId, OrchestrationError> {
        let environment = environment.map(env_name).transpose()?;
        match self.request(|reply| {
            Envelope::Project(ProjectMsg::RerunStep {
                step,
                environment,
                reply,
            })
        }) {
            Reply::Rerun(r) => r,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Takes the executions handed to workers so far, oldest first.
    pub fn take_assigned(&mut self) -> Vec<Assigned> {
        self.assigned.drain(..).collect()
    }

    /// Executions whose workers were told to abort.
    pub fn aborted(&self) -> &[ExecutionId] {
        &self.aborted
    }

    /// A worker reports a result.
    pub fn report(&mut self, execution: ExecutionId, result: ExecutionResult) {
        self.queue.push_back(Envelope::Run(
            execution.run(),
            RunMsg::Result {
                execution,
                result,
                ack: None,
            },
        ));
        self.run_until_idle();
    }

    /// A running execution writes checkpoints (`set` names given a value, `reset` cleared).
    pub fn checkpoint(
        &mut self,
        execution: ExecutionId,
        set: Checkpoints,
        reset: Vec<String>,
    ) -> Result<(), OrchestrationError> {
        let reply = self.request(|ack| {
            Envelope::Run(
                execution.run(),
                RunMsg::Checkpoint {
                    execution,
                    set,
                    reset,
                    ack,
                },
            )
        });
        match reply {
            Reply::Recorded(r) => r,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// A worker reports a value.
    pub fn complete(&mut self, execution: ExecutionId, data: serde_json::Value) {
        self.report(
            execution,
            ExecutionResult::Value {
                value: Value::raw(data),
            },
        );
    }

    /// A worker reports an error.
    pub fn fail(&mut self, execution: ExecutionId, error_type: &str, message: &str) {
        self.report(
            execution,
            ExecutionResult::Error {
                error: ErrorInfo::new(error_type, message),
                retry: None,
            },
        );
    }

    /// A running execution suspends itself until `execute_after` and until `dependencies`
    /// have finished.
    pub fn suspend(
        &mut self,
        execution: ExecutionId,
        execute_after: Option<Millis>,
        dependencies: Dependencies,
    ) -> Result<(), OrchestrationError> {
        match self.request(|ack| {
            Envelope::Run(
                execution.run(),
                RunMsg::Suspend {
                    execution,
                    execute_after,
                    dependencies,
                    ack: Some(ack),
                },
            )
        }) {
            Reply::Recorded(r) => r,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Starts `target` in an environment at every tick of `cron`.
    pub fn create_schedule(
        &mut self,
        environment: &str,
        target: &TargetRef,
        cron: &str,
    ) -> Result<Box<Schedule>, OrchestrationError> {
        let environment = env_name(environment)?;
        let target = target.clone();
        let cron = cron.to_string();
        match self.request(|reply| {
            Envelope::Project(ProjectMsg::CreateSchedule {
                environment,
                target,
                cron,
                arguments: Vec::new(),
                options: StepOptions::default(),
                reply,
            })
        }) {
            Reply::Schedule(r) => r,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Removes a schedule.
    pub fn delete_schedule(&mut self, id: u32) -> Result<Box<Schedule>, OrchestrationError> {
        match self.request(|reply| Envelope::Project(ProjectMsg::DeleteSchedule { id, reply })) {
            Reply::Schedule(r) => r,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Limits how many executions of `target` run at once in an environment.
    pub fn set_limit(
        &mut self,
        environment: &str,
        target: &TargetRef,
        max: Option<u32>,
    ) -> Result<(), OrchestrationError> {
        let environment = env_name(environment)?;
        let target = target.clone();
        match self.request(|reply| {
            Envelope::Project(ProjectMsg::SetConcurrencyLimit {
                environment,
                target,
                max,
                reply,
            })
        }) {
            Reply::Environment(r) => r.map(|_| ()),
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Cancels an execution.
    pub fn cancel(&mut self, execution: ExecutionId) {
        self.queue
            .push_back(Envelope::Run(execution.run(), RunMsg::Cancel { execution }));
        self.run_until_idle();
    }
}

/// Validates an environment name as the API would.
fn env_name(name: &str) -> Result<EnvironmentName, OrchestrationError> {
    EnvironmentName::new(name).map_err(|e| OrchestrationError::Invalid(e.to_string()))
}

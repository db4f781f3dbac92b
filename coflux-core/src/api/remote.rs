//! Workers outside this process (agents connected to a server): the orchestrator sends them
//! [`WorkerCommand`]s through a channel, and their reports come back through [`Project`].

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::model::{
    Checkpoints, Dependencies, ExecutionId, ExecutionResult, Millis, Requires, TargetRef, WorkerId,
};
use crate::orchestration::actors::{Router, WorkerRegistration};
use crate::orchestration::messages::{
    Envelope, EnvironmentMsg, Reply, ReplyTo, RunMsg, WorkerCommand,
};
use crate::sdk::SubmitRequest;

use super::error::Error;
use super::project::Project;

/// What a remote worker declares when it connects.
#[derive(Debug, Clone, Default)]
pub struct WorkerSpec {
    /// The targets it hosts.
    pub targets: BTreeSet<TargetRef>,
    /// How many executions it runs at once (0: unlimited).
    pub capacity: usize,
    /// Its tags, for `requires` routing.
    pub provides: Requires,
    /// Tags an execution's `requires` must include for it to be assigned here (Coflux's
    /// `accepts`; empty: any execution).
    pub accepts: Requires,
}

/// A connected remote worker: its id and the commands the orchestrator sends it.
pub struct RemoteWorker {
    /// The worker's id (pass it to [`Project::disconnect_worker`]).
    pub id: WorkerId,
    /// Execute and abort commands, in order.
    pub commands: mpsc::UnboundedReceiver<WorkerCommand>,
}

impl Project {
    /// Connects a remote worker to `environment`: from now on it may be assigned executions of
    /// the targets it declares.
    pub async fn connect_worker(
        &self,
        environment: &str,
        spec: WorkerSpec,
    ) -> Result<RemoteWorker, Error> {
        self.connect_worker_as(environment, spec, None)
            .await?
            .ok_or_else(|| Error::Unavailable("worker id in use".into()))
    }

    /// Like [`Project::connect_worker`], but with `id`, the worker keeps the id it had (its
    /// session resumes after a restart of the orchestrator or a move of the project to another
    /// node, where its recovered assignments still name that id); `None` if a worker with that
    /// id is connected already.
    pub async fn connect_worker_as(
        &self,
        environment: &str,
        spec: WorkerSpec,
        id: Option<WorkerId>,
    ) -> Result<Option<RemoteWorker>, Error> {
        let env = self.environment_id(environment).await?;
        let router = &self.handle().router;
        let (commands, inbox) = mpsc::unbounded_channel();
        let registration = WorkerRegistration {
            environment: env.id,
            targets: spec.targets,
            capacity: spec.capacity,
            provides: spec.provides,
            accepts: spec.accepts,
            commands,
        };
        let id = match id {
            Some(id) => {
                if !router.reconnect_worker(id, registration) {
                    return Ok(None);
                }
                id
            }
            None => {
                let id = router.next_worker_id();
                router.connect_worker(id, registration);
                id
            }
        };
        Ok(Some(RemoteWorker {
            id,
            commands: inbox,
        }))
    }

    /// Lets a newly connected worker claim executions it is still running from before a
    /// restart of the orchestrator; returns those now assigned to it. With `previous` (its
    /// worker before the restart), what that worker was assigned and is not claimed is
    /// abandoned (and retried) at once instead of when the grace period ends.
    pub async fn claim_executions(
        &self,
        environment: &str,
        worker: WorkerId,
        executions: Vec<ExecutionId>,
        previous: Option<WorkerId>,
    ) -> Result<Vec<ExecutionId>, Error> {
        if executions.is_empty() && previous.is_none() {
            return Ok(Vec::new());
        }
        let env = self.environment_id(environment).await?;
        let reply = self
            .request(|reply| {
                Envelope::Environment(
                    env.id,
                    EnvironmentMsg::Claim {
                        worker,
                        executions,
                        previous,
                        reply,
                    },
                )
            })
            .await?;
        match reply {
            Reply::Claimed(claimed) => Ok(claimed),
            other => Err(Error::Unavailable(format!("unexpected reply {other:?}"))),
        }
    }

    /// Disconnects a remote worker: executions still assigned to it are abandoned (and retried
    /// where their policy allows).
    pub fn disconnect_worker(&self, worker: WorkerId) {
        self.handle().router.disconnect_worker(worker);
    }

    /// Marks a remote worker as reachable or not: while unreachable it keeps its executions but
    /// is assigned no new ones.
    pub fn set_worker_available(&self, worker: WorkerId, available: bool) {
        self.handle().router.set_worker_available(worker, available);
    }

    /// Marks an execution of a remote worker as waiting for others (it then does not count
    /// against the worker's capacity) or running again.
    pub fn set_execution_waiting(&self, worker: WorkerId, execution: ExecutionId, waiting: bool) {
        self.handle()
            .router
            .set_execution_waiting(worker, execution, waiting);
    }

    /// Records how an execution ended; returns once the result is committed (a second result
    /// for the same execution is ignored, and also acknowledged).
    pub async fn report_result(
        &self,
        execution: ExecutionId,
        result: ExecutionResult,
    ) -> Result<(), Error> {
        let reply = self
            .request(|ack| {
                Envelope::Run(
                    execution.run(),
                    RunMsg::Result {
                        execution,
                        result,
                        ack: Some(ack),
                    },
                )
            })
            .await?;
        match reply {
            Reply::Recorded(r) => Ok(r?),
            other => Err(Error::Unavailable(format!("unexpected reply {other:?}"))),
        }
    }

    /// Records a running execution's checkpoint writes; returns once committed. Refused with
    /// `checkpoint_rejected` once the execution has ended.
    pub async fn record_checkpoint(
        &self,
        execution: ExecutionId,
        set: Checkpoints,
        reset: Vec<String>,
    ) -> Result<(), Error> {
        let reply = self
            .request(|ack| {
                Envelope::Run(
                    execution.run(),
                    RunMsg::Checkpoint {
                        execution,
                        set,
                        reset,
                        ack,
                    },
                )
            })
            .await?;
        match reply {
            Reply::Recorded(r) => Ok(r?),
            other => Err(Error::Unavailable(format!("unexpected reply {other:?}"))),
        }
    }

    /// A stream operation of a producer or a consumer; a consumer's read and a producer's
    /// demand return once there is something to answer (see [`crate::model::StreamOp`]).
    pub async fn stream(
        &self,
        op: crate::model::StreamOp,
    ) -> Result<crate::model::StreamReply, Error> {
        let run = op.step().run;
        let reply = self
            .request(|reply| Envelope::Run(run, RunMsg::Stream { op, reply }))
            .await?;
        match reply {
            Reply::Stream(r) => Ok(r?),
            other => Err(Error::Unavailable(format!("unexpected reply {other:?}"))),
        }
    }

    /// An input operation (see [`crate::model::InputOp`]); a wait returns once the input is
    /// answered, dismissed or cancelled.
    pub async fn input(
        &self,
        op: crate::model::InputOp,
    ) -> Result<crate::model::InputRecord, Error> {
        let run = op.run();
        let reply = self
            .request(|reply| Envelope::Run(run, RunMsg::Input { op, reply }))
            .await?;
        match reply {
            Reply::Input(r) => Ok(r?),
            other => Err(Error::Unavailable(format!("unexpected reply {other:?}"))),
        }
    }

    /// Ends a running execution as suspended: a new attempt of its step runs after
    /// `execute_after` (unix ms), once `dependencies` have finished. Returns once committed
    /// (suspending an execution that already ended does nothing).
    pub async fn suspend_execution(
        &self,
        execution: ExecutionId,
        execute_after: Option<Millis>,
        dependencies: Dependencies,
    ) -> Result<(), Error> {
        let reply = self
            .request(|ack| {
                Envelope::Run(
                    execution.run(),
                    RunMsg::Suspend {
                        execution,
                        execute_after,
                        dependencies,
                        ack: Some(ack),
                    },
                )
            })
            .await?;
        match reply {
            Reply::Recorded(r) => Ok(r?),
            other => Err(Error::Unavailable(format!("unexpected reply {other:?}"))),
        }
    }

    /// Submits a child step of a running execution as its `call`-th call; returns the child's
    /// execution id once the submission is committed. Submitting the same call again (e.g.
    /// after a reconnect or a server restart) returns the same child and creates nothing.
    pub async fn submit_child(
        &self,
        parent: ExecutionId,
        call: u32,
        request: SubmitRequest,
    ) -> Result<ExecutionId, Error> {
        self.submit_to_run(parent, call, request, None).await
    }

    /// Sends a child submission to its run (registering `wait` for the child's result, if
    /// given) and returns the child's id once committed.
    async fn submit_to_run(
        &self,
        parent: ExecutionId,
        call: u32,
        request: SubmitRequest,
        wait: Option<ReplyTo>,
    ) -> Result<ExecutionId, Error> {
        let reply = self
            .request(|reply| {
                Envelope::Run(
                    parent.run(),
                    RunMsg::Submit {
                        parent,
                        call: Some(call),
                        request,
                        reply,
                        wait,
                    },
                )
            })
            .await?;
        match reply {
            Reply::Submitted(r) => Ok(r?),
            other => Err(Error::Unavailable(format!("unexpected reply {other:?}"))),
        }
    }

    /// As [`Project::submit_child`], for a caller that will also wait for the child: one
    /// message to the run both submits and registers the wait. Returns the child's id once the
    /// submission is committed, and a future of the child's final result.
    pub async fn submit_child_waiting(
        &self,
        parent: ExecutionId,
        call: u32,
        request: SubmitRequest,
    ) -> Result<(ExecutionId, ChildResult), Error> {
        let router = Arc::clone(&self.handle().router);
        let (wait, result) = router.expect_reply();
        let wait_guard = ForgetReply(Some((Arc::clone(&router), wait)));
        let child = self
            .submit_to_run(parent, call, request, Some(wait))
            .await?;
        let result = async move {
            let _forget = wait_guard;
            match result.await {
                Ok(Reply::Result(r)) => Ok(r?),
                Ok(other) => Err(Error::Unavailable(format!("unexpected reply {other:?}"))),
                Err(_) => Err(Error::Unavailable(
                    "the project stopped before answering".into(),
                )),
            }
        };
        Ok((child, Box::pin(result)))
    }
}

/// The final result of a child submitted with [`Project::submit_child_waiting`].
pub type ChildResult = BoxFuture<'static, Result<ExecutionResult, Error>>;

/// Forgets a registered reply when the caller stops waiting for it.
struct ForgetReply(Option<(Arc<Router>, ReplyTo)>);

impl Drop for ForgetReply {
    fn drop(&mut self) {
        if let Some((router, id)) = self.0.take() {
            router.forget_reply(id);
        }
    }
}

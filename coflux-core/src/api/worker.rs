//! [`Worker`]: hosts a repository of Rust targets in-process. Each execution runs as a task on
//! the worker's own arbiter (never on an actor's), through the SDK's execution driver (as under
//! an agent: panics, suspension, assets, checkpoints decided there), with a task-local context
//! whose link sends child calls to the run's actor; the driver enforces the timeout here. An
//! execution that suspended ends as `RunMsg::Suspend` instead of reporting a result.
//! Metrics and progress ([`crate::sdk::progress`]) go to [`WorkerOptions::metrics`], if set;
//! the orchestrator does not store them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Arbiter;
use futures::FutureExt;
use futures::future::{AbortHandle, Abortable, BoxFuture};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;

use crate::model::{
    Checkpoints, EnvironmentId, ErrorInfo, ExecutionId, ExecutionResult, Requires, WorkerId,
};
use crate::orchestration::actors::{Router, WorkerRegistration};
use crate::orchestration::messages::{Envelope, Reply, RunMsg, WorkerCommand};
use crate::sdk::invoke::{Ending, Invocation, invoke};
use crate::sdk::{ExecutorLink, MetricEvent, MetricHook, Repository, Submission, SubmitRequest};

/// Options of an in-process worker.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// How many executions run at once (default: effectively unlimited, since waiting
    /// executions are cheap tasks here).
    pub concurrency: usize,
    /// Tags this worker provides, for `requires` routing.
    pub provides: Requires,
    /// Receives the metric definitions and points (progress included) of the executions;
    /// without it they are dropped.
    pub metrics: Option<MetricHook>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            concurrency: 1 << 20,
            provides: Requires::new(),
            metrics: None,
        }
    }
}

/// A running in-process worker. It runs until [`Worker::stop`] (dropping the handle leaves it
/// running).
///
/// A worker takes only the executions whose `requires` its `provides` satisfy, at most
/// `concurrency` at once:
///
/// ```
/// use coflux_core::model::Requires;
/// use coflux_core::sdk::{Failure, Repository, workflow};
/// use coflux_core::{Coflux, WorkerOptions};
///
/// #[workflow(requires(gpu = ["yes"]))]
/// async fn train(epochs: u32) -> Result<String, Failure> {
///     Ok(format!("trained for {epochs} epochs"))
/// }
///
/// # fn main() -> Result<(), coflux_core::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # actix_rt::System::new().block_on(async {
/// # let coflux = Coflux::open(dir.path()).await?;
/// # let project = coflux.project("demo").await?;
/// # project.ensure_environment("production", None).await?;
/// let mut provides = Requires::new();
/// provides.insert("gpu".into(), vec!["yes".into()]);
/// let options = WorkerOptions { concurrency: 2, provides, ..WorkerOptions::default() };
/// let worker = project
///     .serve_with("production", Repository::new().with(train), options)
///     .await?;
/// let run = project.submit("production", &train, (3,)).await?;
/// assert_eq!(run.result::<String>().await?, "trained for 3 epochs");
/// worker.stop();
/// # Ok(())
/// # })
/// # }
/// ```
pub struct Worker {
    id: WorkerId,
    router: Arc<Router>,
    arbiter: Arbiter,
}

impl Worker {
    pub(crate) fn start(
        router: Arc<Router>,
        environment: EnvironmentId,
        repository: Repository,
        options: WorkerOptions,
    ) -> Self {
        let id = router.next_worker_id();
        let (commands, mut inbox) = mpsc::unbounded_channel();
        let targets = repository
            .definitions()
            .into_iter()
            .map(|d| d.target)
            .collect();
        let registration = WorkerRegistration {
            environment,
            targets,
            capacity: options.concurrency,
            provides: options.provides,
            accepts: Requires::new(),
            commands,
        };
        let arbiter = router.worker_arbiter();
        let link: Arc<dyn ExecutorLink> = Arc::new(LocalLink {
            router: Arc::clone(&router),
            metrics: options.metrics,
        });
        let r = Arc::clone(&router);
        arbiter.spawn(async move {
            let running: Arc<Mutex<HashMap<ExecutionId, AbortHandle>>> = Arc::default();
            while let Some(command) = inbox.recv().await {
                match command {
                    WorkerCommand::Execute {
                        execution,
                        target,
                        arguments,
                        timeout_ms,
                        checkpoints,
                        // Rust targets configure their streams themselves.
                        streams: _,
                    } => {
                        let (handle, registration) = AbortHandle::new_pair();
                        running
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(execution, handle);
                        let span = tracing::debug_span!(
                            "execution",
                            project = %r.project(),
                            run = %execution.run(),
                            step = %execution.step,
                            execution = %execution
                        );
                        let invocation = Invocation {
                            execution,
                            target,
                            arguments: arguments.to_vec(),
                            checkpoints: (*checkpoints).clone(),
                            working_dir: None,
                            timeout: timeout_ms.map(Duration::from_millis),
                            // The repository's default store (the project's data directory).
                            assets: None,
                        };
                        let job = execute(
                            Arc::clone(&r),
                            repository.clone(),
                            Arc::clone(&link),
                            invocation,
                        )
                        .instrument(span);
                        let running = Arc::clone(&running);
                        actix_rt::spawn(async move {
                            let _ = Abortable::new(job, registration).await;
                            running
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .remove(&execution);
                        });
                    }
                    WorkerCommand::Abort { execution } => {
                        if let Some(handle) = running
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&execution)
                        {
                            handle.abort();
                        }
                    }
                }
            }
        });
        router.connect_worker(id, registration);
        Self {
            id,
            router,
            arbiter,
        }
    }

    /// The worker's id.
    pub fn id(&self) -> WorkerId {
        self.id
    }

    /// Disconnects the worker: executions still running on it are abandoned (and retried where
    /// their policy allows).
    pub fn stop(self) {
        self.router.disconnect_worker(self.id);
        self.arbiter.stop();
    }
}

/// Runs one execution through the driver (which enforces its timeout) and reports how it
/// ended to its run.
async fn execute(
    router: Arc<Router>,
    repository: Repository,
    link: Arc<dyn ExecutorLink>,
    invocation: Invocation,
) {
    let execution = invocation.execution;
    invoke(&repository, link, invocation, |ending| {
        let msg = match ending {
            Ending::Suspended(suspension) => RunMsg::Suspend {
                execution,
                execute_after: suspension.execute_after,
                dependencies: suspension.dependencies,
                ack: None,
            },
            ending => RunMsg::Result {
                execution,
                result: match ending {
                    Ending::Value(value) => ExecutionResult::Value { value },
                    Ending::Error(error) => ExecutionResult::Error { error, retry: None },
                    _ => ExecutionResult::Timeout { retry: None },
                },
                ack: None,
            },
        };
        router.deliver(Envelope::Run(execution.run(), msg));
    })
    .await;
}

/// The in-process [`ExecutorLink`]: child calls become messages to the run's actor.
struct LocalLink {
    router: Arc<Router>,
    metrics: Option<MetricHook>,
}

impl LocalLink {
    /// Sends a submission that also waits for the child: the first receiver gets the
    /// submission's reply (shared by the id and result futures), the second the child's final
    /// result.
    fn send_submit(
        &self,
        parent: ExecutionId,
        request: SubmitRequest,
    ) -> (watch::Receiver<Option<Reply>>, oneshot::Receiver<Reply>) {
        let (reply, submitted) = self.router.expect_shared_reply();
        let (wait, result) = self.router.expect_reply();
        let msg = RunMsg::Submit {
            parent,
            call: None,
            request,
            reply,
            wait: Some(wait),
        };
        self.router.deliver(Envelope::Run(parent.run(), msg));
        (submitted, result)
    }
}

/// The child's id once its submission is committed (or why it was not).
async fn submitted_id(
    mut submitted: watch::Receiver<Option<Reply>>,
) -> Result<ExecutionId, String> {
    let reply = match submitted.wait_for(Option::is_some).await {
        Ok(reply) => reply.clone(),
        Err(_) => return Err("the orchestrator stopped".into()),
    };
    match reply {
        Some(Reply::Submitted(Ok(id))) => Ok(id),
        Some(Reply::Submitted(Err(e))) => Err(e.to_string()),
        other => Err(format!("unexpected reply {other:?}")),
    }
}

impl ExecutorLink for LocalLink {
    fn submit(&self, parent: ExecutionId, request: SubmitRequest) -> Submission {
        let (submitted, result) = self.send_submit(parent, request);
        let id = submitted_id(submitted.clone()).boxed();
        let result = async move {
            // The submission's reply first: if its commit failed, only that reply is failed.
            submitted_id(submitted).await?;
            match result.await {
                Ok(Reply::Result(Ok(result))) => Ok(result),
                Ok(Reply::Result(Err(e))) => Err(e.to_string()),
                Ok(other) => Err(format!("unexpected reply {other:?}")),
                Err(_) => Err("the orchestrator stopped".into()),
            }
        };
        Submission {
            id,
            result: result.boxed(),
        }
    }

    fn wait(
        &self,
        execution: ExecutionId,
        _from: ExecutionId,
    ) -> BoxFuture<'static, ExecutionResult> {
        let (reply, rx) = self.router.expect_reply();
        self.router.deliver(Envelope::Run(
            execution.run(),
            RunMsg::Wait { execution, reply },
        ));
        Box::pin(async move {
            let error = |message: String| ExecutionResult::Error {
                error: ErrorInfo::new("coflux.WaitError", message),
                retry: None,
            };
            match rx.await {
                Ok(Reply::Result(Ok(result))) => result,
                Ok(Reply::Result(Err(e))) => error(e.to_string()),
                Ok(other) => error(format!("unexpected reply {other:?}")),
                Err(_) => error("the orchestrator stopped".into()),
            }
        })
    }

    fn stream(
        &self,
        op: crate::model::StreamOp,
    ) -> BoxFuture<'static, Result<crate::model::StreamReply, String>> {
        let (reply, rx) = self.router.expect_reply();
        let run = op.step().run;
        self.router
            .deliver(Envelope::Run(run, RunMsg::Stream { op, reply }));
        Box::pin(async move {
            match rx.await {
                Ok(Reply::Stream(r)) => r.map_err(|e| e.to_string()),
                Ok(other) => Err(format!("unexpected reply {other:?}")),
                Err(_) => Err("the orchestrator stopped".into()),
            }
        })
    }

    /// Sent to the run as they come: its mailbox keeps them ahead of the result.
    fn checkpoint(&self, execution: ExecutionId, set: Checkpoints, reset: Vec<String>) {
        let (ack, rx) = self.router.expect_reply();
        self.router.deliver(Envelope::Run(
            execution.run(),
            RunMsg::Checkpoint {
                execution,
                set,
                reset,
                ack,
            },
        ));
        actix_rt::spawn(async move {
            if let Ok(Reply::Recorded(Err(e))) = rx.await {
                tracing::warn!(%execution, error = %e, "checkpoint write refused");
            }
        });
    }

    /// An empty write after the others: acknowledged once they are committed.
    fn flush(&self, execution: ExecutionId) -> BoxFuture<'static, Result<(), String>> {
        let (ack, rx) = self.router.expect_reply();
        self.router.deliver(Envelope::Run(
            execution.run(),
            RunMsg::Checkpoint {
                execution,
                set: Checkpoints::new(),
                reset: Vec::new(),
                ack,
            },
        ));
        Box::pin(async move {
            match rx.await {
                Ok(Reply::Recorded(r)) => r.map_err(|e| e.to_string()),
                Ok(other) => Err(format!("unexpected reply {other:?}")),
                Err(_) => Err("the orchestrator stopped".into()),
            }
        })
    }

    fn metric(&self, execution: ExecutionId, event: MetricEvent) {
        if let Some(hook) = &self.metrics {
            hook.record(execution, event);
        }
    }
}

//! [`Project`]: environments, workers, submissions, re-runs and inspection for one project.

use std::path::PathBuf;

use serde::de::DeserializeOwned;

use crate::model::{
    EnvironmentName, ExecutionId, ExecutionResult, OptionOverrides, RunId, StepId, StepOptions,
    TargetDefinition, TargetRef, Value,
};
use crate::orchestration::actors::ProjectHandle;
use crate::orchestration::messages::{
    Envelope, ProjectMsg, Reply, ReplyTo, RunMsg, RunOptions, Submission,
};
use crate::orchestration::project::check_idempotency_key;
use crate::sdk::{ExecutionError, Repository, Target};
use crate::store::RunSummary;

use super::arguments::IntoArguments;
use super::error::Error;
use super::inspect::{self, RunView};
use super::worker::{Worker, WorkerOptions};

/// One project of an embedded orchestrator: its environments, workers and runs.
///
/// Environments form a hierarchy. A step of a production run can be re-run in a child
/// environment with changed code; production's view of the run stays as it was:
///
/// ```
/// use coflux_core::Coflux;
/// use coflux_core::model::{ExecutionResult, StepId};
/// use coflux_core::sdk::{Failure, Repository, decode_value, workflow};
///
/// #[workflow]
/// async fn score(x: u64) -> Result<u64, Failure> {
///     Ok(x * 2)
/// }
///
/// /// The same workflow with changed code, as a developer's agent would host it.
/// #[workflow(name = "score")]
/// async fn score_v2(x: u64) -> Result<u64, Failure> {
///     Ok(x * 3)
/// }
///
/// # fn main() -> Result<(), coflux_core::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # actix_rt::System::new().block_on(async {
/// let coflux = Coflux::open(dir.path()).await?; // keep it alive while its projects are used
/// let project = coflux.project("demo").await?;
/// project.ensure_environment("production", None).await?;
/// project.ensure_environment("dev", Some("production")).await?;
/// let prod = project.serve("production", Repository::new().with(score)).await?;
/// let dev = project.serve("dev", Repository::new().with(score_v2)).await?;
///
/// let run = project.submit("production", &score, (7,)).await?;
/// assert_eq!(run.result::<u64>().await?, 14);
///
/// // Re-run the workflow's step in `dev`: a new attempt, seen from `dev` only.
/// let step = StepId { run: run.run, number: 1 };
/// project.rerun_step(step, Some("dev")).await?;
/// let value = |result| match result {
///     ExecutionResult::Value { value } => decode_value::<u64>(value).unwrap(),
///     other => panic!("{other:?}"),
/// };
/// assert_eq!(value(project.step_result(step, None, Some("dev")).await?), 21);
/// assert_eq!(value(project.step_result(step, None, Some("production")).await?), 14);
/// let production = project.inspect_run(run.run, Some("production")).await?;
/// assert_eq!(production.steps[0].executions.len(), 1);
/// # prod.stop();
/// # dev.stop();
/// # Ok(())
/// # })
/// # }
/// ```
#[derive(Clone)]
pub struct Project {
    handle: ProjectHandle,
    /// Its asset records' directory, when deleting runs removes those they leave unreferenced
    /// (embedded; `None`: the host does it).
    pub(super) asset_records: Option<PathBuf>,
}

/// How [`Project::submit_with`] submits a workflow.
#[derive(Debug, Clone, Default)]
pub struct SubmitOptions {
    /// The workflow's options.
    pub options: StepOptions,
    /// Submissions with the same key in the same environment, within the key retention, get
    /// the same run.
    pub idempotency_key: Option<String>,
    /// Accept a workflow that is not registered in the environment: its run waits until a
    /// worker hosting it connects.
    pub allow_unregistered: bool,
    /// Submit with the workflow's registered options (defaults when no manifest registers
    /// it; a target registered as a task is refused) changed by these overrides, instead of
    /// `options`.
    pub overrides: Option<OptionOverrides>,
}

/// A submitted run: wait for its result, or read it as committed.
///
/// ```
/// use coflux_core::Coflux;
/// use coflux_core::sdk::{Failure, Repository, task, workflow};
///
/// #[task(cache)]
/// async fn square(n: u64) -> Result<u64, Failure> {
///     Ok(n * n)
/// }
///
/// #[workflow]
/// async fn sum_of_squares(n: u64) -> Result<u64, Failure> {
///     let handles: Vec<_> = (1..=n).map(|i| square.submit(i)).collect();
///     let mut total = 0;
///     for handle in handles {
///         total += handle.result().await?;
///     }
///     Ok(total)
/// }
///
/// # fn main() -> Result<(), coflux_core::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # actix_rt::System::new().block_on(async {
/// # let coflux = Coflux::open(dir.path()).await?;
/// # let project = coflux.project("demo").await?;
/// # project.ensure_environment("production", None).await?;
/// # let repository = Repository::new().with(sum_of_squares).with(square);
/// # let worker = project.serve("production", repository).await?;
/// let run = project.submit("production", &sum_of_squares, (3,)).await?;
/// assert_eq!(run.result::<u64>().await?, 14);
/// let view = run.inspect().await?;
/// assert_eq!(view.steps_named("square").count(), 3);
/// print!("{view}"); // the step tree, as `coflux runs inspect` shows it
/// # worker.stop();
/// # Ok(())
/// # })
/// # }
/// ```
#[derive(Clone)]
pub struct RunHandle {
    /// The run.
    pub run: RunId,
    /// Its initial execution.
    pub execution: ExecutionId,
    project: Project,
}

/// Why a new run is refused while the project's store cannot commit.
const STORE_STALLED: &str =
    "the project's data directory cannot be written (disk full?); nothing was submitted";

pub(super) fn environment_name(name: &str) -> Result<EnvironmentName, Error> {
    EnvironmentName::new(name).map_err(|e| Error::Invalid(e.to_string()))
}

pub(super) fn unexpected(reply: Reply) -> Error {
    Error::Unavailable(format!("unexpected reply {reply:?}"))
}

impl Project {
    pub(crate) fn new(handle: ProjectHandle, asset_records: Option<PathBuf>) -> Self {
        Self {
            handle,
            asset_records,
        }
    }

    /// The project's name.
    pub fn name(&self) -> &str {
        self.handle.name.as_str()
    }

    pub(crate) fn handle(&self) -> &ProjectHandle {
        &self.handle
    }

    pub(crate) async fn request(
        &self,
        make: impl FnOnce(ReplyTo) -> Envelope,
    ) -> Result<Reply, Error> {
        let (id, rx) = self.handle.router.expect_reply();
        self.handle.router.deliver(make(id));
        // A caller that stops waiting (e.g. a timed-out HTTP wait) is forgotten.
        struct Forget<'a>(&'a crate::orchestration::actors::Router, ReplyTo);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                self.0.forget_reply(self.1);
            }
        }
        let _forget = Forget(&self.handle.router, id);
        rx.await
            .map_err(|_| Error::Unavailable("the project stopped before answering".into()))
    }

    /// Hosts `repository` in-process for `environment`, with default options.
    pub async fn serve(&self, environment: &str, repository: Repository) -> Result<Worker, Error> {
        self.serve_with(environment, repository, WorkerOptions::default())
            .await
    }

    /// Hosts `repository` in-process for `environment`.
    pub async fn serve_with(
        &self,
        environment: &str,
        repository: Repository,
        options: WorkerOptions,
    ) -> Result<Worker, Error> {
        let env = self.environment_id(environment).await?;
        // Assets persisted by its executions go to the project's store (`Project::assets`).
        let repository = repository.with_default_asset_host(|| std::sync::Arc::new(self.assets()));
        Ok(Worker::start(
            self.handle.router.clone(),
            env.id,
            repository,
            options,
        ))
    }

    /// Submits a workflow with its default options. It must be served in the environment (by
    /// an in-process [`Worker`] or an agent) or registered there; see [`Project::submit_with`].
    pub async fn submit(
        &self,
        environment: &str,
        workflow: &impl Target,
        arguments: impl IntoArguments,
    ) -> Result<RunHandle, Error> {
        let definition = workflow.definition();
        let arguments = arguments
            .into_arguments()
            .map_err(|f| Error::Invalid(f.to_string()))?;
        self.submit_target(
            environment,
            definition.target,
            arguments,
            definition.options,
        )
        .await
    }

    /// Submits a workflow by reference, with encoded arguments and explicit options.
    pub async fn submit_target(
        &self,
        environment: &str,
        target: TargetRef,
        arguments: Vec<Value>,
        options: StepOptions,
    ) -> Result<RunHandle, Error> {
        self.submit_target_keyed(environment, target, arguments, options, None)
            .await
    }

    /// Like [`Project::submit_target`], with an idempotency key: submissions with the same key
    /// in the same environment, within the key retention (default 24 hours), get the same run.
    ///
    /// While the project's data directory cannot be written (e.g. the disk is full), new runs
    /// are refused with [`Error::Unavailable`] instead of waiting; runs already accepted wait.
    pub async fn submit_target_keyed(
        &self,
        environment: &str,
        target: TargetRef,
        arguments: Vec<Value>,
        options: StepOptions,
        idempotency_key: Option<String>,
    ) -> Result<RunHandle, Error> {
        let submission = SubmitOptions {
            options,
            idempotency_key,
            ..SubmitOptions::default()
        };
        self.submit_with(environment, target, arguments, submission)
            .await
    }

    /// Submits a workflow by reference. Unless `allow_unregistered`, a workflow that no
    /// connected worker of the environment hosts (an in-process [`Worker`] or an agent) and
    /// that no manifest registered there is refused (`workflow_not_found`, with the closest
    /// registered names): its run would wait for a worker that may never come.
    pub async fn submit_with(
        &self,
        environment: &str,
        target: TargetRef,
        arguments: Vec<Value>,
        submission: SubmitOptions,
    ) -> Result<RunHandle, Error> {
        let SubmitOptions {
            options,
            idempotency_key,
            allow_unregistered,
            overrides,
        } = submission;
        let options = match overrides {
            Some(overrides) => RunOptions::Registered(overrides),
            None => {
                check_idempotency_key(idempotency_key.as_deref()).map_err(Error::Invalid)?;
                RunOptions::Given(options)
            }
        };
        // While the store cannot commit, a new run would only queue behind the writer: refuse
        // it now (runs already accepted wait, and go on once the store commits again).
        if self.handle.router.store_stalled() {
            return Err(Error::Unavailable(STORE_STALLED.into()));
        }
        let environment = environment_name(environment)?;
        let hosted = if allow_unregistered {
            Default::default()
        } else {
            self.handle.router.hosted_by_environment()
        };
        // One message: the project resolves the environment, checks the registration against
        // its manifests and these hosted targets, and starts the run.
        let submission = Box::new(Submission {
            options,
            idempotency_key,
            allow_unregistered,
            hosted,
        });
        let reply = self
            .request(|reply| {
                Envelope::Project(ProjectMsg::StartRun {
                    environment,
                    target,
                    arguments,
                    submission,
                    reply,
                })
            })
            .await?;
        match reply {
            Reply::RunStarted(r) => {
                let (run, execution) = r?;
                Ok(RunHandle {
                    run,
                    execution,
                    project: self.clone(),
                })
            }
            other => Err(unexpected(other)),
        }
    }

    /// Registers workflow and task definitions (a manifest) for an environment, replacing
    /// earlier definitions of the same targets. Submissions through the server use the
    /// registered options of a workflow.
    pub async fn register_manifests(
        &self,
        environment: &str,
        targets: Vec<TargetDefinition>,
    ) -> Result<(), Error> {
        let environment = environment_name(environment)?;
        for definition in &targets {
            if definition.target.module.is_empty() || definition.target.name.is_empty() {
                return Err(Error::Invalid(
                    "a manifest target needs a module and a name".into(),
                ));
            }
        }
        match self
            .request(|reply| {
                Envelope::Project(ProjectMsg::RegisterManifests {
                    environment,
                    definitions: targets,
                    reply,
                })
            })
            .await?
        {
            Reply::Environment(r) => r.map(|_| ()).map_err(Error::from),
            other => Err(unexpected(other)),
        }
    }

    /// The pending inputs of the project, oldest first (at most `limit`).
    pub async fn pending_inputs(
        &self,
        limit: u32,
    ) -> Result<Vec<crate::model::InputRecord>, Error> {
        let location = self.handle.store.clone();
        actix_rt::task::spawn_blocking(move || Ok(location.open_reader()?.pending_inputs(limit)?))
            .await
            .map_err(|_| Error::Unavailable("input listing task failed".into()))?
    }

    /// A handle to an existing run.
    pub fn run(&self, run: RunId) -> RunHandle {
        RunHandle {
            run,
            execution: StepId { run, number: 1 }.execution(1),
            project: self.clone(),
        }
    }

    /// Re-runs a step (a new attempt), in its own environment or in a descendant of it.
    pub async fn rerun_step(
        &self,
        step: StepId,
        environment: Option<&str>,
    ) -> Result<ExecutionId, Error> {
        let environment = environment.map(environment_name).transpose()?;
        match self
            .request(|reply| {
                Envelope::Project(ProjectMsg::RerunStep {
                    step,
                    environment,
                    reply,
                })
            })
            .await?
        {
            Reply::Rerun(r) => Ok(r?),
            other => Err(unexpected(other)),
        }
    }

    /// Cancels an execution and its descendants.
    pub fn cancel(&self, execution: ExecutionId) {
        self.handle
            .router
            .deliver(Envelope::Run(execution.run(), RunMsg::Cancel { execution }));
    }

    /// Waits for a step's result as seen from the environment `view` (by default the run's
    /// own): its latest attempt visible there, followed to its final result. A re-run in a
    /// child environment is seen from that child only, as in [`Project::inspect_run`]. With
    /// `attempt`, that attempt's own result whatever the view (a retried error is that error).
    pub async fn step_result(
        &self,
        step: StepId,
        attempt: Option<u32>,
        view: Option<&str>,
    ) -> Result<ExecutionResult, Error> {
        let view = match view {
            Some(name) => {
                let id = self.environment_id(name).await?.id;
                crate::model::lineage(&self.environments().await?, id)
            }
            None => Vec::new(),
        };
        match self
            .request(|reply| {
                Envelope::Run(
                    step.run,
                    RunMsg::WaitRun {
                        step: step.number,
                        attempt,
                        view,
                        reply,
                    },
                )
            })
            .await?
        {
            Reply::Result(r) => Ok(r?),
            other => Err(unexpected(other)),
        }
    }

    /// Waits for the final result of an execution's chain.
    pub async fn execution_result(&self, execution: ExecutionId) -> Result<ExecutionResult, Error> {
        match self
            .request(|reply| Envelope::Run(execution.run(), RunMsg::Wait { execution, reply }))
            .await?
        {
            Reply::Result(r) => Ok(r?),
            other => Err(unexpected(other)),
        }
    }

    /// One page of a run's steps as every environment sees them, or as `view` does
    /// (`offset`, at most `limit`, in step order), with the number of steps so seen: what
    /// [`Project::inspect_run`] gives for those steps, without reading the rest of a large run.
    pub async fn inspect_run_page(
        &self,
        run: RunId,
        view: Option<&str>,
        offset: usize,
        limit: usize,
    ) -> Result<(RunView, usize), Error> {
        let environments = self.environments().await?;
        let view = match view {
            Some(name) => Some(crate::model::lineage(
                &environments,
                self.environment_id(name).await?.id,
            )),
            None => None,
        };
        let path = self.handle.store.clone();
        actix_rt::task::spawn_blocking(move || {
            inspect::load_run_page(&path, run, offset, limit, view, &environments)
        })
        .await
        .map_err(|_| Error::Unavailable("inspection task failed".into()))?
    }

    /// Reads a run as committed: its steps, executions, states, timings and results. With
    /// `view`, only executions in the run's own environment and in `view` are shown (a re-run
    /// in a child environment appears in the child's view, not in the parent's).
    pub async fn inspect_run(&self, run: RunId, view: Option<&str>) -> Result<RunView, Error> {
        let environments = self.environments().await?;
        let view = match view {
            Some(name) => Some(crate::model::lineage(
                &environments,
                self.environment_id(name).await?.id,
            )),
            None => None,
        };
        let path = self.handle.store.clone();
        actix_rt::task::spawn_blocking(move || inspect::load_run(&path, run, view, &environments))
            .await
            .map_err(|_| Error::Unavailable("inspection task failed".into()))?
    }

    /// Lists runs, newest first.
    pub async fn list_runs(&self, limit: usize) -> Result<Vec<RunSummary>, Error> {
        let path = self.handle.store.clone();
        actix_rt::task::spawn_blocking(move || inspect::list_runs(&path, limit))
            .await
            .map_err(|_| Error::Unavailable("inspection task failed".into()))?
    }
}

impl RunHandle {
    /// Waits for the run's result (its initial step's latest execution in the run's own
    /// environment, following retries) and decodes its value.
    pub async fn result<T: DeserializeOwned>(&self) -> Result<T, Error> {
        match self.raw_result().await? {
            ExecutionResult::Value { value } => Ok(crate::sdk::decode_value(value)?),
            other => Err(ExecutionError::from_result(&other)
                .unwrap_or(ExecutionError::Submit("no result".into()))
                .into()),
        }
    }

    /// Waits for the run's final result, undecoded, as seen from its own environment.
    pub async fn raw_result(&self) -> Result<ExecutionResult, Error> {
        self.raw_result_in(None).await
    }

    /// Waits for the run's final result as seen from the environment `view` (see
    /// [`Project::step_result`]).
    pub async fn raw_result_in(&self, view: Option<&str>) -> Result<ExecutionResult, Error> {
        let step = StepId {
            run: self.run,
            number: 1,
        };
        self.project.step_result(step, None, view).await
    }

    /// Reads the run as committed, with the executions of every environment (for one
    /// environment's view, [`Project::inspect_run`] with its name).
    pub async fn inspect(&self) -> Result<RunView, Error> {
        self.project.inspect_run(self.run, None).await
    }
}

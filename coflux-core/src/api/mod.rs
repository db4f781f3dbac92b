//! The embedding surface: open a data directory, create projects and environments, host a
//! repository of Rust targets in-process, submit workflows, await results, re-run steps and
//! inspect runs. The whole orchestrator runs inside the calling process; no server.
//!
//! Must be used inside an actix system (`#[actix_rt::main]`, `#[actix_rt::test]` or
//! `actix_rt::System::new().block_on(...)`).

mod arguments;
mod asset_records;
mod assets;
mod blob_files;
mod blob_refs;
mod diagnostics;
#[cfg(test)]
mod disk_full_tests;
mod environments;
mod error;
mod inspect;
mod project;
mod queue;
mod registration;
mod remote;
mod retention;
#[cfg(test)]
mod retention_tests;
mod run_list;
mod schedules;
mod settings;
mod worker;

use std::path::{Path, PathBuf};
use std::time::Duration;

use actix::{Actor, Addr};

pub use arguments::IntoArguments;
pub use asset_records::{ASSET_GRACE, delete_unreferenced_asset_records};
pub use assets::EmbeddedAssets;
pub use error::Error;
pub use inspect::{ExecutionView, InputView, RunView, StepView, StreamView};
pub use project::{Project, RunHandle, SubmitOptions};
pub use registration::Registration;
pub use remote::{ChildResult, RemoteWorker, WorkerSpec};
pub use retention::{DEFAULT_BATCH as DEFAULT_RETENTION_BATCH, RetentionReport};
pub use run_list::RunQuery;
pub use schedules::ScheduleView;
pub use settings::ConcurrencyLimit;
pub use worker::{Worker, WorkerOptions};

use crate::model::ProjectName;
use crate::orchestration::actors::{
    LoadedProjects, OpenProject, OpenProjectError, Supervisor, SupervisorConfig,
};
pub use crate::store::postgres::lease::ClusterConfig;
use crate::store::{Durability, StoreError};
use crate::tuning::Tuning;

/// Options for [`Coflux::open_with`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Commit durability (see [`Durability`]).
    pub durability: Durability,
    /// How long each project's store writer and the threads of in-process workers
    /// ([`Project::serve`]) keep polling for work before they sleep (default
    /// [`Tuning::default`]). Spinning briefly avoids a thread wake-up per commit while a
    /// project is busy, which dominates the latency of dependent tasks.
    pub tuning: Tuning,
    /// After a restart, how long executions that were running on remote workers stay
    /// claimable by their reconnecting agents before they are abandoned and retried (default
    /// zero: in-process workers do not survive a restart, so nothing can reclaim them).
    pub recovery_grace: Duration,
    /// How long an idempotency key given at submission is remembered (default 24 hours):
    /// within it, submissions with the same key in the same environment get the same run.
    pub idempotency_retention: Duration,
    /// How long a project stays loaded while idle: no [`Project`] handle held, no run in
    /// memory, no worker connected, no cron schedule (default `None`: loaded until the
    /// orchestrator stops). An unloaded project is loaded again by the next
    /// [`Coflux::project`] call.
    pub project_idle_timeout: Option<Duration>,
    /// How many arbiters and how many writer threads projects share (default 0: each project
    /// has its own arbiter and writer thread, the fastest for a few projects; a server hosting
    /// many projects sets it, e.g. to the number of cores, so threads do not grow with them).
    pub project_threads: usize,
    /// How long finished runs are kept (default `None`: forever). When set, a background task
    /// deletes, every [`Config::run_retention_interval`], the finished runs older than this in
    /// every project (see [`Project::delete_expired_runs`]).
    pub run_retention: Option<Duration>,
    /// How often the run retention task runs (default one hour).
    pub run_retention_interval: Duration,
    /// A PostgreSQL URL (`postgres://user:password@host/database`): projects' state and the
    /// catalogue go there instead of SQLite files (default `None`: SQLite in the data
    /// directory).
    pub database_url: Option<String>,
    /// With `database_url`: this process is a node of a cluster, owning projects by lease
    /// (see [`crate::store::postgres::lease`]); `None`: a single node, no leases.
    pub cluster: Option<ClusterConfig>,
    /// Whether the program hosting the orchestrator removes the asset records that deleted
    /// runs leave unreferenced itself (the server does: its logs refer to assets too). Default
    /// false: deleting runs ([`Project::delete_run`], run retention) also deletes the records
    /// under `<data_dir>/assets/<project>` that nothing recorded refers to any more and that
    /// are older than [`ASSET_GRACE`].
    pub asset_records_by_host: bool,
}

impl Config {
    /// Defaults for a data directory: [`Durability::Normal`].
    pub fn new(data_dir: impl AsRef<Path>) -> Self {
        Self {
            data_dir: data_dir.as_ref().to_path_buf(),
            durability: Durability::Normal,
            tuning: Tuning::default(),
            recovery_grace: Duration::ZERO,
            idempotency_retention: Duration::from_secs(24 * 60 * 60),
            project_idle_timeout: None,
            project_threads: 0,
            run_retention: None,
            run_retention_interval: Duration::from_secs(60 * 60),
            database_url: None,
            cluster: None,
            asset_records_by_host: false,
        }
    }
}

/// An embedded orchestrator over a data directory. Keep it (or a clone) alive while you use
/// its projects: when the last clone is dropped, the supervisor stops and so do its projects.
///
/// A workflow calling a task, served by an in-process worker:
///
/// ```
/// use coflux_core::Coflux;
/// use coflux_core::sdk::{Failure, Repository, task, workflow};
///
/// #[task]
/// async fn greet(name: String) -> Result<String, Failure> {
///     Ok(format!("Hello, {name}!"))
/// }
///
/// #[workflow]
/// async fn hello(name: String) -> Result<String, Failure> {
///     Ok(greet.call(name).await?)
/// }
///
/// # fn main() -> Result<(), coflux_core::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # actix_rt::System::new().block_on(async {
/// let coflux = Coflux::open(dir.path()).await?;
/// let project = coflux.project("demo").await?;
/// project.ensure_environment("production", None).await?;
/// let worker = project
///     .serve("production", Repository::new().with(hello).with(greet))
///     .await?;
///
/// let run = project.submit("production", &hello, ("world",)).await?;
/// assert_eq!(run.result::<String>().await?, "Hello, world!");
/// worker.stop();
/// # Ok(())
/// # })
/// # }
/// ```
#[derive(Clone)]
pub struct Coflux {
    supervisor: Addr<Supervisor>,
    data_dir: PathBuf,
    database_url: Option<String>,
    asset_records_by_host: bool,
}

impl Coflux {
    /// Opens (creating if needed) a data directory with default options.
    pub async fn open(data_dir: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_with(Config::new(data_dir)).await
    }

    /// Opens a data directory.
    pub async fn open_with(config: Config) -> Result<Self, Error> {
        let data_dir = config.data_dir.clone();
        let database_url = config.database_url.clone();
        let supervisor = Supervisor::new(SupervisorConfig {
            database_url: config.database_url,
            data_dir: config.data_dir,
            durability: config.durability,
            tuning: config.tuning,
            recovery_grace: config.recovery_grace,
            idempotency_retention: config.idempotency_retention,
            idle_timeout: config.project_idle_timeout,
            threads: config.project_threads,
            cluster: config.cluster,
        })?;
        let coflux = Self {
            supervisor: supervisor.start(),
            data_dir,
            database_url,
            asset_records_by_host: config.asset_records_by_host,
        };
        if let Some(retention) = config.run_retention {
            retention::start(&coflux, retention, config.run_retention_interval);
        }
        Ok(coflux)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Opens a project, creating it if it does not exist.
    pub async fn project(&self, name: &str) -> Result<Project, Error> {
        self.open_project(name, true).await
    }

    /// Opens an existing project.
    pub async fn existing_project(&self, name: &str) -> Result<Project, Error> {
        self.open_project(name, false).await
    }

    async fn open_project(&self, name: &str, create: bool) -> Result<Project, Error> {
        let name = ProjectName::new(name).map_err(|e| Error::Invalid(e.to_string()))?;
        let project = name.to_string();
        let handle = self
            .supervisor
            .send(OpenProject { name, create })
            .await
            .map_err(|_| Error::Unavailable("the supervisor has stopped".into()))?
            .map_err(|e| match e {
                OpenProjectError::NotFound(n) => Error::ProjectNotFound(n),
                OpenProjectError::Elsewhere(owner) => Error::OwnedElsewhere { project, owner },
                OpenProjectError::Store(StoreError::InUse) => Error::Store(StoreError::InUse),
                OpenProjectError::Store(reason) => Error::ProjectUnavailable { project, reason },
            })?;
        let records = (!self.asset_records_by_host)
            .then(|| self.data_dir.join("assets").join(handle.name.as_str()));
        Ok(Project::new(handle, records))
    }

    /// The names of the projects loaded now (the others are loaded on first use), unordered.
    pub async fn loaded_projects(&self) -> Result<Vec<String>, Error> {
        self.supervisor
            .send(LoadedProjects)
            .await
            .map_err(|_| Error::Unavailable("the supervisor has stopped".into()))
    }

    /// The names of all projects, oldest first.
    pub async fn list_projects(&self) -> Result<Vec<String>, Error> {
        let dir = self.data_dir.clone();
        let url = self.database_url.clone();
        actix_rt::task::spawn_blocking(move || {
            let catalogue = match &url {
                None => crate::store::catalogue::Catalogue::open(&dir)?,
                Some(url) => crate::store::catalogue::Catalogue::open_postgres(&dir, url)?,
            };
            Ok(catalogue
                .list()?
                .into_iter()
                .map(|(name, _)| name.to_string())
                .collect())
        })
        .await
        .map_err(|_| Error::Unavailable("listing task failed".into()))?
    }

    /// Stops every project (pending commits are finished by their writers).
    pub fn shutdown(&self) {
        actix::System::current().stop();
    }
}

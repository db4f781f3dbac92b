//! [`Supervisor`]: opens projects, each on its own arbiter, restoring it from its database.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use actix::{Actor, Arbiter, Context, Handler, Message};

use crate::model::{ProjectName, now_millis};
use crate::store::catalogue::{Catalogue, project_db_path};
use crate::store::sqlite::{Checkpointer, SqliteStore};
use crate::store::writer::GroupCommitWriter;
use crate::store::{Durability, ProjectStore, StoreError};

use super::super::messages::Outbox;
use super::super::project::ProjectCore;
use super::super::run::RunCore;
use super::hosts::ProjectActor;
use super::router::Router;

/// Where projects live and how they commit.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// The data directory (catalogue plus one folder per project).
    pub data_dir: PathBuf,
    /// The commit durability of every project database.
    pub durability: Durability,
    /// How long a project's writer polls for more work before it sleeps (see
    /// [`GroupCommitWriter::spawn_with_spin`]).
    pub writer_spin: std::time::Duration,
    /// How long in-process workers' arbiters poll for their next message before they sleep
    /// (see [`super::spinning_arbiter`]).
    pub worker_spin: std::time::Duration,
    /// After a restart, how long executions that were running stay claimable by reconnecting
    /// workers before they are abandoned (zero: abandoned at once).
    pub recovery_grace: std::time::Duration,
    /// How long idempotency keys of submissions are remembered.
    pub idempotency_retention: std::time::Duration,
}

/// A running project: its name, router and database path.
#[derive(Clone)]
pub struct ProjectHandle {
    /// The project's name.
    pub name: ProjectName,
    /// Delivers messages to its actors.
    pub router: Arc<Router>,
    /// Its database, for read-only inspection.
    pub db_path: PathBuf,
}

struct Running {
    handle: ProjectHandle,
    arbiter: Arbiter,
    _checkpointer: Checkpointer,
}

/// Starts and keeps one project per arbiter.
pub struct Supervisor {
    config: SupervisorConfig,
    catalogue: Catalogue,
    projects: HashMap<ProjectName, Running>,
}

impl Supervisor {
    /// A supervisor over a data directory (the catalogue is created if missing).
    pub fn new(config: SupervisorConfig) -> Result<Self, StoreError> {
        let catalogue = Catalogue::open(&config.data_dir)?;
        Ok(Self {
            config,
            catalogue,
            projects: HashMap::new(),
        })
    }

    fn start_project(&self, name: &ProjectName) -> Result<Running, StoreError> {
        let db_path = project_db_path(&self.config.data_dir, name);
        let store = SqliteStore::open(&db_path, self.config.durability)?;
        store.disable_auto_checkpoint()?;
        let checkpointer = Checkpointer::spawn(&db_path, std::time::Duration::from_millis(200))?;
        let reader = SqliteStore::open_reader(&db_path)?;
        let snapshot = store.load()?;
        let arbiter = Arbiter::new();
        let router = Arc::new(Router::new(
            name.to_string(),
            arbiter.handle(),
            Box::new(reader),
            self.config.worker_spin,
        ));
        let deliver_to = Arc::clone(&router);
        #[cfg(any(test, feature = "failpoints"))]
        let store =
            crate::store::failpoint::FailingStore::new(Box::new(store), router.disk_full_switch());
        let writer = GroupCommitWriter::spawn_with_spin(
            Box::new(store),
            format!("coflux-writer-{name}"),
            self.config.writer_spin,
            move |messages| deliver_to.deliver_all(messages),
            {
                let router = Arc::clone(&router);
                move |error, dropped| router.commit_failed(&error, dropped)
            },
        );
        router.set_writer(writer);
        let now = now_millis();
        let mut out = Outbox::default();
        let mut core = ProjectCore::restore(&snapshot, &mut out);
        core.set_key_retention(
            i64::try_from(self.config.idempotency_retention.as_millis()).unwrap_or(i64::MAX),
        );
        let r = Arc::clone(&router);
        let addr = ProjectActor::start_in_arbiter(&arbiter.handle(), move |_| {
            ProjectActor::new(core, r, out)
        });
        router.set_project_actor(addr);
        let active = snapshot.active_runs.len();
        for run in snapshot.active_runs {
            let mut out = Outbox::default();
            let grace = u64::try_from(self.config.recovery_grace.as_millis()).unwrap_or(u64::MAX);
            let core = RunCore::recover(run, now, grace, &mut out);
            router.start_run(core, out);
        }
        tracing::info!(project = %name, active_runs = active, "project started");
        Ok(Running {
            handle: ProjectHandle {
                name: name.clone(),
                router,
                db_path,
            },
            arbiter,
            _checkpointer: checkpointer,
        })
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        for running in self.projects.values() {
            running.handle.router.shutdown();
            running.arbiter.stop();
        }
    }
}

/// Opens a project (creating it when `create` is set), starting it if it is not running.
#[derive(Debug)]
pub struct OpenProject {
    /// The project.
    pub name: ProjectName,
    /// Create it if it does not exist.
    pub create: bool,
}

/// Why a project could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenProjectError {
    /// No such project.
    #[error("project '{0}' not found")]
    NotFound(String),
    /// Its database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Message for OpenProject {
    type Result = Result<ProjectHandle, OpenProjectError>;
}

impl Handler<OpenProject> for Supervisor {
    type Result = Result<ProjectHandle, OpenProjectError>;

    fn handle(&mut self, msg: OpenProject, _: &mut Self::Context) -> Self::Result {
        if let Some(running) = self.projects.get(&msg.name) {
            return Ok(running.handle.clone());
        }
        if msg.create {
            self.catalogue.create(&msg.name)?;
        } else if !self.catalogue.exists(&msg.name)? {
            return Err(OpenProjectError::NotFound(msg.name.to_string()));
        }
        let running = self.start_project(&msg.name)?;
        let handle = running.handle.clone();
        self.projects.insert(msg.name, running);
        Ok(handle)
    }
}

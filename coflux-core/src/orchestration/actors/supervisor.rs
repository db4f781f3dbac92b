//! [`Supervisor`]: opens projects, restoring each from its database, on a fixed set of shared
//! threads; unloads those that stay idle.
//!
//! With `threads` set, threads do not grow with projects: each project's actors live on one
//! arbiter of a pool, its store on one thread of a [`WriterPool`], and one thread checkpoints
//! every database's WAL (the server sizes the pools by cores). Without it (embedded, a few
//! projects), each project has its own arbiter and writer thread. A project keeps its serial orchestration (its actors handle one
//! message at a time, on one arbiter) and its group commit (its writer commits one group at a
//! time, on one thread).
//!
//! With an idle timeout, a project without callers holding it (requests, agents, in-process
//! workers), runs in memory, waiting callers, pending commits or cron schedules for that long
//! is unloaded: its actors stop, its writer commits what it holds and closes the database.
//! Opening it again while it closes waits for the close, then loads it afresh.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, Arbiter, AsyncContext, Context, Handler, Message, ResponseActFuture,
    WrapFuture,
};
use tokio::sync::{oneshot, watch};

use crate::model::{ProjectName, now_millis};
use crate::store::catalogue::{Catalogue, project_db_path};
use crate::store::location::StoreLocation;
use crate::store::postgres::lease::{ClusterConfig, FenceCheck, Leases};
use crate::store::postgres::{Fence, PgLocation, PgStore, schema_name};
use crate::store::sqlite::SqliteStore;
use crate::store::writer::{GroupCommitWriter, WalCheckpointer, WalRegistration, WriterPool};
use crate::store::{Durability, ProjectStore, StoreError};
use crate::tuning::Tuning;

use super::super::messages::Outbox;
use super::super::project::ProjectCore;
use super::super::run::RunCore;
use super::router::{ProjectActor, Router};

#[path = "supervisor_leases.rs"]
mod leases;

/// Where projects live and how they commit.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// The data directory (catalogue plus one folder per project).
    pub data_dir: PathBuf,
    /// The commit durability of every project database.
    pub durability: Durability,
    /// How long writer threads and in-process workers' arbiters poll for work before they
    /// sleep.
    pub tuning: Tuning,
    /// After a restart, how long executions that were running stay claimable by reconnecting
    /// workers before they are abandoned (zero: abandoned at once).
    pub recovery_grace: Duration,
    /// How long idempotency keys of submissions are remembered.
    pub idempotency_retention: Duration,
    /// How long a project stays loaded while idle (`None`: until the supervisor stops).
    pub idle_timeout: Option<Duration>,
    /// How many arbiters and how many writer threads projects share (zero: each project has
    /// its own arbiter and writer thread).
    pub threads: usize,
    /// A PostgreSQL URL: projects' state and the catalogue are there (`None`: SQLite files
    /// in the data directory).
    pub database_url: Option<String>,
    /// With `database_url`: own projects by lease as a node of a cluster.
    pub cluster: Option<ClusterConfig>,
}

/// A running project: its name, router and database path. While a handle (or a clone) exists
/// the project is not unloaded.
#[derive(Clone)]
pub struct ProjectHandle {
    /// The project's name.
    pub name: ProjectName,
    /// Delivers messages to its actors.
    pub router: Arc<Router>,
    /// Its SQLite database's path (unused with PostgreSQL).
    pub db_path: PathBuf,
    /// Where its state is, for read-only inspection.
    pub store: StoreLocation,
    /// Counts the handles given out.
    lease: Arc<()>,
}

struct Running {
    handle: ProjectHandle,
    /// Its arbiter's index in the pool.
    arbiter: usize,
    _wal: Option<WalRegistration>,
    /// Resolves once its writer has closed the database.
    writer_closed: oneshot::Receiver<()>,
    /// When it was last seen in use.
    busy_at: Instant,
    /// The epoch of its lease (a cluster node's projects).
    epoch: Option<i64>,
}

/// Starts projects on shared threads and unloads idle ones.
pub struct Supervisor {
    config: SupervisorConfig,
    catalogue: Catalogue,
    projects: HashMap<ProjectName, Running>,
    /// Arbiters, started as needed, with how many projects each hosts.
    arbiters: Vec<(Arbiter, usize)>,
    writers: WriterPool,
    wal: WalCheckpointer,
    /// Projects being unloaded: set to `true` once closed.
    closing: HashMap<ProjectName, watch::Receiver<bool>>,
    /// A cluster node's access to the leases (see [`leases`]).
    leases: Option<Arc<Leases>>,
    /// Whether a lease round is under way.
    lease_round: bool,
}

/// How often the WAL of a database that committed is checkpointed.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

impl Supervisor {
    /// A supervisor over a data directory (the catalogue is created if missing).
    pub fn new(config: SupervisorConfig) -> Result<Self, StoreError> {
        let catalogue = match &config.database_url {
            None => Catalogue::open(&config.data_dir)?,
            Some(url) => Catalogue::open_postgres(&config.data_dir, url)?,
        };
        let writers = WriterPool::new(config.threads, config.tuning.writer_spin, "coflux-writer");
        let leases = match (&config.database_url, &config.cluster) {
            (Some(url), Some(cluster)) => {
                let leases = Leases::connect(url, &cluster.node, cluster.lease_duration)?;
                crate::store::postgres::off_runtime(|| leases.heartbeat(&cluster.blobs))?;
                Some(Arc::new(leases))
            }
            _ => None,
        };
        Ok(Self {
            leases,
            lease_round: false,
            config,
            catalogue,
            projects: HashMap::new(),
            arbiters: Vec::new(),
            writers,
            wal: WalCheckpointer::new(CHECKPOINT_EVERY),
            closing: HashMap::new(),
        })
    }

    /// The names of the projects loaded now.
    fn loaded(&self) -> Vec<String> {
        self.projects.keys().map(ToString::to_string).collect()
    }

    /// The least loaded arbiter, starting one while the pool is not full.
    fn pick_arbiter(&mut self) -> usize {
        let least = (0..self.arbiters.len()).min_by_key(|&i| self.arbiters[i].1);
        match least {
            Some(i)
                if self.arbiters.len() >= self.config.pool_size() || self.arbiters[i].1 == 0 =>
            {
                i
            }
            _ => {
                self.arbiters.push((Arbiter::new(), 0));
                self.arbiters.len() - 1
            }
        }
    }

    fn start_project(&mut self, name: &ProjectName) -> Result<Running, OpenProjectError> {
        let db_path = project_db_path(&self.config.data_dir, name);
        let mut epoch = None;
        let location = match &self.config.database_url {
            None => StoreLocation::Sqlite(db_path.clone()),
            Some(url) => StoreLocation::Postgres(PgLocation {
                url: url.clone(),
                schema: schema_name(name),
            }),
        };
        let (store, reader): (Box<dyn ProjectStore>, Box<dyn ProjectStore>) = match &location {
            StoreLocation::Sqlite(path) => {
                let store = SqliteStore::open(path, self.config.durability)?;
                store.disable_auto_checkpoint()?;
                (Box::new(store), Box::new(SqliteStore::open_reader(path)?))
            }
            StoreLocation::Postgres(pg) => {
                // A cluster node takes the lease first: recovery reads what the previous owner
                // committed, and its writes (if it still runs) are fenced from now on.
                let fence = match &self.leases {
                    None => Fence::None,
                    Some(leases) => {
                        epoch = Some(leases::acquire(leases, name)?);
                        Fence::Lease(FenceCheck {
                            project: name.to_string(),
                            node: leases.node().to_owned(),
                            epoch: epoch.unwrap_or_default(),
                            idle_limit: (leases.duration() / 2)
                                .max(std::time::Duration::from_millis(500)),
                            lease: leases.duration(),
                        })
                    }
                };
                (
                    Box::new(
                        PgStore::open(pg)?
                            .with_fence(fence)?
                            .with_durability(self.config.durability),
                    ),
                    Box::new(PgStore::open_reader(pg)?),
                )
            }
        };
        let snapshot = store.load()?;
        let arbiter = self.pick_arbiter();
        self.arbiters[arbiter].1 += 1;
        let arbiter_handle = self.arbiters[arbiter].0.handle();
        let router = Arc::new(Router::new(
            name.to_string(),
            arbiter_handle.clone(),
            reader,
            self.config.tuning.worker_spin,
        ));
        let deliver_to = Arc::clone(&router);
        #[cfg(any(test, feature = "failpoints"))]
        let store: Box<dyn ProjectStore> = Box::new(crate::store::failpoint::FailingStore::new(
            store,
            router.disk_full_switch(),
        ));
        // Dropped with the writer's callbacks, once its store is closed.
        let (closed_tx, writer_closed) = oneshot::channel::<()>();
        let deliver = move |messages| deliver_to.deliver_all(messages);
        let on_error = {
            let router = Arc::clone(&router);
            move |error: StoreError, dropped| {
                let _closed = &closed_tx;
                router.commit_failed(&error, dropped)
            }
        };
        let writer = if self.config.threads > 0 {
            GroupCommitWriter::spawn_on(
                &self.writers,
                store,
                format!("writer-{name}"),
                deliver,
                on_error,
            )
        } else {
            GroupCommitWriter::spawn_with_spin(
                store,
                format!("coflux-writer-{name}"),
                self.config.tuning.writer_spin,
                deliver,
                on_error,
            )
        };
        let wal = match &location {
            StoreLocation::Sqlite(path) => Some(self.wal.register(path, &writer)?),
            StoreLocation::Postgres(_) => None,
        };
        router.set_writer(writer);
        let now = now_millis();
        let mut out = Outbox::default();
        let mut core = ProjectCore::restore(&snapshot, &mut out);
        core.set_key_retention(
            i64::try_from(self.config.idempotency_retention.as_millis()).unwrap_or(i64::MAX),
        );
        router.set_scheduled(core.has_schedules());
        let r = Arc::clone(&router);
        let addr = ProjectActor::start_in_arbiter(&arbiter_handle, move |_| {
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
                store: location,
                lease: Arc::new(()),
            },
            arbiter,
            _wal: wal,
            writer_closed,
            busy_at: Instant::now(),
            epoch,
        })
    }

    fn open(&mut self, msg: OpenProject) -> Result<ProjectHandle, OpenProjectError> {
        if let Some(running) = self.projects.get_mut(&msg.name) {
            running.busy_at = Instant::now();
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

    /// Unloads the projects idle for the timeout.
    fn sweep(&mut self, timeout: Duration, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let mut idle = Vec::new();
        let mut stopped = Vec::new();
        for (name, running) in &mut self.projects {
            if running.handle.router.is_fenced() {
                // Its store refuses commits for good (see `StoreError::stops_project`).
                stopped.push(name.clone());
                continue;
            }
            let busy = if Arc::strong_count(&running.handle.lease) > 1 {
                Some("handles held")
            } else {
                running.handle.router.busy()
            };
            if let Some(reason) = busy {
                tracing::trace!(project = %name, reason, "project in use");
                running.busy_at = now;
            } else if now.duration_since(running.busy_at) >= timeout {
                idle.push(name.clone());
            }
        }
        for name in idle {
            if let Some(running) = self.projects.remove(&name) {
                self.unload(name, running, "idle", ctx);
            }
        }
        for name in stopped {
            if let Some(running) = self.projects.remove(&name) {
                self.unload(name, running, "lease or session lost", ctx);
            }
        }
    }

    /// Stops a project's actors, then lets its writer commit what it holds and close the
    /// database. Nobody holds a handle to it (the supervisor gives none out meanwhile).
    fn unload(
        &mut self,
        name: ProjectName,
        running: Running,
        why: &'static str,
        ctx: &mut Context<Self>,
    ) {
        let Running {
            handle,
            arbiter,
            _wal,
            writer_closed,
            epoch,
            ..
        } = running;
        let release = self.leases.clone().zip(epoch);
        let project = name.to_string();
        self.arbiters[arbiter].1 -= 1;
        let (done, closed) = watch::channel(false);
        self.closing.insert(name.clone(), closed);
        let router = handle.router;
        let work = async move {
            router.stop_actors().await;
            router.close();
            drop(router);
            // The sender is dropped with the writer, once the database is closed.
            let _ = writer_closed.await;
            drop(_wal);
            // Once nothing more can commit, another node may take the project at once.
            if let Some((leases, epoch)) = release {
                let released =
                    actix_rt::task::spawn_blocking(move || leases.release(&project, epoch)).await;
                if let Ok(Err(e)) = released {
                    tracing::warn!(error = %e, "could not release a project's lease");
                }
            }
            let _ = done.send(true);
        };
        ctx.spawn(work.into_actor(self).map(move |(), this, _| {
            this.forget_closed(&name);
            tracing::info!(project = %name, why, "project unloaded");
        }));
    }

    /// Forgets that `name` was closing, once it is closed (not a later unload of it).
    fn forget_closed(&mut self, name: &ProjectName) {
        if self
            .closing
            .get(name)
            .is_some_and(|closed| *closed.borrow())
        {
            self.closing.remove(name);
        }
    }
}

impl SupervisorConfig {
    /// The number of shared arbiters (unbounded without sharing: one per project, reused once
    /// its project is unloaded).
    fn pool_size(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            usize::MAX
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(cluster) = &self.config.cluster
            && self.leases.is_some()
        {
            let every = (cluster.lease_duration / 5).max(Duration::from_millis(50));
            ctx.run_interval(every, |this, ctx| this.lease_round(ctx));
        }
        if let Some(timeout) = self.config.idle_timeout {
            let every = (timeout / 4).clamp(Duration::from_millis(20), Duration::from_secs(5));
            ctx.run_interval(every, move |this, ctx| this.sweep(timeout, ctx));
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        for running in self.projects.values() {
            running.handle.router.shutdown();
        }
        for (arbiter, _) in &self.arbiters {
            arbiter.stop();
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
    /// Another node of the cluster holds its lease (its URL).
    #[error("project owned by another node ({0})")]
    Elsewhere(String),
}

impl Message for OpenProject {
    type Result = Result<ProjectHandle, OpenProjectError>;
}

impl Handler<OpenProject> for Supervisor {
    type Result = ResponseActFuture<Self, Result<ProjectHandle, OpenProjectError>>;

    fn handle(&mut self, msg: OpenProject, _: &mut Self::Context) -> Self::Result {
        self.open_when_closed(msg)
    }
}

impl Supervisor {
    /// Opens the project, first waiting for it to close if it is being unloaded.
    fn open_when_closed(
        &mut self,
        msg: OpenProject,
    ) -> ResponseActFuture<Self, Result<ProjectHandle, OpenProjectError>> {
        self.forget_closed(&msg.name);
        if let Some(closed) = self.closing.get(&msg.name) {
            let mut closed = closed.clone();
            let wait = async move {
                let _ = closed.wait_for(|done| *done).await;
            };
            return Box::pin(
                wait.into_actor(self)
                    .then(move |(), this, _| this.open_when_closed(msg)),
            );
        }
        Box::pin(actix::fut::ready(self.open(msg)))
    }
}

/// The names of the projects loaded now (for diagnostics and tests).
#[derive(Debug)]
pub struct LoadedProjects;

impl Message for LoadedProjects {
    type Result = Vec<String>;
}

impl Handler<LoadedProjects> for Supervisor {
    type Result = Vec<String>;

    fn handle(&mut self, _: LoadedProjects, _: &mut Self::Context) -> Self::Result {
        self.loaded()
    }
}

//! The PostgreSQL implementation of [`ProjectStore`]: each project in its own PostgreSQL
//! schema ([`schema_name`]) of one database, with the same tables as a SQLite project
//! database.
//!
//! The client is blocking ([`client::PgClient`]): like the SQLite store, a store is one
//! connection driven by one thread (the project's group-commit writer, or a reader), so an
//! async client and a pool would add a runtime hop per statement without adding concurrency.
//! Every [`ProjectStore::apply`] is one transaction whose statements are pipelined (one round
//! trip, then COMMIT); statements are prepared once per connection and cached. Reads of a whole snapshot run in one `REPEATABLE READ` read-only
//! transaction, so they see one consistent state while the writer commits.
//!
//! Each write transaction first runs the store's [`Fence`] check: a lease-owned project
//! (several nodes, see [`lease`]) checks its lease epoch there, so that a former owner cannot
//! commit after losing the project. Each also moves the project's commit sequence, which
//! lets a writer whose connection broke reconnect and commit again what PostgreSQL lost (see
//! [`commit`] for how [`Durability`] is kept).

mod catch_up;
mod client;
mod commit;

pub(crate) use commit::is_disconnect;
pub mod lease;
pub(crate) mod pool;
mod read;
mod retention;
mod run_data;
mod run_list;
mod run_page;
pub mod schema;
mod write;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use postgres::types::ToSql;
use postgres::{NoTls, Row, Statement};

use self::client::{Kind, Outcome, Param, PgClient};

use super::{
    Durability, ProjectSnapshot, ProjectStore, RunSnapshot, RunSummary, StoreError, StoreWake,
    Write,
};
use crate::model::{EnvironmentId, ProjectName, RunId, TargetDefinition};

/// The PostgreSQL schema holding project `name`'s tables: `cx_<name>`, or for names too long
/// for an identifier (63 bytes), a prefix of the name and a hash of the whole.
pub fn schema_name(name: &ProjectName) -> String {
    let name = name.as_str();
    if name.len() <= 60 {
        format!("cx_{name}")
    } else {
        use sha2::Digest;
        let hash = hex::encode(sha2::Sha256::digest(name.as_bytes()));
        format!("cx_{}_{}", &name[..51], &hash[..8])
    }
}

/// Where a project's tables are: the database's connection URL and the schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PgLocation {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// The project's schema (see [`schema_name`]).
    pub schema: String,
}

/// What each write transaction checks before it commits (see the module documentation).
#[derive(Debug, Clone, Default)]
pub enum Fence {
    /// Single-node mode: nothing to check.
    #[default]
    None,
    /// The project is owned by lease: the lease must still be this node's, with this epoch,
    /// and unexpired ([`StoreError::Fenced`] otherwise; nothing of the transaction commits).
    Lease(lease::FenceCheck),
}

/// What a queued statement must find for its batch to commit.
enum Check {
    /// Nothing.
    None,
    /// At least one row changed; else the batch fails with [`StoreError::Missing`] (the text).
    Changed(String),
    /// Its query returns true; else the batch fails with [`StoreError::Missing`] (the text).
    Holds(String),
    /// The fence check: its query returns true; else the batch fails with
    /// [`StoreError::Fenced`].
    Fence { project: String, epoch: i64 },
    /// The commit sequence moved from `previous` to `seq` (one row changed); else the batch
    /// fails with [`StoreError::Diverged`].
    Sequence { seq: i64, previous: i64 },
}

/// One connection with its prepared statements, and the statements of the current write
/// transaction not sent yet ([`Conn::queue`], [`Conn::flush`]).
struct Conn {
    client: PgClient,
    statements: HashMap<&'static str, Statement>,
    queued: Vec<(Statement, Vec<Param>, Kind)>,
    checks: Vec<Check>,
    /// A reader's: its snapshot was found not behind the writer since it connected (see
    /// [`catch_up`]).
    verified: bool,
}

impl Conn {
    /// `sql` prepared on this connection (once).
    fn statement(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    /// Queues `sql` for the next [`Conn::flush`] (its result only matters to `check`).
    fn queue(
        &mut self,
        sql: &'static str,
        params: Vec<Param>,
        check: Check,
    ) -> Result<(), StoreError> {
        let statement = self.statement(sql)?;
        let kind = match check {
            Check::Holds(_) | Check::Fence { .. } => Kind::QueryFlag,
            Check::None | Check::Changed(_) | Check::Sequence { .. } => Kind::Execute,
        };
        self.queued.push((statement, params, kind));
        self.checks.push(check);
        Ok(())
    }

    /// Sends the queued statements in one round trip and checks their results: the first
    /// error, or the first check that fails, fails the batch.
    fn flush(&mut self) -> Result<(), StoreError> {
        if self.queued.is_empty() {
            return Ok(());
        }
        let queued = std::mem::take(&mut self.queued);
        let checks = std::mem::take(&mut self.checks);
        let results = self.client.pipeline(&queued);
        for (result, check) in results.into_iter().zip(checks) {
            match (result?, check) {
                (Outcome::Changed(0), Check::Changed(missing))
                | (Outcome::Flag(false), Check::Holds(missing)) => {
                    return Err(StoreError::Missing(missing));
                }
                (Outcome::Flag(false), Check::Fence { project, epoch }) => {
                    return Err(StoreError::Fenced { project, epoch });
                }
                (Outcome::Changed(0), Check::Sequence { seq, previous }) => {
                    return Err(StoreError::Diverged(format!(
                        "the commit sequence is not at {previous} (moving it to {seq})"
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Forgets what is queued (the batch failed).
    fn discard(&mut self) {
        self.queued.clear();
        self.checks.clear();
    }

    /// Executes `sql`; returns the number of rows changed.
    fn exec(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let statement = self.statement(sql)?;
        Ok(self.client.execute(&statement, params)?)
    }

    /// The rows of `sql`.
    fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let statement = self.statement(sql)?;
        Ok(self.client.query(&statement, params)?)
    }

    /// The single BIGINT `sql` returns.
    fn count(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<i64, StoreError> {
        let statement = self.statement(sql)?;
        Ok(self.client.query_one(&statement, params)?.get(0))
    }
}

/// A project's tables in PostgreSQL.
pub struct PgStore {
    /// `None` only while being dropped.
    conn: Mutex<Option<Conn>>,
    location: PgLocation,
    read_only: bool,
    fence: Fence,
    /// The commit sequence and the replay buffer (writers).
    log: commit::CommitLog,
    /// What this process's writer of the location shares with its readers.
    shared: Arc<catch_up::Shared>,
    /// This writer's wake-up, handed to the readers (see [`ProjectStore::set_wake`]).
    wake: Option<StoreWake>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.location.schema)
            .field("read_only", &self.read_only)
            .finish()
    }
}

/// Runs `f` where the blocking client may run: inline on a plain thread (the writer's, a
/// blocking task's), on a scoped thread when called from inside an async runtime (whose
/// threads the client's own `block_on` must not use).
pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(out) => out,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Connects to `url` with `search_path` set to `schema`.
fn connect(url: &str, schema: &str) -> Result<PgClient, StoreError> {
    let mut client = PgClient::connect(url)?;
    client.batch_execute(&format!(
        "SET search_path TO {}; SET application_name TO 'coflux'",
        schema::quote(schema)
    ))?;
    Ok(client)
}

impl PgStore {
    /// Connects for reading and writing, creating the project's schema if needed and bringing
    /// it up to date. Its commits wait for their WAL flush ([`Durability::Full`]) unless
    /// [`PgStore::with_durability`] says otherwise.
    pub fn open(location: &PgLocation) -> Result<Self, StoreError> {
        off_runtime(|| {
            // Migrations run on a connection of their own (the `postgres` client's API).
            let mut migrator = postgres::Client::connect(&location.url, NoTls)?;
            schema::migrate_project(&mut migrator, &location.schema)?;
            // What an earlier writer committed without waiting for its flush is flushed now,
            // so that what this store loads cannot be lost by a crash of PostgreSQL.
            migrator.batch_execute(&format!(
                "UPDATE {}.commit_seq SET seq = seq",
                schema::quote(&location.schema)
            ))?;
            drop(migrator);
            let client = connect(&location.url, &location.schema)?;
            let mut store = Self::new(client, location, false);
            let seq = store.conn().count(commit::READ_SEQ_SQL, &[])?;
            store.log = commit::CommitLog::new(Durability::Full, seq);
            store.shared.committed.store(seq, Ordering::Release);
            Ok(store)
        })
    }

    /// Commits with `durability`: [`Durability::Normal`] does not wait for each commit's WAL
    /// flush and keeps what PostgreSQL may still lose to commit it again (see [`commit`]).
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.log.set_durability(durability);
        self
    }

    /// The committed batches PostgreSQL has not confirmed flushed yet (kept for replay).
    pub fn unflushed_batches(&self) -> usize {
        self.log.buffered()
    }

    /// How many batches this store committed again after reconnecting.
    pub fn replayed_batches(&self) -> u64 {
        self.log.replayed()
    }

    /// The sequence number of the last batch this store knows committed.
    pub fn commit_seq(&self) -> i64 {
        self.log.seq()
    }

    /// Connects for reading only, to an existing, up-to-date project ([`ProjectStore::apply`]
    /// on it fails).
    pub fn open_reader(location: &PgLocation) -> Result<Self, StoreError> {
        off_runtime(|| Self::connect_reader(location))
    }

    fn connect_reader(location: &PgLocation) -> Result<Self, StoreError> {
        let mut client = connect(&location.url, &location.schema)?;
        let version = schema::project_version(&mut client, &location.schema)?;
        if version != schema::project_latest() {
            return Err(StoreError::Migration(format!(
                "project schema {} is not initialised or not up to date (version {version})",
                location.schema
            )));
        }
        client.batch_execute("SET default_transaction_read_only = on")?;
        Ok(Self::new(client, location, true))
    }

    fn new(client: PgClient, location: &PgLocation, read_only: bool) -> Self {
        Self {
            conn: Mutex::new(Some(Conn {
                client,
                statements: HashMap::new(),
                queued: Vec::new(),
                checks: Vec::new(),
                verified: false,
            })),
            location: location.clone(),
            read_only,
            fence: Fence::None,
            log: commit::CommitLog::new(Durability::Full, 0),
            shared: catch_up::Shared::of(location),
            wake: None,
        }
    }

    /// A new connection with this store's session settings (after the old one broke).
    fn fresh_conn(&self) -> Result<Conn, StoreError> {
        let mut client = connect(&self.location.url, &self.location.schema)?;
        if self.read_only {
            client.batch_execute("SET default_transaction_read_only = on")?;
        }
        if let Fence::Lease(check) = &self.fence {
            let ms = check.idle_limit.as_millis().max(100);
            client.batch_execute(&format!("SET idle_in_transaction_session_timeout = {ms}"))?;
        }
        Ok(Conn {
            client,
            statements: HashMap::new(),
            queued: Vec::new(),
            checks: Vec::new(),
            verified: false,
        })
    }

    /// This store's writes check `fence` first (see [`Fence`]). With a lease, a transaction
    /// left idle past the lease's idle limit ends the session, releasing its locks.
    pub fn with_fence(mut self, fence: Fence) -> Result<Self, StoreError> {
        if let Fence::Lease(check) = &fence {
            let ms = check.idle_limit.as_millis().max(100);
            let conn = self.conn.get_mut().unwrap_or_else(|p| p.into_inner());
            if let Some(conn) = conn.as_mut() {
                let client = &mut conn.client;
                off_runtime(|| {
                    client.batch_execute(&format!("SET idle_in_transaction_session_timeout = {ms}"))
                })?;
            }
        }
        self.fence = fence;
        Ok(self)
    }

    /// Where this store's tables are.
    pub fn location(&self) -> &PgLocation {
        &self.location
    }

    /// Whether its connection is still open (a reader kept idle may have been closed by the
    /// server).
    pub fn is_open(&self) -> bool {
        !self.conn().client.is_closed()
    }

    /// Whether this store was opened with [`PgStore::open_reader`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn conn(&self) -> ConnGuard<'_> {
        // A panic mid-statement leaves at worst an aborted transaction, rolled back on the
        // next BEGIN's error path; the connection stays usable.
        ConnGuard(self.conn.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Runs `f` in one read-only, repeatable-read transaction (on a new connection if the
    /// store's broke, e.g. PostgreSQL restarted).
    fn read<T: Send>(
        &self,
        f: impl FnOnce(&mut read::Reader<'_>) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let slot: &mut Option<Conn> = &mut guard;
        off_runtime(move || {
            // Readers check what they see against this process's writer.
            let watch = self.read_only.then_some(&*self.shared);
            let conn = slot.as_mut().ok_or(StoreError::ReadOnly)?;
            if let Err(error) = catch_up::begin_read(conn, watch) {
                // A writer's store reconnects on its next commit instead (which replays).
                if !commit::is_disconnect(&error) || !self.read_only {
                    return Err(error);
                }
                *slot = Some(self.fresh_conn()?);
                catch_up::begin_read(slot.as_mut().ok_or(StoreError::ReadOnly)?, watch)?;
            }
            let conn = slot.as_mut().ok_or(StoreError::ReadOnly)?;
            let mut reader = read::Reader { conn };
            let out = f(&mut reader);
            let end = reader.conn.client.batch_execute(match out {
                Ok(_) => "COMMIT",
                Err(_) => "ROLLBACK",
            });
            let out = out?;
            end?;
            Ok(out)
        })
    }
}

/// The connection of a store (see [`PgStore::conn`]).
struct ConnGuard<'a>(MutexGuard<'a, Option<Conn>>);

impl std::ops::Deref for ConnGuard<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("the connection is only taken by drop"))
    }
}

impl std::ops::DerefMut for ConnGuard<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.0
            .as_mut()
            .unwrap_or_else(|| unreachable!("the connection is only taken by drop"))
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(wake) = &self.wake {
            self.shared.unset_wake(wake);
        }
        // The client closes through its own runtime, which must not run on an async worker
        // (a store dropped by an actor, or by a failed project start).
        off_runtime(|| self.settle());
        let conn = match self.conn.get_mut() {
            Ok(conn) => conn.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(conn) = conn {
            off_runtime(move || drop(conn));
        }
    }
}

impl ProjectStore for PgStore {
    fn apply(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        if writes.is_empty() {
            return Ok(());
        }
        off_runtime(move || self.commit(writes))
    }

    fn load(&self) -> Result<ProjectSnapshot, StoreError> {
        self.read(|r| r.snapshot())
    }

    fn load_run(&self, run: RunId) -> Result<Option<RunSnapshot>, StoreError> {
        self.read(|r| r.run_snapshot(run))
    }

    fn manifests(&self, environment: EnvironmentId) -> Result<Vec<TargetDefinition>, StoreError> {
        self.read(|r| r.manifests(environment))
    }

    fn list_runs(
        &self,
        environment: Option<EnvironmentId>,
        limit: usize,
    ) -> Result<Vec<RunSummary>, StoreError> {
        self.read(|r| r.list_runs(environment, limit))
    }

    fn set_wake(&mut self, wake: StoreWake) {
        if !self.read_only {
            self.shared.set_wake(&wake);
            self.wake = Some(wake);
        }
    }

    fn maintain(&mut self) {
        if !self.read_only && self.shared.take_settle_request() {
            off_runtime(|| self.settle_now());
        }
    }
}

impl PgStore {
    /// The project's pending inputs, oldest first (at most `limit`).
    pub fn pending_inputs(&self, limit: u32) -> Result<Vec<crate::model::InputRecord>, StoreError> {
        self.read(|r| run_data::pending_inputs(r.conn, limit))
    }

    /// One input, if it exists.
    pub fn input(
        &self,
        id: crate::model::InputId,
    ) -> Result<Option<crate::model::InputRecord>, StoreError> {
        self.read(|r| run_data::input(r.conn, id))
    }

    /// One page of the filtered runs list (see [`crate::store::run_list`]).
    pub fn query_runs(
        &self,
        filter: &crate::store::run_list::RunFilter,
        limit: usize,
    ) -> Result<crate::store::run_list::RunPage, StoreError> {
        self.read(|r| {
            let mut source = run_list::PgRuns { conn: r.conn };
            crate::store::run_list::query_page(
                &mut source,
                filter,
                limit,
                crate::store::run_list::MAX_SCANNED,
            )
        })
    }

    /// The run with steps `offset..offset + limit`, paged in SQL (see
    /// `SqliteStore::load_run_page`), plus the run's number of steps.
    pub fn load_run_page(
        &self,
        run: RunId,
        offset: usize,
        limit: usize,
        view: Option<&[EnvironmentId]>,
    ) -> Result<Option<(RunSnapshot, usize)>, StoreError> {
        self.read(|r| r.run_page(run, offset, limit, view))
    }

    /// The keys of every blob the project's recorded values reference.
    pub fn referenced_blob_keys(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        self.read(|r| run_data::referenced_blob_keys(r.conn))
    }

    /// The cron schedules, by id.
    pub fn schedules(&self) -> Result<Vec<crate::model::Schedule>, StoreError> {
        self.read(|r| r.schedules())
    }

    /// The per-target concurrency limits of an environment, by target.
    pub fn concurrency_limits(
        &self,
        environment: EnvironmentId,
    ) -> Result<Vec<(crate::model::TargetRef, u32)>, StoreError> {
        self.read(|r| r.concurrency_limits(environment))
    }
}

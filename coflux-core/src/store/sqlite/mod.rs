//! The SQLite implementation of [`ProjectStore`]: one database file per project, in WAL mode.
//!
//! Writes are applied in one `BEGIN IMMEDIATE` transaction per [`ProjectStore::apply`] call,
//! with cached prepared statements. Every row that belongs to another row (a step to its run,
//! an execution to its step, an assignment or a result to its execution) is only inserted when
//! its owner exists; otherwise the batch fails with a constraint error (extended code
//! `SQLITE_CONSTRAINT_FOREIGNKEY`) and nothing of it is applied. Recording a second result for
//! an execution is ignored; re-assigning an execution replaces its assignment.
//!
//! Each run's row says whether it has executions without a result (`runs.open_executions > 0`),
//! updated in the same transaction, so [`ProjectStore::load`] finds the active runs through a
//! partial index instead of scanning executions. The exact counts live in memory
//! ([`OpenRuns`]): the row is only written when a run becomes active or idle, so a commit does
//! not dirty the run's page for every execution.
//!
//! New databases use 1 KiB pages: a commit writes every page it changed to the WAL, and the
//! typical commit (a step, its execution and assignment; or a result) changes two or three
//! pages, so smaller pages mean proportionally fewer bytes written and checksummed per commit.
//!
//! Every connection to a project database is opened with `open_connection`, through SQLite's
//! `unix-excl` VFS (on Unix): the process holds one exclusive lock on the file while any of its
//! connections is open, and the locks between its own connections (the writer, readers, the
//! checkpointer) are taken in process memory, with the WAL index in heap memory rather than a
//! `-shm` file. A commit then makes no locking system calls (it made six `fcntl` calls
//! before), and a second process cannot open a project that a running server or embedded
//! program serves (it gets [`StoreError::InUse`]) instead of writing next to it.

use crate::store::rows::{execution_from_row, step_from_row};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, ffi, params};
use serde::de::DeserializeOwned;

use super::open_runs::{OpenRuns, Transition};
use super::{
    CacheEntry, CacheOutcome, Durability, ProjectSnapshot, ProjectStore, RunSnapshot, RunSummary,
    StoreError, Write, schema,
};
use crate::model::{
    Environment, EnvironmentId, EnvironmentName, EnvironmentState, ExecutionId, ExecutionResult,
    ResultKind, RunId, RunRecord, Schedule, StepId, TargetDefinition, TargetKind, TargetRef,
};

/// The columns a step is read from (see [`super::rows::step_from_row`]).
macro_rules! step_columns {
    () => {
        "number, parent_execution, module, target, kind, arguments, options, cache_key, \
         memo_key, created_at"
    };
}

/// Executions with their results (see [`super::rows::execution_from_row`]); a `WHERE`
/// clause follows.
macro_rules! executions_select {
    () => {
        "SELECT e.step_number, e.attempt, e.environment_id, e.execute_after, e.created_at, \
         e.worker_id, e.assigned_at, r.result, r.created_at, e.dependencies \
         FROM executions e \
         LEFT JOIN results r ON r.run_id = e.run_id AND r.step_number = e.step_number \
         AND r.attempt = e.attempt"
    };
}

mod run_page;

/// The page size of new databases, in bytes.
const PAGE_SIZE: i64 = 1024;

/// How long a connection waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The same while a database is being opened for writing.
const OPEN_BUSY_TIMEOUT: Duration = Duration::from_millis(500);

/// The VFS of project databases (see the module documentation).
#[cfg(unix)]
const PROJECT_VFS: Option<&str> = Some("unix-excl");
#[cfg(not(unix))]
const PROJECT_VFS: Option<&str> = None;

/// Opens a connection to a project database with `flags`. Every connection to a project
/// database in this process must be opened here: connections through different VFSs would
/// not see each other's locks and WAL index.
pub(crate) fn open_connection(path: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
    match PROJECT_VFS {
        Some(vfs) => Connection::open_with_flags_and_vfs(path, flags, vfs),
        None => Connection::open_with_flags(path, flags),
    }
}

/// [`StoreError::InUse`] for a database that another process holds (its exclusive lock
/// outlasted the busy timeout); other errors unchanged.
fn in_use(error: StoreError) -> StoreError {
    match &error {
        StoreError::Sqlite(e) if e.sqlite_error_code() == Some(ffi::ErrorCode::DatabaseBusy) => {
            StoreError::InUse
        }
        _ => error,
    }
}

/// A project's database.
///
/// A store opened with [`SqliteStore::open`] reads and writes; one opened with
/// [`SqliteStore::open_reader`] only reads (its [`ProjectStore::apply`] fails), so inspection
/// can run on other threads while the writer commits (WAL readers never block the writer).
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    read_only: bool,
    open_runs: OpenRuns,
}

impl SqliteStore {
    /// The connection, for read queries kept in their own modules (e.g. [`super::run_list`]).
    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Opens (creating it and its parent directories if needed) the database at `path` for
    /// reading and writing, in WAL mode with `synchronous` set by `durability`, and brings its
    /// schema up to date.
    pub fn open(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)?;
        }
        let mut conn = open_connection(path, OpenFlags::default())?;
        configure(&conn, durability).map_err(in_use)?;
        schema::migrations()
            .to_latest(&mut conn)
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(Self {
            conn,
            path: path.to_owned(),
            read_only: false,
            open_runs: OpenRuns::default(),
        })
    }

    /// Opens an existing, up-to-date database for reading only (for inspection from another
    /// thread than the writer's). [`ProjectStore::apply`] on it fails.
    pub fn open_reader(path: &Path) -> Result<Self, StoreError> {
        if !path.exists() {
            return Err(StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no database at {}", path.display()),
            )));
        }
        // Read-write at the file level so the WAL index can be shared; `query_only` refuses
        // any change through this connection.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = open_connection(path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        set_journal_mode_wal(&conn).map_err(in_use)?;
        conn.pragma_update(None, "query_only", true)?;
        conn.set_prepared_statement_cache_capacity(32);
        let pending = schema::migrations()
            .pending_migrations(&conn)
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        if pending != 0 {
            return Err(StoreError::Migration(format!(
                "{} is not initialised or not up to date ({pending} migrations pending)",
                path.display()
            )));
        }
        Ok(Self {
            conn,
            path: path.to_owned(),
            read_only: true,
            open_runs: OpenRuns::default(),
        })
    }

    /// Opens a private in-memory database (for tests; nothing is persisted).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let mut conn = Connection::open_in_memory()?;
        conn.set_prepared_statement_cache_capacity(64);
        schema::migrations()
            .to_latest(&mut conn)
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(Self {
            conn,
            path: PathBuf::from(":memory:"),
            read_only: false,
            open_runs: OpenRuns::default(),
        })
    }

    /// The database file's path (`:memory:` for an in-memory store).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this store was opened with [`SqliteStore::open_reader`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn load_environments(&self) -> Result<Vec<Environment>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, name, parent_id, state, created_at FROM environments ORDER BY id",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let name: String = row.get(1)?;
            let state: String = row.get(3)?;
            out.push(Environment {
                id: EnvironmentId(to_u32(row.get(0)?, "environment id")?),
                name: EnvironmentName::new(&name)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                parent: row
                    .get::<_, Option<i64>>(2)?
                    .map(|p| to_u32(p, "parent environment id").map(EnvironmentId))
                    .transpose()?,
                state: EnvironmentState::parse(&state)
                    .ok_or_else(|| StoreError::Corrupt(format!("environment state '{state}'")))?,
                created_at: row.get(4)?,
            });
        }
        Ok(out)
    }

    fn load_cache_entries(&self) -> Result<Vec<CacheEntry>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.cache_key, e.run_id, e.step_number, e.attempt, e.environment_id,
                    e.created_at, r.kind, r.created_at
             FROM steps s
             JOIN executions e ON e.run_id = s.run_id AND e.step_number = s.number
             LEFT JOIN results r ON r.run_id = e.run_id AND r.step_number = e.step_number
                                AND r.attempt = e.attempt
             WHERE s.cache_key IS NOT NULL AND (r.kind IS NULL OR r.kind = 'value')
             ORDER BY s.cache_key, e.run_id, e.step_number, e.attempt",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let kind: Option<String> = row.get(6)?;
            let outcome = match kind.as_deref() {
                None => CacheOutcome::Pending,
                Some("value") => CacheOutcome::Succeeded(row.get(7)?),
                Some(_) => CacheOutcome::Failed,
            };
            out.push(CacheEntry {
                key: row.get(0)?,
                execution: execution_id(row.get(1)?, row.get(2)?, row.get(3)?)?,
                environment: EnvironmentId(to_u32(row.get(4)?, "environment id")?),
                created_at: row.get(5)?,
                outcome,
            });
        }
        Ok(out)
    }

    fn load_run_snapshot(&self, run: RunId) -> Result<Option<RunSnapshot>, StoreError> {
        let run_key = run_key(run)?;
        let Some(run_record) = self.run_record(run)? else {
            return Ok(None);
        };

        let mut steps = Vec::new();
        {
            let mut stmt = self.conn.prepare_cached(concat!(
                "SELECT ",
                step_columns!(),
                " FROM steps WHERE run_id = ?1 ORDER BY number"
            ))?;
            let mut rows = stmt.query([run_key])?;
            while let Some(row) = rows.next()? {
                steps.push(step_from_row(run, row)?);
            }
        }

        let mut executions = Vec::new();
        {
            let mut stmt = self.conn.prepare_cached(concat!(
                executions_select!(),
                " WHERE e.run_id = ?1 ORDER BY e.step_number, e.attempt"
            ))?;
            let mut rows = stmt.query([run_key])?;
            while let Some(row) = rows.next()? {
                executions.push(execution_from_row(run, row)?);
            }
        }

        let mut children = Vec::new();
        {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT parent, child FROM children WHERE run_id = ?1")?;
            let mut rows = stmt.query([run_key])?;
            while let Some(row) = rows.next()? {
                let parent: String = row.get(0)?;
                let child: String = row.get(1)?;
                children.push((parse_execution(&parent)?, parse_execution(&child)?));
            }
            children.sort_unstable();
        }

        let mut calls = Vec::new();
        {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT parent, call, child FROM calls WHERE run_id = ?1")?;
            let mut rows = stmt.query([run_key])?;
            while let Some(row) = rows.next()? {
                let parent: String = row.get(0)?;
                let child: String = row.get(2)?;
                calls.push((
                    parse_execution(&parent)?,
                    to_u32(row.get(1)?, "call")?,
                    parse_execution(&child)?,
                ));
            }
        }

        let checkpoints = super::checkpoints::load(&self.conn, run)?;
        let streams = super::streams::load(&self.conn, run)?;
        let inputs = super::inputs::load(&self.conn, run)?;
        Ok(Some(RunSnapshot {
            run: run_record,
            steps,
            executions,
            children,
            calls,
            checkpoints,
            streams,
            inputs,
        }))
    }
}

impl SqliteStore {
    /// A run's own record, if it exists.
    fn run_record(&self, run: RunId) -> Result<Option<RunRecord>, StoreError> {
        let record = self
            .conn
            .prepare_cached(
                "SELECT environment_id, parent_execution, created_at FROM runs WHERE id = ?1",
            )?
            .query_row([run_key(run)?], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, Option<String>>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })
            .optional()?;
        let Some((environment, parent, created_at)) = record else {
            return Ok(None);
        };
        Ok(Some(RunRecord {
            id: run,
            environment: EnvironmentId(to_u32(environment, "environment id")?),
            parent_execution: parent.as_deref().map(parse_execution).transpose()?,
            created_at,
        }))
    }

    /// The project's pending inputs, oldest first (at most `limit`).
    pub fn pending_inputs(&self, limit: u32) -> Result<Vec<crate::model::InputRecord>, StoreError> {
        super::inputs::pending(&self.conn, limit)
    }

    /// One input, if it exists.
    pub fn input(
        &self,
        id: crate::model::InputId,
    ) -> Result<Option<crate::model::InputRecord>, StoreError> {
        super::inputs::get(&self.conn, id)
    }

    /// The cron schedules, by id.
    pub fn schedules(&self) -> Result<Vec<Schedule>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT definition, last_tick, missed FROM schedules ORDER BY id")?;
        let mut rows = stmt.query([])?;
        let mut schedules = Vec::new();
        while let Some(row) = rows.next()? {
            let mut schedule: Schedule = from_json(&row.get::<_, String>(0)?, "schedule")?;
            schedule.last_tick = row.get(1)?;
            schedule.missed = to_u64(row.get(2)?, "missed ticks")?;
            schedules.push(schedule);
        }
        Ok(schedules)
    }

    /// The per-target concurrency limits of an environment, by target.
    pub fn concurrency_limits(
        &self,
        environment: EnvironmentId,
    ) -> Result<Vec<(TargetRef, u32)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT module, target, max_running FROM concurrency_limits
             WHERE environment_id = ?1 ORDER BY module, target",
        )?;
        let mut rows = stmt.query([i64::from(environment.0)])?;
        let mut limits = Vec::new();
        while let Some(row) = rows.next()? {
            limits.push((
                TargetRef::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?),
                to_u32(row.get(2)?, "concurrency limit")?,
            ));
        }
        Ok(limits)
    }
}

impl ProjectStore for SqliteStore {
    fn apply(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                ffi::Error::new(ffi::SQLITE_READONLY),
                Some("this store was opened read-only".to_owned()),
            )));
        }
        if writes.is_empty() {
            return Ok(());
        }
        // BEGIN and COMMIT as cached statements (a `Transaction` parses both every time, which
        // shows in a chain of small commits); any failure rolls the whole batch back.
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let open_runs = &mut self.open_runs;
        let applied = writes
            .iter()
            .try_for_each(|write| apply_one(&self.conn, open_runs, write))
            .and_then(|()| {
                self.conn.prepare_cached("COMMIT")?.execute([])?;
                Ok(())
            });
        match &applied {
            Ok(()) => self.open_runs.commit(),
            Err(_) => {
                self.open_runs.rollback();
                if !self.conn.is_autocommit()
                    && let Err(e) = self.conn.execute_batch("ROLLBACK")
                {
                    tracing::warn!(error = %e, "could not roll back a failed batch");
                }
            }
        }
        applied
    }

    fn load(&self) -> Result<ProjectSnapshot, StoreError> {
        // One read transaction, so the snapshot is consistent even while a writer commits.
        self.conn.execute_batch("BEGIN DEFERRED")?;
        let snapshot = self.load_in_transaction();
        let end = self.conn.execute_batch("COMMIT");
        let snapshot = snapshot?;
        end?;
        Ok(snapshot)
    }

    fn load_run(&self, run: RunId) -> Result<Option<RunSnapshot>, StoreError> {
        self.conn.execute_batch("BEGIN DEFERRED")?;
        let snapshot = self.load_run_snapshot(run);
        let end = self.conn.execute_batch("COMMIT");
        let snapshot = snapshot?;
        end?;
        Ok(snapshot)
    }

    fn manifests(&self, environment: EnvironmentId) -> Result<Vec<TargetDefinition>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT definition FROM manifests WHERE environment_id = ?1 ORDER BY module, target",
        )?;
        let mut rows = stmt.query([i64::from(environment.0)])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let text: String = row.get(0)?;
            out.push(from_json(&text, "manifest")?);
        }
        Ok(out)
    }

    fn list_runs(
        &self,
        environment: Option<EnvironmentId>,
        limit: usize,
    ) -> Result<Vec<RunSummary>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // CROSS JOIN fixes the loop order: walk runs newest first, look up each initial step.
        const COLUMNS: &str = "SELECT r.id, r.environment_id, r.created_at, s.module, s.target
             FROM runs r CROSS JOIN steps s ON s.run_id = r.id AND s.number = 1";
        let mut stmt;
        let mut rows = match environment {
            Some(env) => {
                stmt = self.conn.prepare_cached(&format!(
                    "{COLUMNS} WHERE r.environment_id = ?1 ORDER BY r.id DESC LIMIT ?2"
                ))?;
                stmt.query(params![i64::from(env.0), limit])?
            }
            None => {
                stmt = self
                    .conn
                    .prepare_cached(&format!("{COLUMNS} ORDER BY r.id DESC LIMIT ?1"))?;
                stmt.query([limit])?
            }
        };
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(RunSummary {
                id: RunId(to_u64(row.get(0)?, "run id")?),
                environment: EnvironmentId(to_u32(row.get(1)?, "environment id")?),
                created_at: row.get(2)?,
                target: TargetRef {
                    module: row.get(3)?,
                    name: row.get(4)?,
                },
            });
        }
        Ok(out)
    }
}

impl SqliteStore {
    fn load_in_transaction(&self) -> Result<ProjectSnapshot, StoreError> {
        let environments = self.load_environments()?;
        let max_run: i64 = self
            .conn
            .prepare_cached(
                "SELECT max(COALESCE((SELECT MAX(id) FROM runs), 0),
                            COALESCE((SELECT max_run_id FROM deleted_runs WHERE id = 1), 0))",
            )?
            .query_row([], |row| row.get(0))?;
        let next_run = to_u64(max_run, "run id")? + 1;
        let active_ids: Vec<i64> = {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT id FROM runs WHERE open_executions > 0 ORDER BY id")?;
            stmt.query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()?
        };
        let mut active_runs = Vec::with_capacity(active_ids.len());
        for id in active_ids {
            if let Some(run) = self.load_run_snapshot(RunId(to_u64(id, "run id")?))? {
                active_runs.push(run);
            }
        }
        let cache_entries = self.load_cache_entries()?;
        let idempotency_keys = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT environment_id, key, run_id, created_at FROM idempotency_keys",
            )?;
            let mut rows = stmt.query([])?;
            let mut keys = Vec::new();
            while let Some(row) = rows.next()? {
                keys.push((
                    EnvironmentId(to_u32(row.get(0)?, "environment id")?),
                    row.get::<_, String>(1)?,
                    RunId(to_u64(row.get(2)?, "run id")?),
                    row.get::<_, i64>(3)?,
                ));
            }
            keys
        };
        let concurrency_limits = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT environment_id, module, target, max_running FROM concurrency_limits",
            )?;
            let mut rows = stmt.query([])?;
            let mut limits = Vec::new();
            while let Some(row) = rows.next()? {
                limits.push((
                    EnvironmentId(to_u32(row.get(0)?, "environment id")?),
                    TargetRef::new(row.get::<_, String>(1)?, row.get::<_, String>(2)?),
                    to_u32(row.get(3)?, "concurrency limit")?,
                ));
            }
            limits
        };
        let schedules = self.schedules()?;
        Ok(ProjectSnapshot {
            environments,
            next_run,
            active_runs,
            cache_entries,
            idempotency_keys,
            concurrency_limits,
            schedules,
        })
    }
}

/// Applies one write inside an open transaction.
fn apply_one(conn: &Connection, open_runs: &mut OpenRuns, write: &Write) -> Result<(), StoreError> {
    match write {
        Write::CreateEnvironment(env) => {
            conn.prepare_cached(
                "INSERT INTO environments (id, name, parent_id, state, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                i64::from(env.id.0),
                env.name.as_str(),
                env.parent.map(|p| i64::from(p.0)),
                env.state.as_str(),
                env.created_at,
            ])?;
        }
        Write::PutIdempotencyKey {
            environment,
            key,
            run,
            at,
        } => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO idempotency_keys (environment_id, key, run_id, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![i64::from(environment.0), key, run_key(*run)?, at])?;
        }
        Write::PutManifests {
            environment,
            definitions,
            at,
        } => {
            let mut stmt = conn.prepare_cached(
                "INSERT OR REPLACE INTO manifests (environment_id, module, target, definition, registered_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for definition in definitions {
                stmt.execute(params![
                    i64::from(environment.0),
                    definition.target.module,
                    definition.target.name,
                    to_json(definition)?,
                    at,
                ])?;
            }
        }
        Write::PutSchedule(schedule) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO schedules (id, definition, last_tick, missed)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                schedule.id,
                to_json(schedule.as_ref())?,
                schedule.last_tick,
                i64::try_from(schedule.missed).unwrap_or(i64::MAX)
            ])?;
        }
        Write::DeleteSchedule { id } => {
            conn.prepare_cached("DELETE FROM schedules WHERE id = ?1")?
                .execute([id])?;
        }
        Write::ScheduleTicked {
            id,
            last_tick,
            missed,
        } => {
            conn.prepare_cached("UPDATE schedules SET last_tick = ?2, missed = ?3 WHERE id = ?1")?
                .execute(params![
                    id,
                    last_tick,
                    i64::try_from(*missed).unwrap_or(i64::MAX)
                ])?;
        }
        Write::ArchiveModule {
            environment,
            module,
        } => {
            conn.prepare_cached("DELETE FROM manifests WHERE environment_id = ?1 AND module = ?2")?
                .execute(params![i64::from(environment.0), module])?;
        }
        Write::PutConcurrencyLimit {
            environment,
            target,
            max,
        } => match max {
            Some(max) => {
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO concurrency_limits
                         (environment_id, module, target, max_running)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    i64::from(environment.0),
                    target.module,
                    target.name,
                    max
                ])?;
            }
            None => {
                conn.prepare_cached(
                    "DELETE FROM concurrency_limits
                     WHERE environment_id = ?1 AND module = ?2 AND target = ?3",
                )?
                .execute(params![
                    i64::from(environment.0),
                    target.module,
                    target.name
                ])?;
            }
        },
        Write::SetEnvironmentState { id, state } => {
            let changed = conn
                .prepare_cached("UPDATE environments SET state = ?2 WHERE id = ?1")?
                .execute(params![i64::from(id.0), state.as_str()])?;
            if changed == 0 {
                return Err(missing(format!("unknown environment {id}")));
            }
        }
        Write::SetEnvironmentParent { id, parent } => {
            let changed = conn
                .prepare_cached("UPDATE environments SET parent_id = ?2 WHERE id = ?1")?
                .execute(params![i64::from(id.0), parent.map(|p| i64::from(p.0))])?;
            if changed == 0 {
                return Err(missing(format!("unknown environment {id}")));
            }
        }
        Write::CreateRun(run) => {
            conn.prepare_cached(
                "INSERT INTO runs (id, environment_id, parent_execution, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                run_key(run.id)?,
                i64::from(run.environment.0),
                run.parent_execution.map(|e| e.to_string()),
                run.created_at,
            ])?;
        }
        Write::CreateStep(step) => {
            let arguments = to_json(&step.arguments)?;
            let options = to_json(&step.options)?;
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO steps (run_id, number, parent_execution, module, target, kind,
                                        arguments, options, cache_key, memo_key, created_at)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11
                     WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?1)",
                )?
                .execute(params![
                    run_key(step.id.run)?,
                    i64::from(step.id.number),
                    step.parent_execution.map(|e| e.to_string()),
                    step.target.module,
                    step.target.name,
                    step.kind.as_str(),
                    arguments,
                    options,
                    step.cache_key,
                    step.memo_key,
                    step.created_at,
                ])?;
            if inserted == 0 {
                return Err(missing(format!("step {} of unknown run", step.id)));
            }
        }
        Write::CreateExecution {
            id,
            environment,
            execute_after,
            created_at,
            dependencies,
        } => {
            let (run, step, attempt) = execution_key(*id)?;
            let dependencies = (!dependencies.is_empty())
                .then(|| to_json(dependencies))
                .transpose()?;
            // Counted before the insert, so a count read from the database excludes it.
            let transition = open_runs.opened(run, || open_executions(conn, run))?;
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO executions (run_id, step_number, attempt, environment_id,
                                             execute_after, created_at, dependencies)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
                     WHERE EXISTS (SELECT 1 FROM steps WHERE run_id = ?1 AND number = ?2)",
                )?
                .execute(params![
                    run,
                    step,
                    attempt,
                    i64::from(environment.0),
                    execute_after,
                    created_at,
                    dependencies
                ])?;
            if inserted == 0 {
                return Err(missing(format!("execution {id} of unknown step")));
            }
            mark_run(conn, run, transition)?;
        }
        Write::LinkChild { parent, child } => {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO children (run_id, parent, child) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![
                run_key(parent.run())?,
                parent.to_string(),
                child.to_string()
            ])?;
        }
        Write::PutCall {
            parent,
            call,
            child,
        } => {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO calls (run_id, parent, call, child) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                run_key(parent.run())?,
                parent.to_string(),
                i64::from(*call),
                child.to_string()
            ])?;
        }
        Write::Assign {
            execution,
            worker,
            at,
        } => {
            let (run, step, attempt) = execution_key(*execution)?;
            let inserted = conn
                .prepare_cached(
                    "UPDATE executions SET worker_id = ?4, assigned_at = ?5
                     WHERE run_id = ?1 AND step_number = ?2 AND attempt = ?3",
                )?
                .execute(params![
                    run,
                    step,
                    attempt,
                    to_i64(worker.0, "worker id")?,
                    at
                ])?;
            if inserted == 0 {
                return Err(missing(format!(
                    "assignment of unknown execution {execution}"
                )));
            }
        }
        Write::PutCheckpoints {
            step,
            environment,
            state,
            at,
        } => super::checkpoints::put(conn, *step, *environment, state, *at)?,
        Write::PutStream {
            stream,
            position,
            producer,
            buffer,
            timeout_ms,
            opened_at,
        } => super::streams::put(
            conn,
            *stream,
            *position,
            *producer,
            *buffer,
            *timeout_ms,
            *opened_at,
        )?,
        Write::PutStreamItem {
            stream,
            sequence,
            value,
            at,
        } => super::streams::put_item(conn, *stream, *sequence, value, *at)?,
        Write::CloseStream {
            stream,
            closure,
            at,
        } => super::streams::close(conn, *stream, closure, *at)?,
        Write::PutInput(input) => super::inputs::put(conn, input)?,
        Write::DeleteRuns(runs) => {
            super::retention::delete_runs(conn, runs)?;
        }
        Write::RecordResult {
            execution,
            result,
            at,
        } => {
            let (run, step, attempt) = execution_key(*execution)?;
            let text = to_json(result)?;
            let has_result = |conn: &Connection| -> Result<bool, StoreError> {
                Ok(conn
                    .prepare_cached(
                        "SELECT 1 FROM results
                         WHERE run_id = ?1 AND step_number = ?2 AND attempt = ?3",
                    )?
                    .exists(params![run, step, attempt])?)
            };
            let inserted = conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO results (run_id, step_number, attempt, kind, result,
                                                    created_at)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6
                     WHERE EXISTS (SELECT 1 FROM executions
                                   WHERE run_id = ?1 AND step_number = ?2 AND attempt = ?3)",
                )?
                .execute(params![
                    run,
                    step,
                    attempt,
                    result_kind_str(result.kind()),
                    text,
                    at
                ])?;
            if inserted == 1 {
                // Counted after the insert: a count read from the database now excludes this
                // execution, so it is read as if before (plus one).
                let transition = open_runs
                    .closed(run, || Ok::<_, StoreError>(open_executions(conn, run)? + 1))?;
                mark_run(conn, run, transition)?;
            } else if !has_result(conn)? {
                return Err(missing(format!("result of unknown execution {execution}")));
            }
        }
    }
    Ok(())
}

/// How many of `run`'s executions have no result, as committed so far in this transaction.
fn open_executions(conn: &Connection, run: i64) -> Result<u64, StoreError> {
    let count: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM executions e
             WHERE e.run_id = ?1
               AND NOT EXISTS (SELECT 1 FROM results r WHERE r.run_id = e.run_id
                               AND r.step_number = e.step_number AND r.attempt = e.attempt)",
        )?
        .query_row([run], |row| row.get(0))?;
    to_u64(count, "open executions")
}

/// Records on a run's row that it became active or idle.
fn mark_run(conn: &Connection, run: i64, transition: Option<Transition>) -> Result<(), StoreError> {
    let open = match transition {
        None => return Ok(()),
        Some(Transition::Activated) => 1,
        Some(Transition::Idled) => 0,
    };
    conn.prepare_cached("UPDATE runs SET open_executions = ?2 WHERE id = ?1")?
        .execute([run, open])?;
    Ok(())
}

/// Sets the pragmas every read-write connection uses.
fn configure(conn: &Connection, durability: Durability) -> Result<(), StoreError> {
    // The first statements take the file's lock: a database that another process holds fails
    // fast (a lock held in this process is released within milliseconds).
    conn.busy_timeout(OPEN_BUSY_TIMEOUT)?;
    // Only takes effect on a new, empty database (see the module documentation).
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    set_journal_mode_wal(conn)?;
    let synchronous = match durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    // 16 MiB of page cache (negative: KiB) keeps the hot part of the tables in memory.
    conn.pragma_update(None, "cache_size", -16384)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(64);
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(())
}

fn set_journal_mode_wal(conn: &Connection) -> Result<(), StoreError> {
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if mode.eq_ignore_ascii_case("wal") {
        Ok(())
    } else {
        Err(StoreError::Io(std::io::Error::other(format!(
            "could not enable WAL mode (journal_mode is {mode})"
        ))))
    }
}

impl SqliteStore {
    /// Stops this connection from checkpointing the WAL inside its commits (use with a
    /// [`Checkpointer`], so that checkpoints never stall a commit).
    pub fn disable_auto_checkpoint(&self) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(())
    }
}

/// Checkpoints a database's WAL from its own thread and connection (`PASSIVE`: it never blocks
/// the writer), so that the writer's commits never pay for a checkpoint. Stops when dropped.
#[derive(Debug)]
pub struct Checkpointer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Checkpointer {
    /// Starts checkpointing `path` every `interval`.
    pub fn spawn(path: &Path, interval: std::time::Duration) -> Result<Self, StoreError> {
        use std::sync::atomic::Ordering;
        let conn = open_connection(path, OpenFlags::default())?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        std::thread::Builder::new()
            .name("coflux-checkpointer".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(interval);
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                    }
                }
            })?;
        Ok(Self { stop })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Measures the physical commit rate of the disk under `path`: `commits` single-row INSERT
/// transactions into a scratch table of a new database at `path` (which must not exist), with
/// the same pragmas as [`SqliteStore::open`]. Returns commits per second. The reference figure
/// for group commit: the writer can apply many batches per physical commit.
pub fn raw_commit_benchmark(
    path: &Path,
    durability: Durability,
    commits: u32,
) -> Result<f64, StoreError> {
    if path.exists() {
        return Err(StoreError::Io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} already exists", path.display()),
        )));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    let mut conn = open_connection(path, OpenFlags::default())?;
    configure(&conn, durability)?;
    conn.execute_batch("CREATE TABLE scratch (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")?;
    let started = Instant::now();
    for i in 0..commits {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached("INSERT INTO scratch (id, payload) VALUES (?1, ?2)")?
            .execute(params![i64::from(i), "R1:1:1"])?;
        tx.commit()?;
    }
    let seconds = started.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
    Ok(f64::from(commits) / seconds)
}

/// A constraint error for a write that refers to a row that does not exist.
fn missing(message: String) -> StoreError {
    StoreError::Sqlite(rusqlite::Error::SqliteFailure(
        ffi::Error::new(ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
        Some(message),
    ))
}

pub(in crate::store) fn result_kind_str(kind: ResultKind) -> &'static str {
    match kind {
        ResultKind::Value => "value",
        ResultKind::Error => "error",
        ResultKind::Abandoned => "abandoned",
        ResultKind::Crashed => "crashed",
        ResultKind::Timeout => "timeout",
        ResultKind::Cancelled => "cancelled",
        ResultKind::Cached => "cached",
        ResultKind::Deferred => "deferred",
        ResultKind::Suspended => "suspended",
        ResultKind::Spawned => "spawned",
        ResultKind::Recurred => "recurred",
    }
}

pub(in crate::store) fn parse_target_kind(text: &str) -> Result<TargetKind, StoreError> {
    match text {
        "workflow" => Ok(TargetKind::Workflow),
        "task" => Ok(TargetKind::Task),
        other => Err(StoreError::Corrupt(format!("target kind '{other}'"))),
    }
}

pub(in crate::store) fn run_key(run: RunId) -> Result<i64, StoreError> {
    to_i64(run.0, "run id")
}

pub(in crate::store) fn execution_key(id: ExecutionId) -> Result<(i64, i64, i64), StoreError> {
    Ok((
        run_key(id.run())?,
        i64::from(id.step.number),
        i64::from(id.attempt),
    ))
}

pub(in crate::store) fn execution_id(
    run: i64,
    step: i64,
    attempt: i64,
) -> Result<ExecutionId, StoreError> {
    let step = StepId {
        run: RunId(to_u64(run, "run id")?),
        number: to_u32(step, "step number")?,
    };
    Ok(step.execution(to_u32(attempt, "attempt")?))
}

pub(in crate::store) fn parse_execution(text: &str) -> Result<ExecutionId, StoreError> {
    text.parse()
        .map_err(|e: crate::model::IdParseError| StoreError::Corrupt(e.to_string()))
}

pub(in crate::store) fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} out of range")))
}

pub(in crate::store) fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} out of range")))
}

pub(in crate::store) fn to_u32(value: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} out of range")))
}

pub(in crate::store) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

pub(in crate::store) fn from_json<T: DeserializeOwned>(
    text: &str,
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

impl SqliteStore {
    /// The keys of every blob the project's recorded values reference: step arguments
    /// (`steps.arguments`), execution results (`results.result`) and the arguments of cron
    /// schedules. A value references the blob holding it ([`crate::model::Value::Blob`]) and
    /// the blob of each of its fragment references ([`crate::model::Reference::Fragment`]).
    ///
    /// Rows are streamed and decoded one at a time, so memory stays bounded apart from the
    /// returned set. A row that does not decode is an error, never skipped: a caller deciding
    /// what may be deleted must not mistake an unreadable reference for an absent one.
    pub fn referenced_blob_keys(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut keys = std::collections::HashSet::new();
        let mut steps = self.conn.prepare("SELECT arguments FROM steps")?;
        let mut rows = steps.query([])?;
        while let Some(row) = rows.next()? {
            let text: String = row.get(0)?;
            let arguments: Vec<crate::model::Value> = from_json(&text, "step arguments")?;
            for value in &arguments {
                collect_blob_keys(value, &mut keys);
            }
        }
        let mut results = self.conn.prepare("SELECT result FROM results")?;
        let mut rows = results.query([])?;
        while let Some(row) = rows.next()? {
            let text: String = row.get(0)?;
            if let ExecutionResult::Value { value } = from_json(&text, "result")? {
                collect_blob_keys(&value, &mut keys);
            }
        }
        let mut schedules = self.conn.prepare("SELECT definition FROM schedules")?;
        let mut rows = schedules.query([])?;
        while let Some(row) = rows.next()? {
            let text: String = row.get(0)?;
            let schedule: Schedule = from_json(&text, "schedule")?;
            for value in &schedule.arguments {
                collect_blob_keys(value, &mut keys);
            }
        }
        super::checkpoints::blob_keys(&self.conn, &mut keys)?;
        super::streams::blob_keys(&self.conn, &mut keys)?;
        Ok(keys)
    }
}

/// Adds the keys of the blobs `value` references (its own blob and its fragments') to `keys`.
pub fn collect_blob_keys(
    value: &crate::model::Value,
    keys: &mut std::collections::HashSet<String>,
) {
    if let crate::model::Value::Blob { key, .. } = value {
        keys.insert(key.clone());
    }
    for reference in value.references() {
        if let crate::model::Reference::Fragment { blob_key, .. } = reference {
            keys.insert(blob_key.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CacheConfig, ErrorInfo, Millis, ParamSelection, StepOptions, Value};
    use crate::model::{StepRecord, WorkerId};
    use serde_json::json;

    fn env(id: u32, name: &str) -> Environment {
        Environment {
            id: EnvironmentId(id),
            name: EnvironmentName::new(name).unwrap(),
            parent: None,
            state: EnvironmentState::Active,
            created_at: 1_000,
        }
    }

    fn exec(run: u64, step: u32, attempt: u32) -> ExecutionId {
        StepId {
            run: RunId(run),
            number: step,
        }
        .execution(attempt)
    }

    fn step(
        run: u64,
        number: u32,
        parent: Option<ExecutionId>,
        cache_key: Option<&str>,
    ) -> StepRecord {
        StepRecord {
            id: StepId {
                run: RunId(run),
                number,
            },
            parent_execution: parent,
            target: TargetRef::new("app.flows", if number == 1 { "main" } else { "task" }),
            kind: if number == 1 {
                TargetKind::Workflow
            } else {
                TargetKind::Task
            },
            arguments: vec![Value::raw(json!({"n": number})), Value::null()],
            options: StepOptions {
                cache: cache_key.map(|_| CacheConfig {
                    params: ParamSelection::All(true),
                    max_age_ms: Some(60_000),
                    namespace: None,
                    version: None,
                }),
                ..StepOptions::default()
            },
            cache_key: cache_key.map(str::to_owned),
            memo_key: None,
            created_at: 2_000 + i64::from(number),
        }
    }

    fn create_execution(id: ExecutionId, at: Millis) -> Write {
        Write::CreateExecution {
            id,
            environment: EnvironmentId(1),
            execute_after: None,
            created_at: at,
            dependencies: Default::default(),
        }
    }

    /// A run with a workflow step (assigned, running) and a cached task step (finished).
    fn sample_run(run: u64) -> Vec<Write> {
        let root = exec(run, 1, 1);
        let child = exec(run, 2, 1);
        vec![
            Write::CreateRun(RunRecord {
                id: RunId(run),
                environment: EnvironmentId(1),
                parent_execution: None,
                created_at: 2_000,
            }),
            Write::CreateStep(Box::new(step(run, 1, None, None))),
            create_execution(root, 2_001),
            Write::Assign {
                execution: root,
                worker: WorkerId(7),
                at: 2_002,
            },
            Write::CreateStep(Box::new(step(run, 2, Some(root), Some("key-a")))),
            create_execution(child, 2_003),
            Write::Assign {
                execution: child,
                worker: WorkerId(7),
                at: 2_004,
            },
            Write::RecordResult {
                execution: child,
                result: ExecutionResult::Value {
                    value: Value::raw(json!([1, 2])),
                },
                at: 2_005,
            },
            Write::LinkChild {
                parent: root,
                child,
            },
        ]
    }

    fn open_temp() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(&dir.path().join("p/project.sqlite"), Durability::Normal).unwrap();
        (dir, store)
    }

    #[test]
    fn store_sqlite_round_trips_a_run() {
        let (_dir, mut store) = open_temp();
        store
            .apply(&[Write::CreateEnvironment(env(1, "production"))])
            .unwrap();
        store.apply(&sample_run(1)).unwrap();

        let snapshot = store.load().unwrap();
        assert_eq!(snapshot.environments, vec![env(1, "production")]);
        assert_eq!(snapshot.next_run, 2);
        assert_eq!(snapshot.active_runs.len(), 1);
        let run = &snapshot.active_runs[0];
        assert_eq!(run.run.id, RunId(1));
        assert_eq!(
            run.steps,
            vec![
                step(1, 1, None, None),
                step(1, 2, Some(exec(1, 1, 1)), Some("key-a"))
            ]
        );
        assert_eq!(run.executions.len(), 2);
        assert_eq!(run.executions[0].id, exec(1, 1, 1));
        assert_eq!(run.executions[0].assignment, Some((WorkerId(7), 2_002)));
        assert_eq!(run.executions[0].result, None);
        assert_eq!(run.executions[1].created_at, 2_003);
        assert_eq!(
            run.executions[1].result,
            Some((
                ExecutionResult::Value {
                    value: Value::raw(json!([1, 2]))
                },
                2_005
            ))
        );
        assert_eq!(run.children, vec![(exec(1, 1, 1), exec(1, 2, 1))]);
        assert_eq!(
            snapshot.cache_entries,
            vec![CacheEntry {
                key: "key-a".into(),
                execution: exec(1, 2, 1),
                environment: EnvironmentId(1),
                created_at: 2_003,
                outcome: CacheOutcome::Succeeded(2_005),
            }]
        );
        assert_eq!(store.load_run(RunId(1)).unwrap().as_ref(), Some(run));
        assert_eq!(store.load_run(RunId(9)).unwrap(), None);
    }

    #[test]
    fn store_sqlite_finished_runs_are_not_active() {
        let (_dir, mut store) = open_temp();
        store
            .apply(&[Write::CreateEnvironment(env(1, "production"))])
            .unwrap();
        store.apply(&sample_run(1)).unwrap();
        store.apply(&sample_run(2)).unwrap();
        store
            .apply(&[Write::RecordResult {
                execution: exec(1, 1, 1),
                result: ExecutionResult::Error {
                    error: ErrorInfo::new("E", "boom"),
                    retry: None,
                },
                at: 3_000,
            }])
            .unwrap();
        let snapshot = store.load().unwrap();
        assert_eq!(snapshot.next_run, 3);
        let active: Vec<_> = snapshot.active_runs.iter().map(|r| r.run.id).collect();
        assert_eq!(active, vec![RunId(2)]);
        // The finished run can still be read.
        let run = store.load_run(RunId(1)).unwrap().unwrap();
        assert!(run.executions.iter().all(|e| e.result.is_some()));
    }

    #[test]
    fn store_sqlite_cache_entries_report_pending_and_skip_failures() {
        let (_dir, mut store) = open_temp();
        store
            .apply(&[Write::CreateEnvironment(env(1, "production"))])
            .unwrap();
        let mut writes = sample_run(1);
        writes.truncate(6); // step 2 created, not finished
        store.apply(&writes).unwrap();
        assert_eq!(
            store.load().unwrap().cache_entries[0].outcome,
            CacheOutcome::Pending
        );
        store
            .apply(&[Write::RecordResult {
                execution: exec(1, 2, 1),
                result: ExecutionResult::Cancelled,
                at: 5,
            }])
            .unwrap();
        assert!(store.load().unwrap().cache_entries.is_empty());
    }

    #[test]
    fn store_sqlite_duplicate_result_is_ignored() {
        let (_dir, mut store) = open_temp();
        store
            .apply(&[Write::CreateEnvironment(env(1, "production"))])
            .unwrap();
        store.apply(&sample_run(1)).unwrap();
        let root = exec(1, 1, 1);
        let first = Write::RecordResult {
            execution: root,
            result: ExecutionResult::Cancelled,
            at: 10,
        };
        let second = Write::RecordResult {
            execution: root,
            result: ExecutionResult::Value {
                value: Value::null(),
            },
            at: 11,
        };
        store.apply(&[first]).unwrap();
        store.apply(&[second.clone(), second]).unwrap();
        let run = store.load_run(RunId(1)).unwrap().unwrap();
        assert_eq!(
            run.executions[0].result,
            Some((ExecutionResult::Cancelled, 10))
        );
        // The open-execution count did not go negative or stay positive.
        assert!(store.load().unwrap().active_runs.is_empty());
        let open: i64 = store
            .conn
            .query_row("SELECT open_executions FROM runs WHERE id = 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(open, 0);
    }

    #[test]
    fn store_sqlite_failed_batch_applies_nothing() {
        let (_dir, mut store) = open_temp();
        store
            .apply(&[Write::CreateEnvironment(env(1, "production"))])
            .unwrap();
        let mut writes = sample_run(1);
        // A result for an execution that does not exist fails the whole batch.
        writes.push(Write::RecordResult {
            execution: exec(1, 9, 1),
            result: ExecutionResult::Cancelled,
            at: 1,
        });
        let err = store.apply(&writes).unwrap_err();
        assert!(
            matches!(&err, StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation),
            "{err:?}"
        );
        assert_eq!(store.load_run(RunId(1)).unwrap(), None);
        let snapshot = store.load().unwrap();
        assert_eq!(snapshot.next_run, 1);
        assert!(snapshot.active_runs.is_empty() && snapshot.cache_entries.is_empty());

        // Duplicate primary keys fail too, and leave the earlier writes of the batch undone.
        store.apply(&sample_run(1)).unwrap();
        let err = store
            .apply(&[
                Write::CreateEnvironment(env(2, "staging")),
                Write::CreateRun(RunRecord {
                    id: RunId(1),
                    environment: EnvironmentId(1),
                    parent_execution: None,
                    created_at: 0,
                }),
            ])
            .unwrap_err();
        assert!(matches!(err, StoreError::Sqlite(_)));
        assert_eq!(store.load().unwrap().environments.len(), 1);

        // Other references to missing rows.
        for bad in [
            Write::SetEnvironmentState {
                id: EnvironmentId(5),
                state: EnvironmentState::Paused,
            },
            Write::CreateStep(Box::new(step(4, 1, None, None))),
            create_execution(exec(1, 5, 1), 0),
            Write::Assign {
                execution: exec(1, 1, 2),
                worker: WorkerId(1),
                at: 0,
            },
        ] {
            assert!(store.apply(std::slice::from_ref(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn store_sqlite_environment_state_and_listing() {
        let (_dir, mut store) = open_temp();
        let mut staging = env(2, "staging");
        staging.parent = Some(EnvironmentId(1));
        store
            .apply(&[
                Write::CreateEnvironment(env(1, "production")),
                Write::CreateEnvironment(staging.clone()),
                Write::SetEnvironmentState {
                    id: EnvironmentId(2),
                    state: EnvironmentState::Paused,
                },
            ])
            .unwrap();
        staging.state = EnvironmentState::Paused;
        assert_eq!(
            store.load().unwrap().environments,
            vec![env(1, "production"), staging]
        );

        for run in 1..=5u64 {
            let mut writes = sample_run(run);
            if let Write::CreateRun(r) = &mut writes[0] {
                r.environment = EnvironmentId(if run % 2 == 0 { 2 } else { 1 });
                r.created_at = 100 + run as i64;
            }
            store.apply(&writes).unwrap();
        }
        let all = store.list_runs(None, 3).unwrap();
        assert_eq!(
            all.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![RunId(5), RunId(4), RunId(3)]
        );
        assert_eq!(all[0].target, TargetRef::new("app.flows", "main"));
        assert_eq!(all[0].created_at, 105);
        let staging_runs = store.list_runs(Some(EnvironmentId(2)), 10).unwrap();
        assert_eq!(
            staging_runs.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![RunId(4), RunId(2)]
        );
        assert!(
            staging_runs
                .iter()
                .all(|r| r.environment == EnvironmentId(2))
        );
    }

    #[test]
    fn store_sqlite_data_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("project.sqlite");
        {
            let mut store = SqliteStore::open(&path, Durability::Full).unwrap();
            store
                .apply(&[Write::CreateEnvironment(env(1, "production"))])
                .unwrap();
            store.apply(&sample_run(1)).unwrap();
        }
        let expected = {
            let reader = SqliteStore::open_reader(&path).unwrap();
            reader.load().unwrap()
        };
        let store = SqliteStore::open(&path, Durability::Normal).unwrap();
        let snapshot = store.load().unwrap();
        assert_eq!(snapshot, expected);
        assert_eq!(snapshot.active_runs.len(), 1);
        assert_eq!(snapshot.active_runs[0].executions.len(), 2);
        assert_eq!(snapshot.next_run, 2);
    }

    #[test]
    fn store_sqlite_reader_sees_commits_and_refuses_writes() {
        let (dir, mut store) = open_temp();
        let mut reader = SqliteStore::open_reader(&dir.path().join("p/project.sqlite")).unwrap();
        assert!(reader.is_read_only());
        store
            .apply(&[Write::CreateEnvironment(env(1, "production"))])
            .unwrap();
        store.apply(&sample_run(1)).unwrap();
        assert!(reader.load_run(RunId(1)).unwrap().is_some());
        assert!(
            reader
                .apply(&[Write::CreateEnvironment(env(2, "x"))])
                .is_err()
        );
        assert!(SqliteStore::open_reader(&dir.path().join("missing.sqlite")).is_err());
    }

    #[test]
    fn store_sqlite_in_memory_store_works() {
        let mut store = SqliteStore::open_in_memory().unwrap();
        store
            .apply(&[Write::CreateEnvironment(env(1, "production"))])
            .unwrap();
        store.apply(&sample_run(3)).unwrap();
        assert_eq!(store.load().unwrap().next_run, 4);
    }

    #[test]
    fn store_sqlite_raw_commit_benchmark_runs() {
        let dir = tempfile::tempdir().unwrap();
        let rate =
            raw_commit_benchmark(&dir.path().join("raw.sqlite"), Durability::Normal, 50).unwrap();
        assert!(rate > 0.0);
        assert!(
            raw_commit_benchmark(&dir.path().join("raw.sqlite"), Durability::Normal, 1).is_err()
        );
    }

    fn finish(execution: ExecutionId) -> Write {
        Write::RecordResult {
            execution,
            result: ExecutionResult::Cancelled,
            at: 3_000,
        }
    }

    fn active(store: &SqliteStore) -> Vec<RunId> {
        let snapshot = store.load().unwrap();
        snapshot.active_runs.iter().map(|r| r.run.id).collect()
    }

    #[test]
    fn store_sqlite_run_activity_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("project.sqlite");
        let mut store = SqliteStore::open(&path, Durability::Normal).unwrap();
        store
            .apply(&[Write::CreateEnvironment(env(1, "production"))])
            .unwrap();
        // Run 1 has two open executions (the root and a retry of the child).
        let mut writes = sample_run(1);
        writes.push(create_execution(exec(1, 2, 2), 2_010));
        store.apply(&writes).unwrap();
        drop(store);

        // A new process: the counts are read back from the executions.
        let mut store = SqliteStore::open(&path, Durability::Normal).unwrap();
        assert_eq!(active(&store), vec![RunId(1)]);
        store.apply(&[finish(exec(1, 2, 2))]).unwrap();
        assert_eq!(active(&store), vec![RunId(1)], "the root is still open");
        // A failed batch (its second write refers to nothing) changes no count.
        let failed = store.apply(&[finish(exec(1, 1, 1)), finish(exec(1, 9, 1))]);
        assert!(failed.is_err());
        assert_eq!(active(&store), vec![RunId(1)]);
        store.apply(&[finish(exec(1, 1, 1))]).unwrap();
        assert!(active(&store).is_empty());
        // A re-run makes it active again.
        store
            .apply(&[create_execution(exec(1, 1, 2), 4_000)])
            .unwrap();
        assert_eq!(active(&store), vec![RunId(1)]);
    }

    #[test]
    fn store_sqlite_migration_keeps_assignments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("project.sqlite");
        {
            // A database as version 6 left it, with an assignment in its own table.
            let mut conn = Connection::open(&path).unwrap();
            schema::migrations().to_version(&mut conn, 6).unwrap();
            conn.execute_batch(
                "INSERT INTO environments VALUES (1, 'production', NULL, 'active', 1);
                 INSERT INTO runs VALUES (1, 1, NULL, 1, 1);
                 INSERT INTO steps VALUES (1, 1, NULL, 'm', 't', 'workflow', '[]', '{}',
                                           NULL, NULL, 1);
                 INSERT INTO executions VALUES (1, 1, 1, 1, NULL, 1, NULL);
                 INSERT INTO assignments VALUES (1, 1, 1, 42, 5);",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path, Durability::Normal).unwrap();
        let run = store.load_run(RunId(1)).unwrap().unwrap();
        assert_eq!(run.executions[0].assignment, Some((WorkerId(42), 5)));
        assert_eq!(active(&store), vec![RunId(1)]);
    }

    #[test]
    fn store_sqlite_new_databases_use_small_pages() {
        let (_dir, store) = open_temp();
        let size: i64 = store
            .conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(size, PAGE_SIZE);
    }
}

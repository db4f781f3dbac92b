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

use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, ffi, params};

use super::open_runs::OpenRuns;
use super::{
    Durability, ProjectSnapshot, ProjectStore, RunSnapshot, RunSummary, StoreError, Write, schema,
};
use crate::model::{EnvironmentId, RunId, TargetDefinition, TargetRef};
use apply::apply_one;
use connection::{BUSY_TIMEOUT, configure, in_use, set_journal_mode_wal};

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

mod apply;
mod connection;
mod load;
mod project;
mod queries;
#[cfg(any(test, feature = "test-util"))]
mod raw_commit;
mod retention;
mod run_page;
#[cfg(test)]
mod tests;

pub(in crate::store) use super::codec::{
    execution_id, execution_key, from_json, parse_execution, result_kind_str, run_key, to_i64,
    to_json, to_u32, to_u64,
};
pub use connection::Checkpointer;
pub(crate) use connection::open_connection;
#[cfg(any(test, feature = "test-util"))]
pub use raw_commit::raw_commit_benchmark;

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

    /// Runs a cached query with `params` and decodes every row with `decode`, in order.
    pub(super) fn query_all<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        mut decode: impl FnMut(&rusqlite::Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let mut rows = stmt.query(params)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(decode(row)?);
        }
        Ok(out)
    }

    /// The database file's path (`:memory:` for an in-memory store).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this store was opened with [`SqliteStore::open_reader`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
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
        let sql =
            "SELECT definition FROM manifests WHERE environment_id = ?1 ORDER BY module, target";
        self.query_all(sql, [i64::from(environment.0)], |row| {
            from_json(&row.get::<_, String>(0)?, "manifest")
        })
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

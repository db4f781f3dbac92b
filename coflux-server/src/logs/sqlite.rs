//! Logs in SQLite: one `logs.sqlite` per project, next to its orchestration database (the
//! schema is in [`super::schema`]). The writer holds one connection per project; reads use
//! their own connections (WAL readers never wait for the writer), from a small pool per
//! project.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use coflux_core::model::{ExecutionId, ProjectName, RunId, Value};
use coflux_core::store::Durability;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::backend::{
    LogBackend, LogReader, LogRow, LogWriter, Prepared, PreparedMetric, decode_values,
    filter_numbers, to_i64,
};
use super::metrics::{self, RunMetrics};
use super::record::{LogError, LogFilter, StoredLog};
use super::schema;

/// The log database's file name, next to the project's orchestration database.
pub const LOGS_FILE: &str = "logs.sqlite";

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle read connections kept per project.
const IDLE_READERS: usize = 4;
/// Templates remembered per project by the writer (to skip the lookup).
pub(super) const TEMPLATE_CACHE: usize = 4096;

/// Where the log database of `project` lives in `data_dir`.
pub fn logs_db_path(data_dir: &Path, project: &ProjectName) -> PathBuf {
    coflux_core::store::catalogue::project_db_path(data_dir, project).with_file_name(LOGS_FILE)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The log databases of a data directory.
pub(super) struct SqliteLogs {
    data_dir: PathBuf,
    durability: Durability,
    readers: Mutex<HashMap<ProjectName, Vec<Connection>>>,
}

impl SqliteLogs {
    pub(super) fn new(data_dir: PathBuf, durability: Durability) -> Self {
        Self {
            data_dir,
            durability,
            readers: Mutex::new(HashMap::new()),
        }
    }

    /// A read connection to the project's log database, or `None` if it has none (yet).
    fn take_reader(&self, project: &ProjectName) -> Result<Option<Connection>, LogError> {
        if let Some(conn) = lock(&self.readers).get_mut(project).and_then(Vec::pop) {
            return Ok(Some(conn));
        }
        let path = logs_db_path(&self.data_dir, project);
        if !path.exists() {
            return Ok(None);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "query_only", true)?;
        let pending = schema::migrations()
            .pending_migrations(&conn)
            .map_err(|e| LogError::Migration(e.to_string()))?;
        if pending != 0 {
            // The writer is creating it right now: nothing to read yet.
            return Ok(None);
        }
        Ok(Some(conn))
    }

    fn return_reader(&self, project: &ProjectName, conn: Connection) {
        let mut readers = lock(&self.readers);
        let idle = readers.entry(project.clone()).or_default();
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
    }
}

impl LogBackend for SqliteLogs {
    fn writer(&self) -> Box<dyn LogWriter> {
        Box::new(SqliteLogWriter {
            data_dir: self.data_dir.clone(),
            durability: self.durability,
            connections: HashMap::new(),
        })
    }

    fn read(
        &self,
        project: &ProjectName,
        f: &mut (dyn FnMut(&mut dyn LogReader) -> Result<(), LogError> + Send),
    ) -> Result<bool, LogError> {
        let Some(conn) = self.take_reader(project)? else {
            return Ok(false);
        };
        let mut reader = SqliteReader { conn };
        let result = f(&mut reader);
        self.return_reader(project, reader.conn);
        result.map(|()| true)
    }

    fn projects(&self) -> Result<Vec<ProjectName>, LogError> {
        let dir = self.data_dir.join("projects");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut projects = Vec::new();
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(ProjectName::new) else {
                continue;
            };
            if let Ok(name) = name
                && entry.path().join(LOGS_FILE).is_file()
            {
                projects.push(name);
            }
        }
        projects.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(projects)
    }

    fn describe(&self) -> String {
        format!("sqlite in {}", self.data_dir.display())
    }
}

/// A read connection to one project's log database.
struct SqliteReader {
    conn: Connection,
}

impl LogReader for SqliteReader {
    fn page(
        &mut self,
        run: RunId,
        filter: Option<LogFilter>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredLog>, LogError> {
        read_page(&self.conn, run, filter, after, limit)
    }

    fn metrics(
        &mut self,
        run: RunId,
        execution: Option<ExecutionId>,
    ) -> Result<RunMetrics, LogError> {
        metrics::read(&self.conn, run, execution)
    }

    fn values(
        &mut self,
        hint: Option<&str>,
        f: &mut (dyn FnMut(&Value) + Send),
    ) -> Result<(), LogError> {
        let pattern = hint.map_or_else(|| "%".to_owned(), |h| format!("%{h}%"));
        let mut statement = self.conn.prepare(
            "SELECT id, values_json FROM messages WHERE values_json IS NOT NULL \
             AND values_json LIKE ?1",
        )?;
        let mut rows = statement.query([pattern])?;
        while let Some(row) = rows.next()? {
            for value in decode_values(row.get(0)?, row.get(1)?)?.values() {
                f(value);
            }
        }
        Ok(())
    }
}

fn read_page(
    conn: &Connection,
    run: RunId,
    filter: Option<LogFilter>,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<StoredLog>, LogError> {
    const SELECT: &str = "SELECT m.id, m.step_number, m.attempt, m.timestamp, m.level, \
        t.template, m.values_json FROM messages m LEFT JOIN templates t ON t.id = m.template_id";
    let run_id = to_i64(run.0, "run id")?;
    let after = to_i64(after.unwrap_or(0), "cursor")?;
    let limit = to_i64(limit as u64, "limit")?;
    let (step, attempt) = filter_numbers(filter);
    let sql = match filter {
        None => format!("{SELECT} WHERE m.run_id = ?1 AND m.id > ?2 ORDER BY m.id LIMIT ?3"),
        Some(LogFilter::Step(_)) => format!(
            "{SELECT} WHERE m.run_id = ?1 AND m.id > ?2 AND m.step_number = ?4 \
             ORDER BY m.id LIMIT ?3"
        ),
        Some(LogFilter::Execution(_)) => format!(
            "{SELECT} WHERE m.run_id = ?1 AND m.id > ?2 AND m.step_number = ?4 \
             AND m.attempt = ?5 ORDER BY m.id LIMIT ?3"
        ),
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = match filter {
        None => stmt.query(params![run_id, after, limit])?,
        Some(LogFilter::Step(_)) => stmt.query(params![run_id, after, limit, step])?,
        Some(LogFilter::Execution(_)) => {
            stmt.query(params![run_id, after, limit, step, attempt])?
        }
    };
    let mut logs = Vec::new();
    while let Some(row) = rows.next()? {
        logs.push(decode_row(run, row)?);
    }
    Ok(logs)
}

fn decode_row(run: RunId, row: &rusqlite::Row<'_>) -> Result<StoredLog, LogError> {
    let row = LogRow {
        cursor: row.get(0)?,
        step: row.get(1)?,
        attempt: row.get(2)?,
        timestamp: row.get(3)?,
        level: row.get(4)?,
        template: row.get(5)?,
        values: row.get(6)?,
    };
    row.decode(run)
}

/// One project's database, as the writer holds it.
struct ProjectDb {
    conn: Connection,
    templates: HashMap<String, i64>,
}

/// The writer thread's connections, one per project.
struct SqliteLogWriter {
    data_dir: PathBuf,
    durability: Durability,
    connections: HashMap<ProjectName, ProjectDb>,
}

impl SqliteLogWriter {
    fn db(&mut self, project: &ProjectName) -> Result<&mut ProjectDb, LogError> {
        if !self.connections.contains_key(project) {
            let path = logs_db_path(&self.data_dir, project);
            let conn = open_writer(&path, self.durability)?;
            tracing::debug!(project = %project, path = %path.display(), "log database opened");
            self.connections.insert(
                project.clone(),
                ProjectDb {
                    conn,
                    templates: HashMap::new(),
                },
            );
        }
        self.connections
            .get_mut(project)
            .ok_or_else(|| LogError::Corrupt("log database vanished".into()))
    }

    fn exists(&self, project: &ProjectName) -> bool {
        logs_db_path(&self.data_dir, project).exists()
    }
}

impl LogWriter for SqliteLogWriter {
    fn write_logs(
        &mut self,
        project: &ProjectName,
        records: &[Prepared],
    ) -> Result<Vec<u64>, LogError> {
        let db = self.db(project)?;
        let tx = db.conn.transaction()?;
        let mut cursors = Vec::with_capacity(records.len());
        {
            let mut find = tx.prepare_cached("SELECT id FROM templates WHERE template = ?1")?;
            let mut add = tx.prepare_cached("INSERT INTO templates (template) VALUES (?1)")?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO messages (run_id, step_number, attempt, timestamp, level, \
                 template_id, values_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for Prepared {
                record,
                values_json,
            } in records
            {
                let template_id = match &record.template {
                    None => None,
                    Some(text) => Some(match db.templates.get(text) {
                        Some(id) => *id,
                        None => {
                            let id = match find
                                .query_row([text], |row| row.get::<_, i64>(0))
                                .optional()?
                            {
                                Some(id) => id,
                                None => {
                                    add.execute([text])?;
                                    tx.last_insert_rowid()
                                }
                            };
                            if db.templates.len() >= TEMPLATE_CACHE {
                                db.templates.clear();
                            }
                            db.templates.insert(text.clone(), id);
                            id
                        }
                    }),
                };
                let execution = record.execution;
                insert.execute(params![
                    to_i64(execution.run().0, "run id")?,
                    execution.step.number,
                    execution.attempt,
                    to_i64(record.timestamp_ms, "timestamp")?,
                    record.level,
                    template_id,
                    values_json,
                ])?;
                cursors.push(
                    u64::try_from(tx.last_insert_rowid())
                        .map_err(|_| LogError::Corrupt("negative row id".into()))?,
                );
            }
        }
        match tx.commit() {
            Ok(()) => Ok(cursors),
            Err(error) => {
                // Templates added in the failed transaction are not in the database.
                db.templates.clear();
                Err(error.into())
            }
        }
    }

    fn write_metrics(
        &mut self,
        project: &ProjectName,
        records: Vec<PreparedMetric>,
    ) -> Result<(), LogError> {
        let db = self.db(project)?;
        let tx = db.conn.transaction()?;
        metrics::write(&tx, records)?;
        Ok(tx.commit()?)
    }

    fn prune(
        &mut self,
        project: &ProjectName,
        older_than_ms: i64,
        limit: usize,
    ) -> Result<u64, LogError> {
        if !self.exists(project) {
            return Ok(0);
        }
        let db = self.db(project)?;
        let tx = db.conn.transaction()?;
        let deleted = tx.execute(
            "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE timestamp < ?1 \
             ORDER BY timestamp LIMIT ?2)",
            params![older_than_ms, to_i64(limit as u64, "limit")?],
        )?;
        let last_batch = deleted < limit;
        if last_batch {
            metrics::prune(&tx, older_than_ms, limit)?;
            tx.execute(
                "DELETE FROM templates WHERE NOT EXISTS \
                 (SELECT 1 FROM messages m WHERE m.template_id = templates.id)",
                [],
            )?;
        }
        tx.commit()?;
        if last_batch {
            // Some cached template ids may have been deleted.
            db.templates.clear();
        }
        Ok(deleted as u64)
    }

    fn delete_runs(&mut self, project: &ProjectName, runs: &[RunId]) -> Result<u64, LogError> {
        if !self.exists(project) {
            return Ok(0);
        }
        let db = self.db(project)?;
        let tx = db.conn.transaction()?;
        let mut deleted = 0;
        for run in runs {
            let run = to_i64(run.0, "run id")?;
            deleted += tx.execute("DELETE FROM messages WHERE run_id = ?1", params![run])?;
            for table in ["metric_points", "metric_definitions"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE run_id = ?1"),
                    params![run],
                )?;
            }
        }
        tx.commit()?;
        Ok(deleted as u64)
    }

    fn reset(&mut self, project: &ProjectName) {
        self.connections.remove(project);
    }
}

fn open_writer(path: &Path, durability: Durability) -> Result<Connection, LogError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(LogError::Io(std::io::Error::other(format!(
            "could not enable WAL mode on {} (journal_mode is {mode})",
            path.display()
        ))));
    }
    let synchronous = match durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.set_prepared_statement_cache_capacity(16);
    schema::migrations()
        .to_latest(&mut conn)
        .map_err(|e| LogError::Migration(e.to_string()))?;
    Ok(conn)
}

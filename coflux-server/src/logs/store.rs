//! [`LogStore`]: one SQLite database of logs per project, written by one dedicated thread.
//!
//! [`LogStore::append`] validates a batch on the caller's thread and queues it; it never waits
//! for the disk. The writer thread blocks for the first queued batch, takes everything already
//! queued behind it (up to [`LogStoreOptions::max_batch`] records), and commits it in one
//! transaction per project (group commit: a burst becomes one transaction, a lone record is
//! written at once). Committed records are then published to the followers of their run.
//! Logs are best-effort: a failed commit is reported through `tracing` and its records are lost.
//!
//! Reads use their own connections (WAL readers never wait for the writer), taken from a small
//! pool per project; [`LogStore::query`] runs them on the blocking thread pool.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use coflux_core::model::{ExecutionId, ProjectName, RunId, StepId, Value};
use coflux_core::store::Durability;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::{broadcast, oneshot};

use super::metrics::{self, MetricRecord, RunMetrics};
use super::record::{LogError, LogFilter, LogPage, LogRecord, StoredLog};
use super::schema;

/// The log database's file name, next to the project's orchestration database.
pub const LOGS_FILE: &str = "logs.sqlite";

/// The most logs one query returns.
pub const MAX_PAGE: usize = 1000;

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle read connections kept per project.
const IDLE_READERS: usize = 4;
/// Templates remembered per project by the writer (to skip the lookup).
const TEMPLATE_CACHE: usize = 4096;

/// Tuning of a [`LogStore`].
#[derive(Debug, Clone)]
pub struct LogStoreOptions {
    /// `synchronous` of the log databases (logs are best-effort; `Normal` is plenty).
    pub durability: Durability,
    /// The most records committed in one transaction.
    pub max_batch: usize,
    /// The most records queued and not yet written; beyond it `append` fails with
    /// [`LogError::Overloaded`].
    pub max_pending: usize,
    /// How many live records a follower may fall behind before it re-reads from the database.
    pub follower_buffer: usize,
    /// The most records one pruning transaction deletes (pruning runs in such batches, so
    /// appends are never held up for long).
    pub prune_batch: usize,
}

impl Default for LogStoreOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Normal,
            max_batch: 500,
            max_pending: 100_000,
            follower_buffer: 1024,
            prune_batch: 5_000,
        }
    }
}

/// A snapshot of the writer's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogStats {
    /// Transactions committed.
    pub commits: u64,
    /// Records committed.
    pub records: u64,
    /// Transactions that failed (their records were lost).
    pub failures: u64,
}

type RunKey = (ProjectName, RunId);
type Followers = Mutex<HashMap<RunKey, broadcast::Sender<Arc<StoredLog>>>>;

/// A record that passed validation, with its values already encoded.
struct Prepared {
    record: LogRecord,
    values_json: Option<String>,
}

/// A metric record that passed validation, with its definition's JSON text.
type PreparedMetric = (MetricRecord, Option<String>);

enum Command {
    Append {
        project: ProjectName,
        records: Vec<Prepared>,
    },
    Prune {
        project: ProjectName,
        older_than_ms: i64,
        limit: usize,
        reply: oneshot::Sender<Result<u64, LogError>>,
    },
    Flush {
        reply: oneshot::Sender<()>,
    },
    DeleteRuns {
        project: ProjectName,
        runs: Vec<RunId>,
        reply: oneshot::Sender<Result<u64, LogError>>,
    },
    Metrics {
        project: ProjectName,
        records: Vec<PreparedMetric>,
    },
}

/// State shared by the handles and the writer thread.
struct Shared {
    data_dir: PathBuf,
    followers: Followers,
    pending: AtomicUsize,
    stats: Mutex<LogStats>,
}

struct Inner {
    shared: Arc<Shared>,
    options: LogStoreOptions,
    sender: Mutex<Option<mpsc::Sender<Command>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    readers: Mutex<HashMap<ProjectName, Vec<Connection>>>,
}

/// The server's log store: one `logs.sqlite` per project, next to its orchestration database.
/// Cheap to clone (all clones share one writer thread); the writer finishes what is queued and
/// stops when the last clone is dropped.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("data_dir", &self.inner.shared.data_dir)
            .field("stats", &self.stats())
            .finish()
    }
}

/// A handle that does not keep the log store alive (for background tasks).
#[derive(Clone)]
pub(super) struct WeakLogStore(std::sync::Weak<Inner>);

impl WeakLogStore {
    /// The store, unless every [`LogStore`] clone has been dropped.
    pub(super) fn upgrade(&self) -> Option<LogStore> {
        self.0.upgrade().map(|inner| LogStore { inner })
    }
}

/// Where the log database of `project` lives in `data_dir`.
pub fn logs_db_path(data_dir: &Path, project: &ProjectName) -> PathBuf {
    coflux_core::store::catalogue::project_db_path(data_dir, project).with_file_name(LOGS_FILE)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the data consistent, so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LogStore {
    /// Starts a log store over `data_dir` with default options.
    pub fn open(data_dir: impl Into<PathBuf>) -> Result<Self, LogError> {
        Self::open_with(data_dir, LogStoreOptions::default())
    }

    /// Starts a log store over `data_dir` (the server's data directory) and its writer thread.
    /// Databases are created on a project's first append.
    pub fn open_with(
        data_dir: impl Into<PathBuf>,
        options: LogStoreOptions,
    ) -> Result<Self, LogError> {
        let shared = Arc::new(Shared {
            data_dir: data_dir.into(),
            followers: Mutex::new(HashMap::new()),
            pending: AtomicUsize::new(0),
            stats: Mutex::new(LogStats::default()),
        });
        let (sender, receiver) = mpsc::channel();
        let writer = Writer {
            shared: Arc::clone(&shared),
            options: options.clone(),
            connections: HashMap::new(),
        };
        let thread = std::thread::Builder::new()
            .name("coflux-logs".into())
            .spawn(move || writer.run(&receiver))?;
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                options,
                sender: Mutex::new(Some(sender)),
                thread: Mutex::new(Some(thread)),
                readers: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.inner.shared.data_dir
    }

    /// The writer's counters.
    pub fn stats(&self) -> LogStats {
        *lock(&self.inner.shared.stats)
    }

    /// Queues `records` of `project` for writing and returns at once. The whole batch is
    /// refused (nothing stored) if the project name or any record is invalid, or if the writer
    /// is too far behind.
    pub fn append(&self, project: &str, records: Vec<LogRecord>) -> Result<(), LogError> {
        let project = ProjectName::new(project)?;
        if records.is_empty() {
            return Ok(());
        }
        let mut prepared = Vec::with_capacity(records.len());
        for (index, record) in records.into_iter().enumerate() {
            let values_json = record
                .validate()
                .map_err(|reason| LogError::InvalidRecord { index, reason })?;
            prepared.push(Prepared {
                record,
                values_json,
            });
        }
        let count = prepared.len();
        let shared = &self.inner.shared;
        let before = shared.pending.fetch_add(count, Ordering::AcqRel);
        if before > 0 && before + count > self.inner.options.max_pending {
            shared.pending.fetch_sub(count, Ordering::AcqRel);
            tracing::warn!(project = %project, records = count, pending = before, "log batch refused: writer overloaded");
            return Err(LogError::Overloaded { pending: before });
        }
        self.send(Command::Append {
            project,
            records: prepared,
        })
        .inspect_err(|_| {
            shared.pending.fetch_sub(count, Ordering::AcqRel);
        })
    }

    /// Queues metric definitions and points of `project` for writing, like [`append`]
    /// (validated here, refused as a whole, never waiting for the disk).
    ///
    /// [`append`]: Self::append
    pub fn append_metrics(
        &self,
        project: &str,
        records: Vec<MetricRecord>,
    ) -> Result<(), LogError> {
        let project = ProjectName::new(project)?;
        if records.is_empty() {
            return Ok(());
        }
        let mut prepared = Vec::with_capacity(records.len());
        for (index, record) in records.into_iter().enumerate() {
            let json = record
                .validate()
                .map_err(|reason| LogError::InvalidRecord { index, reason })?;
            prepared.push((record, json));
        }
        let count = prepared.len();
        let shared = &self.inner.shared;
        let before = shared.pending.fetch_add(count, Ordering::AcqRel);
        if before > 0 && before + count > self.inner.options.max_pending {
            shared.pending.fetch_sub(count, Ordering::AcqRel);
            tracing::warn!(project = %project, records = count, pending = before, "metric batch refused: writer overloaded");
            return Err(LogError::Overloaded { pending: before });
        }
        self.send(Command::Metrics {
            project,
            records: prepared,
        })
        .inspect_err(|_| {
            shared.pending.fetch_sub(count, Ordering::AcqRel);
        })
    }

    /// Reads the metrics of `run` (only `execution`'s, if given) on the blocking thread pool.
    /// A project without a log database gives no metrics.
    pub async fn query_metrics(
        &self,
        project: &str,
        run: RunId,
        execution: Option<ExecutionId>,
    ) -> Result<RunMetrics, LogError> {
        let project = ProjectName::new(project)?;
        if let Some(execution) = execution
            && execution.run() != run
        {
            return Err(LogError::FilterOutsideRun {
                filter: execution.to_string(),
                run,
            });
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let Some(conn) = this.take_reader(&project)? else {
                return Ok(RunMetrics {
                    run_id: run.to_string(),
                    executions: Vec::new(),
                    truncated: false,
                });
            };
            let result = metrics::read(&conn, run, execution);
            this.return_reader(&project, conn);
            result
        })
        .await
        .map_err(|e| LogError::Io(std::io::Error::other(e.to_string())))?
    }

    /// Waits until everything appended before this call is committed (and published).
    pub async fn flush(&self) -> Result<(), LogError> {
        let (reply, done) = oneshot::channel();
        self.send(Command::Flush { reply })?;
        done.await.map_err(|_| LogError::Stopped)
    }

    /// Deletes the records of `project` older than `older_than_ms` (Unix milliseconds) and the
    /// templates no record uses any more; returns how many records were deleted. Runs on the
    /// writer thread in transactions of at most [`LogStoreOptions::prune_batch`] records, each
    /// queued behind what is already queued, so appends interleave with a long prune.
    pub async fn prune(&self, project: &str, older_than_ms: u64) -> Result<u64, LogError> {
        let project = ProjectName::new(project)?;
        let batch = self.inner.options.prune_batch.max(1);
        let mut total = 0;
        loop {
            let deleted = self.prune_batch(&project, older_than_ms, batch).await?;
            total += deleted;
            if deleted < batch as u64 {
                return Ok(total);
            }
        }
    }

    /// One pruning transaction: deletes at most `limit` records older than `older_than_ms`,
    /// and, when fewer were left, the templates no record uses any more.
    async fn prune_batch(
        &self,
        project: &ProjectName,
        older_than_ms: u64,
        limit: usize,
    ) -> Result<u64, LogError> {
        let (reply, done) = oneshot::channel();
        self.send(Command::Prune {
            project: project.clone(),
            older_than_ms: i64::try_from(older_than_ms).unwrap_or(i64::MAX),
            limit,
            reply,
        })?;
        done.await.map_err(|_| LogError::Stopped)?
    }

    /// Deletes every log record and metric of `runs` (deleted runs) in one transaction on the
    /// writer thread; returns how many log records went.
    pub async fn delete_runs(
        &self,
        project: &ProjectName,
        runs: &[RunId],
    ) -> Result<u64, LogError> {
        if runs.is_empty() {
            return Ok(0);
        }
        let (reply, done) = oneshot::channel();
        self.send(Command::DeleteRuns {
            project: project.clone(),
            runs: runs.to_vec(),
            reply,
        })?;
        done.await.map_err(|_| LogError::Stopped)?
    }

    /// A handle that does not keep the store (and its writer thread) alive.
    pub(super) fn downgrade(&self) -> WeakLogStore {
        WeakLogStore(Arc::downgrade(&self.inner))
    }

    /// Follows the logs of a run: the receiver gets every record of the run committed after
    /// this call (possibly also some committed shortly before; skip cursors already seen).
    /// A receiver that falls more than [`LogStoreOptions::follower_buffer`] records behind gets
    /// `RecvError::Lagged` and should re-read from the database after its last cursor.
    pub fn subscribe(
        &self,
        project: &str,
        run: RunId,
    ) -> Result<broadcast::Receiver<Arc<StoredLog>>, LogError> {
        let project = ProjectName::new(project)?;
        let mut followers = lock(&self.inner.shared.followers);
        followers.retain(|_, sender| sender.receiver_count() > 0);
        let sender = followers
            .entry((project, run))
            .or_insert_with(|| broadcast::channel(self.inner.options.follower_buffer.max(1)).0);
        Ok(sender.subscribe())
    }

    /// Reads logs of `run` after `after` (exclusive), in cursor order, at most `limit`
    /// (capped at [`MAX_PAGE`]), on the blocking thread pool. A project without logs gives an
    /// empty page.
    pub async fn query(
        &self,
        project: &str,
        run: RunId,
        filter: Option<LogFilter>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<LogPage, LogError> {
        let project = ProjectName::new(project)?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            this.query_blocking(&project, run, filter, after, limit)
        })
        .await
        .map_err(|e| LogError::Io(std::io::Error::other(e.to_string())))?
    }

    /// As [`query`](Self::query), on the calling thread (do not call it from an async worker).
    pub fn query_blocking(
        &self,
        project: &ProjectName,
        run: RunId,
        filter: Option<LogFilter>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<LogPage, LogError> {
        if let Some(filter) = filter
            && filter.run() != run
        {
            return Err(LogError::FilterOutsideRun {
                filter: match filter {
                    LogFilter::Step(step) => step.to_string(),
                    LogFilter::Execution(execution) => execution.to_string(),
                },
                run,
            });
        }
        let limit = limit.clamp(1, MAX_PAGE);
        let Some(conn) = self.take_reader(project)? else {
            return Ok(LogPage {
                logs: Vec::new(),
                cursor: after,
            });
        };
        let result = read_page(&conn, run, filter, after, limit);
        self.return_reader(project, conn);
        let logs = result?;
        tracing::debug!(project = %project, run = %run, count = logs.len(), "logs read");
        let cursor = logs.last().map(|log| log.cursor).or(after);
        Ok(LogPage { logs, cursor })
    }

    fn send(&self, command: Command) -> Result<(), LogError> {
        lock(&self.inner.sender)
            .as_ref()
            .ok_or(LogError::Stopped)?
            .send(command)
            .map_err(|_| LogError::Stopped)
    }

    /// A read connection to the project's log database, or `None` if it has none (yet).
    fn take_reader(&self, project: &ProjectName) -> Result<Option<Connection>, LogError> {
        if let Some(conn) = lock(&self.inner.readers)
            .get_mut(project)
            .and_then(Vec::pop)
        {
            return Ok(Some(conn));
        }
        let path = logs_db_path(&self.inner.shared.data_dir, project);
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
        let mut readers = lock(&self.inner.readers);
        let idle = readers.entry(project.clone()).or_default();
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued and exit.
        lock(&self.sender).take();
        if let Some(thread) = lock(&self.thread).take()
            && thread.join().is_err()
        {
            tracing::error!("the log writer thread panicked");
        }
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
    let mut logs = Vec::new();
    let mut push = |row: &rusqlite::Row<'_>| -> Result<(), LogError> {
        logs.push(decode_row(run, row)?);
        Ok(())
    };
    match filter {
        None => {
            let mut stmt = conn.prepare_cached(&format!(
                "{SELECT} WHERE m.run_id = ?1 AND m.id > ?2 ORDER BY m.id LIMIT ?3"
            ))?;
            let mut rows = stmt.query(params![run_id, after, limit])?;
            while let Some(row) = rows.next()? {
                push(row)?;
            }
        }
        Some(LogFilter::Step(step)) => {
            let mut stmt = conn.prepare_cached(&format!(
                "{SELECT} WHERE m.run_id = ?1 AND m.step_number = ?2 AND m.id > ?3 \
                 ORDER BY m.id LIMIT ?4"
            ))?;
            let mut rows = stmt.query(params![run_id, step.number, after, limit])?;
            while let Some(row) = rows.next()? {
                push(row)?;
            }
        }
        Some(LogFilter::Execution(execution)) => {
            let mut stmt = conn.prepare_cached(&format!(
                "{SELECT} WHERE m.run_id = ?1 AND m.step_number = ?2 AND m.attempt = ?3 \
                 AND m.id > ?4 ORDER BY m.id LIMIT ?5"
            ))?;
            let mut rows = stmt.query(params![
                run_id,
                execution.step.number,
                execution.attempt,
                after,
                limit
            ])?;
            while let Some(row) = rows.next()? {
                push(row)?;
            }
        }
    }
    Ok(logs)
}

fn decode_row(run: RunId, row: &rusqlite::Row<'_>) -> Result<StoredLog, LogError> {
    let cursor: i64 = row.get(0)?;
    let timestamp: i64 = row.get(3)?;
    let level: i64 = row.get(4)?;
    let values_json: Option<String> = row.get(6)?;
    let values = match values_json {
        Some(json) => serde_json::from_str::<std::collections::BTreeMap<String, Value>>(&json)
            .map_err(|e| LogError::Corrupt(format!("values of log {cursor}: {e}")))?,
        None => Default::default(),
    };
    Ok(StoredLog {
        cursor: u64::try_from(cursor).map_err(|_| LogError::Corrupt("negative cursor".into()))?,
        execution: ExecutionId {
            step: StepId {
                run,
                number: row.get(1)?,
            },
            attempt: row.get(2)?,
        },
        timestamp_ms: u64::try_from(timestamp).unwrap_or(0),
        level: u8::try_from(level)
            .map_err(|_| LogError::Corrupt(format!("level {level} of log {cursor}")))?,
        template: row.get(5)?,
        values,
    })
}

fn to_i64(n: u64, what: &str) -> Result<i64, LogError> {
    i64::try_from(n).map_err(|_| LogError::InvalidQuery(format!("{what} {n} is out of range")))
}

/// One project's database, as the writer holds it.
struct ProjectDb {
    conn: Connection,
    templates: HashMap<String, i64>,
}

/// The writer thread's state.
struct Writer {
    shared: Arc<Shared>,
    options: LogStoreOptions,
    connections: HashMap<ProjectName, ProjectDb>,
}

impl Writer {
    fn run(mut self, receiver: &mpsc::Receiver<Command>) {
        while let Ok(first) = receiver.recv() {
            let mut appends: Vec<(ProjectName, Vec<Prepared>)> = Vec::new();
            let mut metric_appends: Vec<(ProjectName, Vec<PreparedMetric>)> = Vec::new();
            let mut controls = Vec::new();
            let mut taken = 0;
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Append { project, records } => {
                        taken += records.len();
                        match appends.iter_mut().find(|(p, _)| *p == project) {
                            Some((_, queued)) => queued.extend(records),
                            None => appends.push((project, records)),
                        }
                    }
                    Command::Metrics { project, records } => {
                        taken += records.len();
                        match metric_appends.iter_mut().find(|(p, _)| *p == project) {
                            Some((_, queued)) => queued.extend(records),
                            None => metric_appends.push((project, records)),
                        }
                    }
                    control => controls.push(control),
                }
                if taken < self.options.max_batch {
                    next = receiver.try_recv().ok();
                }
            }
            for (project, records) in appends {
                self.commit(&project, records);
            }
            for (project, records) in metric_appends {
                self.commit_metrics(&project, records);
            }
            self.shared.pending.fetch_sub(taken, Ordering::AcqRel);
            for control in controls {
                match control {
                    Command::Flush { reply } => {
                        let _ = reply.send(());
                    }
                    Command::Prune {
                        project,
                        older_than_ms,
                        limit,
                        reply,
                    } => {
                        let _ = reply.send(self.prune(&project, older_than_ms, limit));
                    }
                    Command::DeleteRuns {
                        project,
                        runs,
                        reply,
                    } => {
                        let _ = reply.send(self.delete_runs(&project, &runs));
                    }
                    Command::Append { .. } | Command::Metrics { .. } => {}
                }
            }
        }
        tracing::debug!("log writer stopped");
    }

    fn commit(&mut self, project: &ProjectName, records: Vec<Prepared>) {
        let count = records.len();
        match self.write(project, records) {
            Ok(stored) => {
                {
                    let mut stats = lock(&self.shared.stats);
                    stats.commits += 1;
                    stats.records += count as u64;
                }
                tracing::trace!(project = %project, records = count, "logs committed");
                self.publish(project, stored);
            }
            Err(error) => {
                lock(&self.shared.stats).failures += 1;
                // Drop the connection: it is reopened (and re-checked) on the next batch.
                self.connections.remove(project);
                tracing::error!(project = %project, records = count, %error, "failed to write logs; they are lost");
            }
        }
    }

    fn commit_metrics(&mut self, project: &ProjectName, records: Vec<PreparedMetric>) {
        let count = records.len();
        let written = self.db(project).and_then(|db| {
            let tx = db.conn.transaction()?;
            metrics::write(&tx, records)?;
            Ok(tx.commit()?)
        });
        match written {
            Ok(()) => {
                lock(&self.shared.stats).commits += 1;
                tracing::trace!(project = %project, records = count, "metrics committed");
            }
            Err(error) => {
                lock(&self.shared.stats).failures += 1;
                self.connections.remove(project);
                tracing::error!(project = %project, records = count, %error, "failed to write metrics; they are lost");
            }
        }
    }

    fn db(&mut self, project: &ProjectName) -> Result<&mut ProjectDb, LogError> {
        if !self.connections.contains_key(project) {
            let path = logs_db_path(&self.shared.data_dir, project);
            let conn = open_writer(&path, self.options.durability)?;
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

    fn write(
        &mut self,
        project: &ProjectName,
        records: Vec<Prepared>,
    ) -> Result<Vec<StoredLog>, LogError> {
        let db = self.db(project)?;
        let tx = db.conn.transaction()?;
        let mut stored = Vec::with_capacity(records.len());
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
                let cursor = u64::try_from(tx.last_insert_rowid())
                    .map_err(|_| LogError::Corrupt("negative row id".into()))?;
                stored.push(StoredLog {
                    cursor,
                    execution,
                    timestamp_ms: record.timestamp_ms,
                    level: record.level,
                    template: record.template,
                    values: record.values,
                });
            }
        }
        match tx.commit() {
            Ok(()) => Ok(stored),
            Err(error) => {
                // Templates added in the failed transaction are not in the database.
                db.templates.clear();
                Err(error.into())
            }
        }
    }

    fn publish(&self, project: &ProjectName, stored: Vec<StoredLog>) {
        let mut followers = lock(&self.shared.followers);
        if followers.is_empty() {
            return;
        }
        // A batch holds few runs, in stretches: look each stretch's run up once.
        let mut current: Option<(RunId, Option<broadcast::Sender<Arc<StoredLog>>>)> = None;
        for log in stored {
            let run = log.execution.run();
            if current.as_ref().is_none_or(|(r, _)| *r != run) {
                let key = (project.clone(), run);
                let sender = match followers.get(&key) {
                    Some(sender) if sender.receiver_count() == 0 => {
                        followers.remove(&key);
                        None
                    }
                    other => other.cloned(),
                };
                current = Some((run, sender));
            }
            if let Some((_, Some(sender))) = &current {
                // No receivers left is not an error: the follower went away.
                let _ = sender.send(Arc::new(log));
            }
        }
    }

    fn prune(
        &mut self,
        project: &ProjectName,
        older_than_ms: i64,
        limit: usize,
    ) -> Result<u64, LogError> {
        if !logs_db_path(&self.shared.data_dir, project).exists() {
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
        tracing::debug!(project = %project, deleted, older_than_ms, "old logs pruned");
        Ok(deleted as u64)
    }
}

impl Writer {
    fn delete_runs(&mut self, project: &ProjectName, runs: &[RunId]) -> Result<u64, LogError> {
        if !logs_db_path(&self.shared.data_dir, project).exists() {
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
        tracing::debug!(project = %project, runs = runs.len(), deleted, "logs of deleted runs removed");
        Ok(deleted as u64)
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

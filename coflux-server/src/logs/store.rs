//! [`LogStore`]: the server's logs and metrics, written by one dedicated thread
//! ([`super::writer`]) to a [`LogBackend`]: one SQLite database per project, or tables in
//! PostgreSQL shared by every node (`--database-url`).
//!
//! [`LogStore::append`] validates a batch on the caller's thread and queues it; it never waits
//! for the disk. The writer commits what is queued in one transaction per project (group
//! commit: a burst becomes one transaction, a lone record is written at once), then publishes
//! the committed records to the followers of their run. Logs are best-effort: a failed commit
//! is reported through `tracing` and its records are lost. Reads run on the blocking thread
//! pool, on read connections the backend pools.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use coflux_core::model::{ExecutionId, ProjectName, RunId, Value};
use tokio::sync::{broadcast, oneshot};

use super::backend::{LogBackend, Prepared};
use super::metrics::{MetricRecord, RunMetrics};
use super::options::{LogStats, LogStoreOptions};
use super::record::{LogError, LogFilter, LogPage, LogRecord, StoredLog};
use super::writer::{Command, Shared, Writer, lock};

/// The most logs one query returns.
pub const MAX_PAGE: usize = 1000;

struct Inner {
    shared: Arc<Shared>,
    backend: Arc<dyn LogBackend>,
    options: LogStoreOptions,
    sender: Mutex<Option<mpsc::Sender<Command>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The server's log store. Cheap to clone (all clones share one writer thread); the writer finishes what is queued and
/// stops when the last clone is dropped.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("backend", &self.inner.backend.describe())
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

impl LogStore {
    /// Starts a log store over `data_dir` with default options.
    pub fn open(data_dir: impl Into<PathBuf>) -> Result<Self, LogError> {
        Self::open_with(data_dir, LogStoreOptions::default())
    }

    /// Starts a log store over `data_dir` (the server's data directory: one `logs.sqlite` per
    /// project, created on its first append) and its writer thread.
    pub fn open_with(
        data_dir: impl Into<PathBuf>,
        options: LogStoreOptions,
    ) -> Result<Self, LogError> {
        let backend = super::sqlite::SqliteLogs::new(data_dir.into(), options.durability);
        Self::start(Arc::new(backend), options)
    }

    /// Starts a log store in the PostgreSQL database at `url` (tables shared by every node,
    /// created or brought up to date here) and its writer thread.
    pub fn open_postgres(url: &str, options: LogStoreOptions) -> Result<Self, LogError> {
        let backend = super::postgres::PgLogs::open(url)?;
        Self::start(Arc::new(backend), options)
    }

    fn start(backend: Arc<dyn LogBackend>, options: LogStoreOptions) -> Result<Self, LogError> {
        let shared = Arc::new(Shared {
            followers: Mutex::new(HashMap::new()),
            pending: AtomicUsize::new(0),
            stats: Mutex::new(LogStats::default()),
        });
        let (sender, receiver) = mpsc::channel();
        let writer = Writer {
            shared: Arc::clone(&shared),
            options: options.clone(),
            db: backend.writer(),
        };
        let thread = std::thread::Builder::new()
            .name("coflux-logs".into())
            .spawn(move || writer.run(&receiver))?;
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                backend,
                options,
                sender: Mutex::new(Some(sender)),
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// The projects that may have logs, in name order.
    pub fn projects_with_logs(&self) -> Result<Vec<ProjectName>, LogError> {
        self.inner.backend.projects()
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
        let backend = Arc::clone(&self.inner.backend);
        tokio::task::spawn_blocking(move || {
            let mut out = None;
            backend.read(&project, &mut |reader| {
                out = Some(reader.metrics(run, execution)?);
                Ok(())
            })?;
            Ok(out.unwrap_or_else(|| RunMetrics {
                run_id: run.to_string(),
                executions: Vec::new(),
                truncated: false,
            }))
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
        let mut logs = Vec::new();
        self.inner.backend.read(project, &mut |reader| {
            logs = reader.page(run, filter, after, limit)?;
            Ok(())
        })?;
        tracing::debug!(project = %project, run = %run, count = logs.len(), "logs read");
        let cursor = logs.last().map(|log| log.cursor).or(after);
        Ok(LogPage { logs, cursor })
    }

    /// Calls `f` with each value recorded in the log messages of `project` (only those whose
    /// values' JSON contains `hint`, if given), on the calling thread (not an async worker).
    pub fn for_each_logged_value(
        &self,
        project: &ProjectName,
        hint: Option<&str>,
        f: &mut (dyn FnMut(&Value) + Send),
    ) -> Result<(), LogError> {
        self.inner
            .backend
            .read(project, &mut |reader| reader.values(hint, &mut *f))?;
        Ok(())
    }

    fn send(&self, command: Command) -> Result<(), LogError> {
        lock(&self.inner.sender)
            .as_ref()
            .ok_or(LogError::Stopped)?
            .send(command)
            .map_err(|_| LogError::Stopped)
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

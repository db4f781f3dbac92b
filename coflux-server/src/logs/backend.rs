//! Where logs and metrics are kept: the narrow interface between the log store's queue,
//! batching and followers ([`super::LogStore`]) and a database — one SQLite file per project
//! ([`super::sqlite`]) or tables shared by every node in PostgreSQL ([`super::postgres`]).

use coflux_core::model::{ExecutionId, ProjectName, RunId, StepId, Value};

use super::metrics::{MetricRecord, RunMetrics};
use super::record::{LogError, LogFilter, LogRecord, StoredLog};

/// A record that passed validation, with its values already encoded.
pub(super) struct Prepared {
    pub(super) record: LogRecord,
    pub(super) values_json: Option<String>,
}

/// A metric record that passed validation, with its definition's JSON text.
pub(super) type PreparedMetric = (MetricRecord, Option<String>);

/// A log database.
pub(super) trait LogBackend: Send + Sync {
    /// The writing side, owned by the writer thread (connecting lazily).
    fn writer(&self) -> Box<dyn LogWriter>;

    /// Runs `f` on a read connection to `project`'s logs; `Ok(false)` (and `f` not run) when
    /// the project has no logs yet.
    fn read(
        &self,
        project: &ProjectName,
        f: &mut (dyn FnMut(&mut dyn LogReader) -> Result<(), LogError> + Send),
    ) -> Result<bool, LogError>;

    /// The projects that may have logs, in name order.
    fn projects(&self) -> Result<Vec<ProjectName>, LogError>;

    /// A short description for `Debug` output (never a password).
    fn describe(&self) -> String;
}

/// Writes, each in one transaction, on the writer thread.
pub(super) trait LogWriter: Send {
    /// Stores `records` of `project`; gives each one's cursor, in order (increasing).
    fn write_logs(
        &mut self,
        project: &ProjectName,
        records: &[Prepared],
    ) -> Result<Vec<u64>, LogError>;

    /// Stores metric definitions (replacing a previous one) and points.
    fn write_metrics(
        &mut self,
        project: &ProjectName,
        records: Vec<PreparedMetric>,
    ) -> Result<(), LogError>;

    /// Deletes at most `limit` records older than `older_than_ms`; when fewer were left, also
    /// the old metrics and the templates no record uses. Gives how many records went.
    fn prune(
        &mut self,
        project: &ProjectName,
        older_than_ms: i64,
        limit: usize,
    ) -> Result<u64, LogError>;

    /// Deletes the records and metrics of `runs`; gives how many records went.
    fn delete_runs(&mut self, project: &ProjectName, runs: &[RunId]) -> Result<u64, LogError>;

    /// Forgets what is held for `project` after a failure (it is reopened on next use).
    fn reset(&mut self, project: &ProjectName);
}

/// Reads of one project's logs.
pub(super) trait LogReader {
    /// Records of `run` after cursor `after`, in cursor order, at most `limit`.
    fn page(
        &mut self,
        run: RunId,
        filter: Option<LogFilter>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredLog>, LogError>;

    /// The metrics of `run` (only `execution`'s, if given).
    fn metrics(
        &mut self,
        run: RunId,
        execution: Option<ExecutionId>,
    ) -> Result<RunMetrics, LogError>;

    /// Calls `f` with each value recorded in the project's log messages (only those whose
    /// values' JSON contains `hint`, if given: a cheap pre-filter).
    fn values(
        &mut self,
        hint: Option<&str>,
        f: &mut (dyn FnMut(&Value) + Send),
    ) -> Result<(), LogError>;
}

/// `n` as a database integer.
pub(super) fn to_i64(n: u64, what: &str) -> Result<i64, LogError> {
    i64::try_from(n).map_err(|_| LogError::InvalidQuery(format!("{what} {n} is out of range")))
}

/// Step -1 and attempt -1 stand for "any" in both backends' page queries.
pub(super) fn filter_numbers(filter: Option<LogFilter>) -> (i64, i64) {
    match filter {
        None => (-1, -1),
        Some(LogFilter::Step(step)) => (i64::from(step.number), -1),
        Some(LogFilter::Execution(e)) => (i64::from(e.step.number), i64::from(e.attempt)),
    }
}

/// A log message's columns as both backends read them (`id, step_number, attempt,
/// timestamp, level, template, values_json`), decoded once by [`LogRow::decode`].
pub(super) struct LogRow {
    pub(super) cursor: i64,
    pub(super) step: i64,
    pub(super) attempt: i64,
    pub(super) timestamp: i64,
    pub(super) level: i64,
    pub(super) template: Option<String>,
    pub(super) values: Option<String>,
}

impl LogRow {
    /// The stored log of run `run`; a value out of range is [`LogError::Corrupt`].
    pub(super) fn decode(self, run: RunId) -> Result<StoredLog, LogError> {
        let cursor = self.cursor;
        let corrupt = |what: &str, n: i64| LogError::Corrupt(format!("{what} {n} of log {cursor}"));
        let number = |n: i64| u32::try_from(n).map_err(|_| corrupt("number", n));
        Ok(StoredLog {
            cursor: u64::try_from(cursor)
                .map_err(|_| LogError::Corrupt("negative cursor".into()))?,
            execution: ExecutionId {
                step: StepId {
                    run,
                    number: number(self.step)?,
                },
                attempt: number(self.attempt)?,
            },
            timestamp_ms: u64::try_from(self.timestamp).unwrap_or(0),
            level: u8::try_from(self.level).map_err(|_| corrupt("level", self.level))?,
            template: self.template,
            values: decode_values(cursor, self.values)?,
        })
    }
}

/// A log's values, decoded from their JSON text (`None`: no values).
pub(super) fn decode_values(
    cursor: i64,
    json: Option<String>,
) -> Result<std::collections::BTreeMap<String, Value>, LogError> {
    match json {
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| LogError::Corrupt(format!("values of log {cursor}: {e}"))),
        None => Ok(Default::default()),
    }
}

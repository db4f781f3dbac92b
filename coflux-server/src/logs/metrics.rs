//! Execution metrics (`cf.Metric`, `cf.progress`), kept in the project's log database next to
//! its logs and written by the same thread: [`MetricRecord`]s as agents report them, and
//! [`RunMetrics`], a run's definitions and points as the API returns them.

use std::collections::BTreeMap;

use coflux_core::model::{ExecutionId, RunId, StepId};
use rusqlite::{Connection, Transaction, params};
use serde_json::Value as Json;

use super::record::{LogError, RecordError};

/// The longest metric key accepted, in bytes.
pub const MAX_METRIC_KEY_BYTES: usize = 256;

/// The largest definition accepted (as JSON), in bytes.
pub const MAX_DEFINITION_BYTES: usize = 16 * 1024;

/// The most points one query returns (the oldest first; `truncated` says when more exist).
pub const MAX_POINTS: usize = 100_000;

/// A metric definition or point of an execution, as an agent reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricRecord {
    /// A metric's definition; a later one for the same execution and key replaces it.
    Define {
        /// The execution.
        execution: ExecutionId,
        /// The metric's key.
        key: String,
        /// The definition: a JSON object (`throttle`, `group`, `units`, `progress`, `upper`…).
        definition: Json,
        /// When it was reported (Unix ms).
        timestamp_ms: u64,
    },
    /// A point.
    Point {
        /// The execution.
        execution: ExecutionId,
        /// The metric's key.
        key: String,
        /// The value.
        value: f64,
        /// The x-axis position.
        at: f64,
        /// When it was reported (Unix ms).
        timestamp_ms: u64,
    },
}

impl MetricRecord {
    /// The execution it is about.
    pub fn execution(&self) -> ExecutionId {
        match self {
            Self::Define { execution, .. } | Self::Point { execution, .. } => *execution,
        }
    }

    /// Checks it can be stored; gives the definition's JSON text for a definition.
    pub(super) fn validate(&self) -> Result<Option<String>, RecordError> {
        let (key, timestamp_ms) = match self {
            Self::Define {
                key, timestamp_ms, ..
            }
            | Self::Point {
                key, timestamp_ms, ..
            } => (key, *timestamp_ms),
        };
        if key.is_empty() || key.len() > MAX_METRIC_KEY_BYTES {
            return Err(RecordError::InvalidMetric(format!(
                "metric key must have 1 to {MAX_METRIC_KEY_BYTES} bytes"
            )));
        }
        if i64::try_from(timestamp_ms).is_err() {
            return Err(RecordError::InvalidTimestamp(timestamp_ms));
        }
        match self {
            Self::Define { definition, .. } => {
                if !definition.is_object() {
                    return Err(RecordError::InvalidMetric(format!(
                        "definition of metric '{key}' is not an object"
                    )));
                }
                let text = definition.to_string();
                if text.len() > MAX_DEFINITION_BYTES {
                    return Err(RecordError::InvalidMetric(format!(
                        "definition of metric '{key}' exceeds {MAX_DEFINITION_BYTES} bytes"
                    )));
                }
                Ok(Some(text))
            }
            Self::Point { value, at, .. } => {
                if !value.is_finite() || !at.is_finite() {
                    return Err(RecordError::InvalidMetric(format!(
                        "point of metric '{key}' is not a finite number"
                    )));
                }
                Ok(None)
            }
        }
    }
}

pub use coflux_core::protocol::http::{ExecutionMetrics, MetricPoint, MetricSeries, RunMetrics};

/// Writes validated records (with their definitions' JSON text) in one transaction.
pub(super) fn write(
    tx: &Transaction<'_>,
    records: Vec<(MetricRecord, Option<String>)>,
) -> Result<(), LogError> {
    let mut define = tx.prepare_cached(
        "INSERT INTO metric_definitions (run_id, step_number, attempt, key, definition_json, \
         timestamp) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (run_id, step_number, attempt, key) \
         DO UPDATE SET definition_json = excluded.definition_json, timestamp = excluded.timestamp",
    )?;
    let mut point = tx.prepare_cached(
        "INSERT INTO metric_points (run_id, step_number, attempt, key, value, at, timestamp) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (record, definition_json) in records {
        let execution = record.execution();
        let run = to_i64(execution.run().0)?;
        let (step, attempt) = (execution.step.number, execution.attempt);
        match record {
            MetricRecord::Define {
                key, timestamp_ms, ..
            } => {
                define.execute(params![
                    run,
                    step,
                    attempt,
                    key,
                    definition_json.unwrap_or_else(|| "{}".into()),
                    to_i64(timestamp_ms)?
                ])?;
            }
            MetricRecord::Point {
                key,
                value,
                at,
                timestamp_ms,
                ..
            } => {
                point.execute(params![
                    run,
                    step,
                    attempt,
                    key,
                    value,
                    at,
                    to_i64(timestamp_ms)?
                ])?;
            }
        }
    }
    Ok(())
}

/// Deletes at most `limit` points, and definitions, older than `older_than_ms`; gives how many
/// rows went.
pub(super) fn prune(
    tx: &Transaction<'_>,
    older_than_ms: i64,
    limit: usize,
) -> Result<usize, LogError> {
    let limit = to_i64(limit as u64)?;
    let points = tx.execute(
        "DELETE FROM metric_points WHERE id IN (SELECT id FROM metric_points \
         WHERE timestamp < ?1 ORDER BY timestamp LIMIT ?2)",
        params![older_than_ms, limit],
    )?;
    let definitions = tx.execute(
        "DELETE FROM metric_definitions WHERE rowid IN (SELECT rowid FROM metric_definitions \
         WHERE timestamp < ?1 LIMIT ?2)",
        params![older_than_ms, limit],
    )?;
    Ok(points + definitions)
}

/// A run's series by execution (step number, attempt) and key.
pub(super) type Series = BTreeMap<(u32, u32), BTreeMap<String, MetricSeries>>;

/// Reads a run's metrics (only `execution`'s, if given).
pub(super) fn read(
    conn: &Connection,
    run: RunId,
    execution: Option<ExecutionId>,
) -> Result<RunMetrics, LogError> {
    let run_id = to_i64(run.0)?;
    let (step, attempt) = execution.map_or((-1, -1), |e| {
        (i64::from(e.step.number), i64::from(e.attempt))
    });
    const FILTER: &str = "run_id = ?1 AND (?2 < 0 OR (step_number = ?2 AND attempt = ?3))";
    let mut series: Series = BTreeMap::new();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT step_number, attempt, key, definition_json FROM metric_definitions \
         WHERE {FILTER}"
    ))?;
    let mut rows = stmt.query(params![run_id, step, attempt])?;
    while let Some(row) = rows.next()? {
        let key: String = row.get(2)?;
        let json: String = row.get(3)?;
        let definition = serde_json::from_str(&json)
            .map_err(|e| LogError::Corrupt(format!("definition of metric '{key}': {e}")))?;
        entry(&mut series, row.get(0)?, row.get(1)?, &key).definition = Some(definition);
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT step_number, attempt, key, value, at, timestamp FROM metric_points \
         WHERE {FILTER} ORDER BY id LIMIT ?4"
    ))?;
    let mut rows = stmt.query(params![
        run_id,
        step,
        attempt,
        to_i64(MAX_POINTS as u64 + 1)?
    ])?;
    let mut count = 0;
    let mut truncated = false;
    while let Some(row) = rows.next()? {
        count += 1;
        if count > MAX_POINTS {
            truncated = true;
            break;
        }
        let key: String = row.get(2)?;
        let timestamp: i64 = row.get(5)?;
        entry(&mut series, row.get(0)?, row.get(1)?, &key)
            .points
            .push(MetricPoint {
                value: row.get(3)?,
                at: row.get(4)?,
                timestamp: u64::try_from(timestamp).unwrap_or(0),
            });
    }
    Ok(run_metrics(run, series, truncated))
}

/// A run's metrics answer from its series.
pub(super) fn run_metrics(run: RunId, series: Series, truncated: bool) -> RunMetrics {
    let executions = series
        .into_iter()
        .map(|((number, attempt), metrics)| ExecutionMetrics {
            execution_id: ExecutionId {
                step: StepId { run, number },
                attempt,
            }
            .to_string(),
            metrics: metrics.into_values().collect(),
        })
        .collect();
    RunMetrics {
        run_id: run.to_string(),
        executions,
        truncated,
    }
}

/// The series of `key` of an execution, created empty if new.
/// The series of `key` of execution `step`:`attempt`, created empty.
pub(super) fn entry<'a>(
    series: &'a mut Series,
    step: u32,
    attempt: u32,
    key: &str,
) -> &'a mut MetricSeries {
    series
        .entry((step, attempt))
        .or_default()
        .entry(key.to_owned())
        .or_insert_with(|| MetricSeries {
            key: key.to_owned(),
            definition: None,
            points: Vec::new(),
        })
}

fn to_i64(n: u64) -> Result<i64, LogError> {
    i64::try_from(n).map_err(|_| LogError::InvalidQuery(format!("{n} is out of range")))
}

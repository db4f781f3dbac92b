//! Metrics in PostgreSQL (see [`super::postgres`]): definitions replaced per execution and
//! key, points in the order they arrived, read back as the SQLite store does.

use coflux_core::model::{ExecutionId, ProjectName, RunId};
use postgres::{Client, Row, Transaction};

use super::backend::{PreparedMetric, to_i64};
use super::metrics::{
    self, MAX_POINTS, MetricPoint, MetricRecord, MetricSeries, RunMetrics, Series, run_metrics,
};
use super::record::LogError;

/// Writes validated records (with their definitions' JSON text) in the open transaction.
pub(super) fn write(
    tx: &mut Transaction<'_>,
    project: &ProjectName,
    records: Vec<PreparedMetric>,
) -> Result<(), LogError> {
    let points = records
        .iter()
        .filter(|(r, _)| matches!(r, MetricRecord::Point { .. }))
        .count();
    let mut ids = next_ids(tx, "coflux_metric_point_ids", points)?.into_iter();
    for (record, definition_json) in records {
        let execution = record.execution();
        let run = to_i64(execution.run().0, "run id")?;
        let (step, attempt) = (
            i64::from(execution.step.number),
            i64::from(execution.attempt),
        );
        match record {
            MetricRecord::Define {
                key, timestamp_ms, ..
            } => {
                tx.execute(
                    "INSERT INTO coflux_metric_definitions (project, run_id, step_number,
                             attempt, key, definition_json, timestamp_ms)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)
                         ON CONFLICT (project, run_id, step_number, attempt, key)
                         DO UPDATE SET definition_json = excluded.definition_json,
                                       timestamp_ms = excluded.timestamp_ms",
                    &[
                        &project.as_str(),
                        &run,
                        &step,
                        &attempt,
                        &key,
                        &definition_json.unwrap_or_else(|| "{}".into()),
                        &to_i64(timestamp_ms, "timestamp")?,
                    ],
                )?;
            }
            MetricRecord::Point {
                key,
                value,
                at,
                timestamp_ms,
                ..
            } => {
                let id = ids
                    .next()
                    .ok_or_else(|| LogError::Corrupt("metric point ids".into()))?;
                tx.execute(
                    "INSERT INTO coflux_metric_points (id, project, run_id, step_number,
                             attempt, key, value, at, timestamp_ms)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[
                        &id,
                        &project.as_str(),
                        &run,
                        &step,
                        &attempt,
                        &key,
                        &value,
                        &at,
                        &to_i64(timestamp_ms, "timestamp")?,
                    ],
                )?;
            }
        }
    }
    Ok(())
}

/// Reads a run's metrics (only `execution`'s, if given), as the SQLite store does.
pub(super) fn read(
    client: &mut Client,
    project: &str,
    run: RunId,
    execution: Option<ExecutionId>,
) -> Result<RunMetrics, LogError> {
    let run_id = to_i64(run.0, "run id")?;
    let (step, attempt) = execution.map_or((-1, -1), |e| {
        (i64::from(e.step.number), i64::from(e.attempt))
    });
    const FILTER: &str = "project = $1 AND run_id = $2 \
        AND ($3::BIGINT < 0 OR (step_number = $3 AND attempt = $4))";
    let mut series = Series::default();
    let definitions = client.query(
        &format!(
            "SELECT step_number, attempt, key, definition_json FROM coflux_metric_definitions
             WHERE {FILTER}"
        ),
        &[&project, &run_id, &step, &attempt],
    )?;
    for row in definitions {
        let key: String = row.try_get(2)?;
        let json: String = row.try_get(3)?;
        let definition = serde_json::from_str(&json)
            .map_err(|e| LogError::Corrupt(format!("definition of metric '{key}': {e}")))?;
        entry(&mut series, &row, &key)?.definition = Some(definition);
    }
    let points = client.query(
        &format!(
            "SELECT step_number, attempt, key, value, at, timestamp_ms FROM coflux_metric_points
             WHERE {FILTER} ORDER BY id LIMIT $5"
        ),
        &[
            &project,
            &run_id,
            &step,
            &attempt,
            &to_i64(MAX_POINTS as u64 + 1, "limit")?,
        ],
    )?;
    let truncated = points.len() > MAX_POINTS;
    for row in points.iter().take(MAX_POINTS) {
        let key: String = row.try_get(2)?;
        let timestamp: i64 = row.try_get(5)?;
        entry(&mut series, row, &key)?.points.push(MetricPoint {
            value: row.try_get(3)?,
            at: row.try_get(4)?,
            timestamp: u64::try_from(timestamp).unwrap_or(0),
        });
    }
    Ok(run_metrics(run, series, truncated))
}

/// The series of `key` of the execution in `row` (step, attempt in columns 0 and 1).
fn entry<'a>(
    series: &'a mut Series,
    row: &Row,
    key: &str,
) -> Result<&'a mut MetricSeries, LogError> {
    let number = |i: usize| -> Result<u32, LogError> {
        let n: i64 = row.try_get(i)?;
        u32::try_from(n).map_err(|_| LogError::Corrupt(format!("metric execution number {n}")))
    };
    Ok(metrics::entry(series, number(0)?, number(1)?, key))
}

/// `n` ids of `sequence`, increasing.
pub(super) fn next_ids(
    tx: &mut Transaction<'_>,
    sequence: &str,
    n: usize,
) -> Result<Vec<i64>, LogError> {
    let sql = format!("SELECT nextval('{sequence}') FROM generate_series(1::BIGINT, $1::BIGINT)");
    let mut ids: Vec<i64> = tx
        .query(&sql, &[&to_i64(n as u64, "batch size")?])?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    ids.sort_unstable();
    Ok(ids)
}

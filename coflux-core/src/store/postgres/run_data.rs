//! Checkpoints, streams and inputs: their writes and their reads per run (the same rows as
//! the SQLite store's `checkpoints`, `streams` and `inputs` modules).

use postgres::Row;

use super::client::params;
use super::{Check, Conn};
use crate::model::{
    Checkpoints, EnvironmentId, InputId, InputRecord, RunId, StepId, StreamId, StreamRecord,
};
use crate::store::sqlite::{from_json, run_key, to_json, to_u32, to_u64};
use crate::store::{StoreError, Write};

fn stream_key(stream: StreamId) -> Result<(i64, i64, i64), StoreError> {
    Ok((
        run_key(stream.step.run)?,
        i64::from(stream.step.number),
        i64::from(stream.index),
    ))
}

fn opt_i64(value: Option<u64>) -> Option<i64> {
    value.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// Applies a checkpoint, stream or input write (any other write is a caller's bug, reported
/// as corrupt input rather than a panic).
pub(super) fn put(conn: &mut Conn, write: &Write) -> Result<(), StoreError> {
    match write {
        Write::PutCheckpoints {
            step,
            environment,
            state,
            at,
        } => {
            conn.queue(
                "INSERT INTO checkpoints (run_id, step_number, environment_id, state, updated_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (run_id, step_number, environment_id)
                 DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                params![
                    run_key(step.run)?,
                    i64::from(step.number),
                    i64::from(environment.0),
                    to_json(state.as_ref())?,
                    *at,
                ],
                Check::None,
            )?;
        }
        Write::PutStream {
            stream,
            position,
            producer,
            buffer,
            timeout_ms,
            opened_at,
        } => {
            let (run, step, index) = stream_key(*stream)?;
            conn.queue(
                "INSERT INTO streams (run_id, step_number, stream_index, position, producer,
                                      buffer, timeout_ms, opened_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (run_id, step_number, stream_index)
                 DO UPDATE SET producer = excluded.producer, buffer = excluded.buffer,
                               timeout_ms = excluded.timeout_ms",
                params![
                    run,
                    step,
                    index,
                    i64::from(*position),
                    producer.to_string(),
                    buffer.map(i64::from),
                    opt_i64(*timeout_ms),
                    *opened_at,
                ],
                Check::None,
            )?;
        }
        Write::PutStreamItem {
            stream,
            sequence,
            value,
            at,
        } => {
            let (run, step, index) = stream_key(*stream)?;
            conn.queue(
                "INSERT INTO stream_items
                   (run_id, step_number, stream_index, sequence, value, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                params![
                    run,
                    step,
                    index,
                    opt_i64(Some(*sequence)),
                    to_json(value)?,
                    *at,
                ],
                Check::None,
            )?;
        }
        Write::CloseStream {
            stream,
            closure,
            at,
        } => {
            let (run, step, index) = stream_key(*stream)?;
            conn.queue(
                "UPDATE streams SET closure = $4, closed_at = $5
                 WHERE run_id = $1 AND step_number = $2 AND stream_index = $3",
                params![run, step, index, to_json(closure)?, *at],
                Check::None,
            )?;
        }
        Write::PutInput(input) => {
            conn.queue(
                "INSERT INTO inputs (run_id, number, execution, key, spec, state, pending,
                                     created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (run_id, number) DO UPDATE SET state = excluded.state,
                                                             pending = excluded.pending",
                params![
                    run_key(input.id.run)?,
                    i64::from(input.id.number),
                    input.execution.to_string(),
                    input.spec.key.clone(),
                    to_json(&input.spec)?,
                    to_json(&input.state)?,
                    i64::from(!input.state.is_final()),
                    input.created_at,
                ],
                Check::None,
            )?;
        }
        other => {
            return Err(StoreError::Corrupt(format!(
                "not a run data write: {other:?}"
            )));
        }
    }
    Ok(())
}

/// The checkpoint states of a run's steps, by step then environment.
pub(super) fn checkpoints(
    conn: &mut Conn,
    run: RunId,
) -> Result<Vec<(StepId, EnvironmentId, Checkpoints)>, StoreError> {
    let rows = conn.query(
        "SELECT step_number, environment_id, state FROM checkpoints WHERE run_id = $1
         ORDER BY step_number, environment_id",
        &[&run_key(run)?],
    )?;
    rows.iter()
        .map(|row| {
            let state: String = row.try_get(2)?;
            Ok((
                StepId {
                    run,
                    number: to_u32(row.try_get(0)?, "step number")?,
                },
                EnvironmentId(to_u32(row.try_get(1)?, "environment id")?),
                from_json(&state, "checkpoint state")?,
            ))
        })
        .collect()
}

/// A run's streams with their items, by step then index.
pub(super) fn streams(conn: &mut Conn, run: RunId) -> Result<Vec<StreamRecord>, StoreError> {
    let key = run_key(run)?;
    let rows = conn.query(
        "SELECT step_number, stream_index, position, producer, buffer, timeout_ms, opened_at,
                closure, closed_at
         FROM streams WHERE run_id = $1 ORDER BY step_number, stream_index",
        &[&key],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let producer: String = row.try_get(3)?;
        let buffer: Option<i64> = row.try_get(4)?;
        let timeout_ms: Option<i64> = row.try_get(5)?;
        let closure: Option<String> = row.try_get(7)?;
        let closed_at: Option<i64> = row.try_get(8)?;
        let closed = match closure {
            Some(text) => Some((
                from_json(&text, "stream closure")?,
                closed_at.unwrap_or_default(),
            )),
            None => None,
        };
        out.push(StreamRecord {
            id: StreamId {
                step: StepId {
                    run,
                    number: to_u32(row.try_get(0)?, "step number")?,
                },
                index: to_u32(row.try_get(1)?, "stream index")?,
            },
            position: to_u32(row.try_get(2)?, "stream position")?,
            producer: crate::store::sqlite::parse_execution(&producer)?,
            buffer: buffer.map(|b| to_u32(b, "stream buffer")).transpose()?,
            timeout_ms: timeout_ms.map(|t| u64::try_from(t).unwrap_or(0)),
            opened_at: row.try_get(6)?,
            items: Vec::new(),
            closed,
        });
    }
    let items = conn.query(
        "SELECT step_number, stream_index, sequence, value FROM stream_items WHERE run_id = $1
         ORDER BY step_number, stream_index, sequence",
        &[&key],
    )?;
    for row in &items {
        let number = to_u32(row.try_get(0)?, "step number")?;
        let index = to_u32(row.try_get(1)?, "stream index")?;
        let sequence = to_u64(row.try_get(2)?, "stream sequence")?;
        let text: String = row.try_get(3)?;
        let stream = out
            .iter_mut()
            .find(|s| s.id.step.number == number && s.id.index == index)
            .ok_or_else(|| StoreError::Corrupt("stream item of an unknown stream".into()))?;
        if usize::try_from(sequence).ok() != Some(stream.items.len()) {
            return Err(StoreError::Corrupt(format!(
                "stream item: gap before sequence {sequence}"
            )));
        }
        stream.items.push(from_json(&text, "stream item")?);
    }
    Ok(out)
}

fn input_from_row(row: &Row) -> Result<InputRecord, StoreError> {
    let execution: String = row.try_get(2)?;
    let spec: String = row.try_get(3)?;
    let state: String = row.try_get(4)?;
    Ok(InputRecord {
        id: InputId {
            run: RunId(to_u64(row.try_get(0)?, "run id")?),
            number: to_u32(row.try_get(1)?, "input number")?,
        },
        execution: crate::store::sqlite::parse_execution(&execution)?,
        spec: from_json(&spec, "input spec")?,
        state: from_json(&state, "input state")?,
        created_at: row.try_get(5)?,
    })
}

/// A run's inputs, by number.
pub(super) fn inputs(conn: &mut Conn, run: RunId) -> Result<Vec<InputRecord>, StoreError> {
    conn.query(
        "SELECT run_id, number, execution, spec, state, created_at FROM inputs
         WHERE run_id = $1 ORDER BY number",
        &[&run_key(run)?],
    )?
    .iter()
    .map(input_from_row)
    .collect()
}

/// The project's pending inputs, oldest first (at most `limit`).
pub(super) fn pending_inputs(conn: &mut Conn, limit: u32) -> Result<Vec<InputRecord>, StoreError> {
    conn.query(
        "SELECT run_id, number, execution, spec, state, created_at FROM inputs
         WHERE pending = 1 ORDER BY created_at, run_id, number LIMIT $1",
        &[&i64::from(limit)],
    )?
    .iter()
    .map(input_from_row)
    .collect()
}

/// One input.
pub(super) fn input(conn: &mut Conn, id: InputId) -> Result<Option<InputRecord>, StoreError> {
    conn.query(
        "SELECT run_id, number, execution, spec, state, created_at FROM inputs
         WHERE run_id = $1 AND number = $2",
        &[&run_key(id.run)?, &i64::from(id.number)],
    )?
    .first()
    .map(input_from_row)
    .transpose()
}

/// The keys of every blob the project's recorded values reference (as
/// `SqliteStore::referenced_blob_keys`: step arguments, results, schedule arguments,
/// checkpoint states, stream items). Rows are streamed and decoded one at a time; a row that
/// does not decode is an error, never skipped.
pub(super) fn referenced_blob_keys(
    conn: &mut Conn,
) -> Result<std::collections::HashSet<String>, StoreError> {
    use crate::model::{ExecutionResult, Schedule, Value};
    use crate::store::collect_blob_keys;

    let mut keys = std::collections::HashSet::new();
    let mut each = |sql: &str, visit: &mut dyn FnMut(&str) -> Result<(), StoreError>| {
        conn.client.for_each_row(sql, |row| visit(row.try_get(0)?))
    };
    each("SELECT arguments FROM steps", &mut |text| {
        let arguments: Vec<Value> = from_json(text, "step arguments")?;
        arguments
            .iter()
            .for_each(|v| collect_blob_keys(v, &mut keys));
        Ok(())
    })?;
    each("SELECT result FROM results", &mut |text| {
        if let ExecutionResult::Value { value } = from_json(text, "result")? {
            collect_blob_keys(&value, &mut keys);
        }
        Ok(())
    })?;
    each("SELECT definition FROM schedules", &mut |text| {
        let schedule: Schedule = from_json(text, "schedule")?;
        schedule
            .arguments
            .iter()
            .for_each(|v| collect_blob_keys(v, &mut keys));
        Ok(())
    })?;
    each("SELECT state FROM checkpoints", &mut |text| {
        let state: Checkpoints = from_json(text, "checkpoint state")?;
        state.values().for_each(|v| collect_blob_keys(v, &mut keys));
        Ok(())
    })?;
    each("SELECT value FROM stream_items", &mut |text| {
        let value: Value = from_json(text, "stream item")?;
        collect_blob_keys(&value, &mut keys);
        Ok(())
    })?;
    Ok(keys)
}

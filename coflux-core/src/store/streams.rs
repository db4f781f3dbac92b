//! Stored streams (`streams` and `stream_items` tables, schema version 10): a row per stream
//! (registration, current producer, closure) and one per item.

use std::collections::HashSet;

use rusqlite::{Connection, params};

use super::StoreError;
use super::codec::collect_blob_keys;
use crate::model::{
    ExecutionId, Millis, RunId, StepId, StreamClosure, StreamId, StreamRecord, Value,
};

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("stream {what}: {e}"))
}

fn key(stream: StreamId) -> Result<(i64, i64, i64), StoreError> {
    let run = i64::try_from(stream.step.run.0)
        .map_err(|_| StoreError::Corrupt(format!("run id {}", stream.step.run.0)))?;
    Ok((run, i64::from(stream.step.number), i64::from(stream.index)))
}

fn opt_i64(value: Option<u64>) -> Option<i64> {
    value.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// Registers a stream, or moves it to a new producer (a resumed attempt).
#[allow(clippy::too_many_arguments)]
pub(crate) fn put(
    conn: &Connection,
    stream: StreamId,
    position: u32,
    producer: ExecutionId,
    buffer: Option<u32>,
    timeout_ms: Option<u64>,
    opened_at: Millis,
) -> Result<(), StoreError> {
    let (run, step, index) = key(stream)?;
    conn.prepare_cached(
        "INSERT INTO streams (run_id, step_number, stream_index, position, producer, buffer,
                              timeout_ms, opened_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (run_id, step_number, stream_index)
         DO UPDATE SET producer = excluded.producer, buffer = excluded.buffer,
                       timeout_ms = excluded.timeout_ms",
    )?
    .execute(params![
        run,
        step,
        index,
        i64::from(position),
        producer.to_string(),
        buffer.map(i64::from),
        opt_i64(timeout_ms),
        opened_at
    ])?;
    Ok(())
}

/// Stores an item (a repeat of a stored sequence is ignored).
pub(crate) fn put_item(
    conn: &Connection,
    stream: StreamId,
    sequence: u64,
    value: &Value,
    at: Millis,
) -> Result<(), StoreError> {
    let (run, step, index) = key(stream)?;
    let text = serde_json::to_string(value).map_err(|e| corrupt("item", e))?;
    conn.prepare_cached(
        "INSERT OR IGNORE INTO stream_items
           (run_id, step_number, stream_index, sequence, value, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![run, step, index, opt_i64(Some(sequence)), text, at])?;
    Ok(())
}

/// Records how a stream ended.
pub(crate) fn close(
    conn: &Connection,
    stream: StreamId,
    closure: &StreamClosure,
    at: Millis,
) -> Result<(), StoreError> {
    let (run, step, index) = key(stream)?;
    let text = serde_json::to_string(closure).map_err(|e| corrupt("closure", e))?;
    conn.prepare_cached(
        "UPDATE streams SET closure = ?4, closed_at = ?5
         WHERE run_id = ?1 AND step_number = ?2 AND stream_index = ?3",
    )?
    .execute(params![run, step, index, text, at])?;
    Ok(())
}

/// A run's streams with their items, by step then index.
pub(crate) fn load(conn: &Connection, run: RunId) -> Result<Vec<StreamRecord>, StoreError> {
    load_steps(conn, run, 1, u32::MAX)
}

/// Reads the streams of steps `first..=last` of a run (a range of the primary key).
pub(crate) const LOAD_STEPS: &str =
    "SELECT step_number, stream_index, position, producer, buffer, timeout_ms, opened_at,
            closure, closed_at
     FROM streams WHERE run_id = ?1 AND step_number BETWEEN ?2 AND ?3
     ORDER BY step_number, stream_index";

/// Reads the items of the streams of steps `first..=last` of a run.
pub(crate) const LOAD_STEP_ITEMS: &str =
    "SELECT step_number, stream_index, sequence, value FROM stream_items WHERE run_id = ?1
     AND step_number BETWEEN ?2 AND ?3 ORDER BY step_number, stream_index, sequence";

/// The streams of steps `first..=last` of a run with their items, by step then index.
pub(crate) fn load_steps(
    conn: &Connection,
    run: RunId,
    first: u32,
    last: u32,
) -> Result<Vec<StreamRecord>, StoreError> {
    let run_key =
        i64::try_from(run.0).map_err(|_| StoreError::Corrupt(format!("run id {}", run.0)))?;
    let range = params![run_key, i64::from(first), i64::from(last)];
    let mut stmt = conn.prepare_cached(LOAD_STEPS)?;
    let mut rows = stmt.query(range)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let number: i64 = row.get(0)?;
        let index: i64 = row.get(1)?;
        let position: i64 = row.get(2)?;
        let producer: String = row.get(3)?;
        let buffer: Option<i64> = row.get(4)?;
        let timeout_ms: Option<i64> = row.get(5)?;
        let closure: Option<String> = row.get(7)?;
        let closed_at: Option<i64> = row.get(8)?;
        let id = StreamId {
            step: StepId {
                run,
                number: u32::try_from(number).map_err(|e| corrupt("step", e))?,
            },
            index: u32::try_from(index).map_err(|e| corrupt("index", e))?,
        };
        let closed = match closure {
            Some(text) => Some((
                serde_json::from_str(&text).map_err(|e| corrupt("closure", e))?,
                closed_at.unwrap_or_default(),
            )),
            None => None,
        };
        out.push(StreamRecord {
            id,
            position: u32::try_from(position).map_err(|e| corrupt("position", e))?,
            producer: producer.parse().map_err(|e| corrupt("producer", e))?,
            buffer: buffer
                .map(u32::try_from)
                .transpose()
                .map_err(|e| corrupt("buffer", e))?,
            timeout_ms: timeout_ms.map(|t| u64::try_from(t).unwrap_or(0)),
            opened_at: row.get(6)?,
            items: Vec::new(),
            closed,
        });
    }
    let by_key: std::collections::HashMap<(u32, u32), usize> = out
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.id.step.number, s.id.index), i))
        .collect();
    let mut items = conn.prepare_cached(LOAD_STEP_ITEMS)?;
    let mut rows = items.query(range)?;
    while let Some(row) = rows.next()? {
        let number: i64 = row.get(0)?;
        let index: i64 = row.get(1)?;
        let sequence: i64 = row.get(2)?;
        let text: String = row.get(3)?;
        let at = u32::try_from(number)
            .ok()
            .zip(u32::try_from(index).ok())
            .and_then(|k| by_key.get(&k))
            .ok_or_else(|| corrupt("item", "of an unknown stream"))?;
        let stream = &mut out[*at];
        if usize::try_from(sequence).ok() != Some(stream.items.len()) {
            return Err(corrupt("item", format!("gap before sequence {sequence}")));
        }
        stream
            .items
            .push(serde_json::from_str(&text).map_err(|e| corrupt("item", e))?);
    }
    Ok(out)
}

/// Adds the blobs stream items reference to `keys`.
pub(crate) fn blob_keys(conn: &Connection, keys: &mut HashSet<String>) -> Result<(), StoreError> {
    let mut stmt = conn.prepare("SELECT value FROM stream_items")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let text: String = row.get(0)?;
        let value: Value = serde_json::from_str(&text).map_err(|e| corrupt("item", e))?;
        collect_blob_keys(&value, keys);
    }
    Ok(())
}

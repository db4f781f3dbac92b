//! Stored inputs (`inputs` table, schema version 11): one row per input, the prompt and its
//! state as JSON.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use crate::model::{InputId, InputRecord, RunId};

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("input {what}: {e}"))
}

fn run_key(run: RunId) -> Result<i64, StoreError> {
    i64::try_from(run.0).map_err(|_| StoreError::Corrupt(format!("run id {}", run.0)))
}

/// Stores an input as it now stands (a new one, or a new state).
pub(crate) fn put(conn: &Connection, input: &InputRecord) -> Result<(), StoreError> {
    let spec = serde_json::to_string(&input.spec).map_err(|e| corrupt("spec", e))?;
    let state = serde_json::to_string(&input.state).map_err(|e| corrupt("state", e))?;
    conn.prepare_cached(
        "INSERT INTO inputs (run_id, number, execution, key, spec, state, pending, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (run_id, number) DO UPDATE SET state = excluded.state,
                                                     pending = excluded.pending",
    )?
    .execute(params![
        run_key(input.id.run)?,
        i64::from(input.id.number),
        input.execution.to_string(),
        input.spec.key,
        spec,
        state,
        !input.state.is_final(),
        input.created_at
    ])?;
    Ok(())
}

const COLUMNS: &str = "run_id, number, execution, spec, state, created_at";

fn from_row(row: &rusqlite::Row<'_>) -> Result<InputRecord, StoreError> {
    let run: i64 = row.get(0)?;
    let number: i64 = row.get(1)?;
    let execution: String = row.get(2)?;
    let spec: String = row.get(3)?;
    let state: String = row.get(4)?;
    Ok(InputRecord {
        id: InputId {
            run: RunId(u64::try_from(run).map_err(|e| corrupt("run", e))?),
            number: u32::try_from(number).map_err(|e| corrupt("number", e))?,
        },
        execution: execution.parse().map_err(|e| corrupt("execution", e))?,
        spec: serde_json::from_str(&spec).map_err(|e| corrupt("spec", e))?,
        state: serde_json::from_str(&state).map_err(|e| corrupt("state", e))?,
        created_at: row.get(5)?,
    })
}

/// A run's inputs, by number.
pub(crate) fn load(conn: &Connection, run: RunId) -> Result<Vec<InputRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM inputs WHERE run_id = ?1 ORDER BY number"
    ))?;
    let mut rows = stmt.query([run_key(run)?])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(from_row(row)?);
    }
    Ok(out)
}

/// The pending inputs of the project, oldest first (at most `limit`).
pub(crate) fn pending(conn: &Connection, limit: u32) -> Result<Vec<InputRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM inputs WHERE pending ORDER BY created_at, run_id, number LIMIT ?1"
    ))?;
    let mut rows = stmt.query([i64::from(limit)])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(from_row(row)?);
    }
    Ok(out)
}

/// One input.
pub(crate) fn get(conn: &Connection, id: InputId) -> Result<Option<InputRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM inputs WHERE run_id = ?1 AND number = ?2"
    ))?;
    let row = stmt
        .query_row(params![run_key(id.run)?, i64::from(id.number)], |row| {
            Ok(from_row(row))
        })
        .optional()?;
    row.transpose()
}

//! Stored checkpoint states (`checkpoints` table, schema version 9): one JSON map per step and
//! environment, replaced whole on each write.

use std::collections::HashSet;

use rusqlite::{Connection, params};

use super::StoreError;
use super::codec::collect_blob_keys;
use crate::model::{Checkpoints, EnvironmentId, Millis, RunId, StepId};

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("checkpoint state: {e}"))
}

fn run_key(run: RunId) -> Result<i64, StoreError> {
    i64::try_from(run.0).map_err(|_| StoreError::Corrupt(format!("run id {}", run.0)))
}

/// Replaces a step's state in an environment.
pub(crate) fn put(
    conn: &Connection,
    step: StepId,
    environment: EnvironmentId,
    state: &Checkpoints,
    at: Millis,
) -> Result<(), StoreError> {
    let text = serde_json::to_string(state).map_err(corrupt)?;
    conn.prepare_cached(
        "INSERT INTO checkpoints (run_id, step_number, environment_id, state, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (run_id, step_number, environment_id)
         DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
    )?
    .execute(params![
        run_key(step.run)?,
        i64::from(step.number),
        i64::from(environment.0),
        text,
        at
    ])?;
    Ok(())
}

/// The states of a run's steps, by step then environment.
pub(crate) fn load(
    conn: &Connection,
    run: RunId,
) -> Result<Vec<(StepId, EnvironmentId, Checkpoints)>, StoreError> {
    load_steps(conn, run, 1, u32::MAX)
}

/// Reads the states of steps `first..=last` of a run (a range of the primary key).
pub(crate) const LOAD_STEPS: &str =
    "SELECT step_number, environment_id, state FROM checkpoints WHERE run_id = ?1
     AND step_number BETWEEN ?2 AND ?3 ORDER BY step_number, environment_id";

/// The states of steps `first..=last` of a run, by step then environment.
pub(crate) fn load_steps(
    conn: &Connection,
    run: RunId,
    first: u32,
    last: u32,
) -> Result<Vec<(StepId, EnvironmentId, Checkpoints)>, StoreError> {
    let mut stmt = conn.prepare_cached(LOAD_STEPS)?;
    let mut rows = stmt.query(params![run_key(run)?, i64::from(first), i64::from(last)])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let number: i64 = row.get(0)?;
        let environment: i64 = row.get(1)?;
        let text: String = row.get(2)?;
        let number = u32::try_from(number)
            .map_err(|_| StoreError::Corrupt(format!("step number {number}")))?;
        let environment = u32::try_from(environment)
            .map_err(|_| StoreError::Corrupt(format!("environment id {environment}")))?;
        out.push((
            StepId { run, number },
            EnvironmentId(environment),
            serde_json::from_str(&text).map_err(corrupt)?,
        ));
    }
    Ok(out)
}

/// Adds the blobs checkpoint values reference to `keys`.
pub(crate) fn blob_keys(conn: &Connection, keys: &mut HashSet<String>) -> Result<(), StoreError> {
    let mut stmt = conn.prepare("SELECT state FROM checkpoints")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let text: String = row.get(0)?;
        let state: Checkpoints = serde_json::from_str(&text).map_err(corrupt)?;
        for value in state.values() {
            collect_blob_keys(value, keys);
        }
    }
    Ok(())
}

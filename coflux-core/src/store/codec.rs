//! Column codecs: ids, kinds, integers and JSON values as stored in a project's tables (shared
//! by both backends), the constraint error of a write naming a missing row, and the blob keys
//! a value references.

use serde::de::DeserializeOwned;

use crate::model::{ExecutionId, ResultKind, RunId, StepId, TargetKind};
use crate::store::StoreError;

pub(in crate::store) fn result_kind_str(kind: ResultKind) -> &'static str {
    match kind {
        ResultKind::Value => "value",
        ResultKind::Error => "error",
        ResultKind::Abandoned => "abandoned",
        ResultKind::Crashed => "crashed",
        ResultKind::Timeout => "timeout",
        ResultKind::Cancelled => "cancelled",
        ResultKind::Cached => "cached",
        ResultKind::Deferred => "deferred",
        ResultKind::Suspended => "suspended",
        ResultKind::Spawned => "spawned",
        ResultKind::Recurred => "recurred",
    }
}

pub(in crate::store) fn parse_target_kind(text: &str) -> Result<TargetKind, StoreError> {
    match text {
        "workflow" => Ok(TargetKind::Workflow),
        "task" => Ok(TargetKind::Task),
        other => Err(StoreError::Corrupt(format!("target kind '{other}'"))),
    }
}

pub(in crate::store) fn run_key(run: RunId) -> Result<i64, StoreError> {
    to_i64(run.0, "run id")
}

pub(in crate::store) fn execution_key(id: ExecutionId) -> Result<(i64, i64, i64), StoreError> {
    Ok((
        run_key(id.run())?,
        i64::from(id.step.number),
        i64::from(id.attempt),
    ))
}

pub(in crate::store) fn execution_id(
    run: i64,
    step: i64,
    attempt: i64,
) -> Result<ExecutionId, StoreError> {
    let step = StepId {
        run: RunId(to_u64(run, "run id")?),
        number: to_u32(step, "step number")?,
    };
    Ok(step.execution(to_u32(attempt, "attempt")?))
}

pub(in crate::store) fn parse_execution(text: &str) -> Result<ExecutionId, StoreError> {
    text.parse()
        .map_err(|e: crate::model::IdParseError| StoreError::Corrupt(e.to_string()))
}

pub(in crate::store) fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} out of range")))
}

pub(in crate::store) fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} out of range")))
}

pub(in crate::store) fn to_u32(value: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} out of range")))
}

pub(in crate::store) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

pub(in crate::store) fn from_json<T: DeserializeOwned>(
    text: &str,
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// A constraint error for a write that refers to a row that does not exist.
pub(in crate::store) fn missing(message: String) -> StoreError {
    StoreError::Sqlite(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
        Some(message),
    ))
}

/// Adds the keys of the blobs `value` references (its own blob and its fragments') to `keys`.
pub fn collect_blob_keys(
    value: &crate::model::Value,
    keys: &mut std::collections::HashSet<String>,
) {
    if let crate::model::Value::Blob { key, .. } = value {
        keys.insert(key.clone());
    }
    for reference in value.references() {
        if let crate::model::Reference::Fragment { blob_key, .. } = reference {
            keys.insert(blob_key.clone());
        }
    }
}

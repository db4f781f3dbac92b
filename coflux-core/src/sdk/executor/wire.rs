//! Values and results as the executor protocol carries them: wire values to model values and
//! back (large values spill to temp files), `select` results to execution results.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::{ExecutionResult, Value};
use crate::protocol::executor::{
    SelectResult, SelectStatus, TRANSFER_THRESHOLD, WireData, WireValue, reference_from_wire,
    reference_to_wire,
};

/// Locks a mutex, ignoring poisoning (a panicking execution must not stop the others).
pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A wire value from the worker as a model value: files are read (this executor decodes JSON
/// only), fragments keep their local path as their key.
pub(super) fn value_from_wire(wire: WireValue) -> Result<Value, String> {
    let references = wire
        .references
        .into_iter()
        .map(|r| reference_from_wire::<std::convert::Infallible>(r).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let data = match wire.data {
        WireData::Inline { format, value } if format == "json" => value,
        WireData::File { format, path } if format == "json" => {
            let bytes = std::fs::read(&path)
                .map_err(|e| format!("could not read {}: {e}", path.display()))?;
            serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is not JSON: {e}", path.display()))?
        }
        WireData::Inline { format, .. } | WireData::File { format, .. } => {
            return Err(format!(
                "values in format '{format}' cannot be read by a Rust target"
            ));
        }
    };
    Ok(Value::Raw { data, references })
}

/// A model value as a wire value; data over [`TRANSFER_THRESHOLD`] goes to a temp file.
pub(super) fn value_to_wire(value: &Value) -> Result<WireValue, String> {
    let Value::Raw { data, references } = value else {
        return Err("blob values cannot be sent from a Rust executor".into());
    };
    let references = references.iter().map(reference_to_wire).collect();
    let text = data.to_string();
    if text.len() <= TRANSFER_THRESHOLD {
        return Ok(WireValue::inline(data.clone(), references));
    }
    static SPILLED: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "coflux_rs_{}_{}",
        std::process::id(),
        SPILLED.fetch_add(1, Ordering::Relaxed)
    );
    let path: PathBuf = std::env::temp_dir().join(name);
    std::fs::write(&path, text).map_err(|e| format!("could not write {}: {e}", path.display()))?;
    Ok(WireValue::file(path, references))
}

/// The result of a `select` on one execution.
pub(super) fn select_outcome(result: SelectResult) -> Result<ExecutionResult, String> {
    match result.status {
        SelectStatus::Ok => {
            let value = result.value.unwrap_or_else(WireValue::null);
            Ok(ExecutionResult::Value {
                value: value_from_wire(value)?,
            })
        }
        SelectStatus::Error => {
            let error = result.error.ok_or("an error result without its error")?;
            Ok(ExecutionResult::Error {
                error: error.to_error_info(),
                retry: None,
            })
        }
        other => other
            .to_result()
            .ok_or_else(|| format!("unexpected status {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn large_values_spill_to_files_and_read_back() {
        let small = Value::raw(json!([1, 2, 3]));
        let wire = value_to_wire(&small).unwrap();
        assert!(matches!(wire.data, WireData::Inline { .. }));
        assert_eq!(value_from_wire(wire).unwrap(), small);

        let big = Value::raw(json!("x".repeat(TRANSFER_THRESHOLD + 1)));
        let wire = value_to_wire(&big).unwrap();
        let WireData::File { path, .. } = &wire.data else {
            panic!("expected a file");
        };
        let path = path.clone();
        assert_eq!(value_from_wire(wire).unwrap(), big);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn select_results_map_to_execution_results() {
        let ok: SelectResult = serde_json::from_value(json!({"winner":0,"status":"ok","value":{"type":"inline","format":"json","value":6,"references":[]}})).unwrap();
        assert_eq!(
            select_outcome(ok).unwrap(),
            ExecutionResult::Value {
                value: Value::raw(json!(6))
            }
        );
        let error: SelectResult = serde_json::from_value(json!({"winner":0,"status":"error","error":{"type":"builtins.ValueError","message":"bad","traceback":"  File \"f.py\", line 2, in g\n    boom()\n"}})).unwrap();
        let ExecutionResult::Error { error, .. } = select_outcome(error).unwrap() else {
            panic!()
        };
        assert_eq!(error.error_type, "builtins.ValueError");
        assert_eq!(error.frames[0].line, 2);
        let cancelled: SelectResult =
            serde_json::from_value(json!({"winner":1,"status":"cancelled"})).unwrap();
        assert_eq!(
            select_outcome(cancelled).unwrap(),
            ExecutionResult::Cancelled
        );
    }
}

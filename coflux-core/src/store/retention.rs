//! Run retention: which of the finished runs old enough to go may be deleted together, given
//! the links between runs, the tables and columns both backends read for it, and the size
//! report. Each backend's reads and its deletion of a batch of runs
//! ([`Write::DeleteRuns`](super::Write::DeleteRuns)) are in its own `retention` module.
//!
//! A run is *linked to* when an execution of another run points at one of its executions: a
//! cache hit or a deferral (`cached`/`deferred` results), a spawned workflow (`spawned`
//! results, `calls`), or an extra parent → child link (`children`). Linked runs are kept until
//! every run linking to them has gone (see docs/semantics.md, *Run retention*).

use std::collections::{HashMap, HashSet};

use super::StoreError;
use crate::model::{ExecutionId, ExecutionResult, RunId, Value};

/// Tables whose rows all belong to one run, through their `run_id` column.
pub(crate) const RUN_TABLES: [&str; 10] = [
    "steps",
    "executions",
    "results",
    "children",
    "calls",
    "checkpoints",
    "stream_items",
    "streams",
    "inputs",
    "idempotency_keys",
];

/// The results that may link to another run's execution, as (run, result JSON).
pub(crate) const LINKING_RESULTS_SQL: &str =
    "SELECT run_id, result FROM results WHERE kind IN ('cached', 'deferred', 'spawned')";

/// The other links from a run to an execution, as (run, execution id).
pub(crate) const LINK_SQL: [&str; 2] = [
    "SELECT run_id, child FROM children",
    "SELECT run_id, child FROM calls",
];

/// The columns holding recorded values, by table (see [`recorded_values`]).
pub(crate) const ASSET_COLUMNS: [(&str, &str); 5] = [
    ("steps", "arguments"),
    ("results", "result"),
    ("checkpoints", "state"),
    ("stream_items", "value"),
    ("schedules", "definition"),
];

/// The execution a linking result (JSON) points at: the successor of a cache hit, deferral or
/// spawned workflow.
pub(crate) fn result_link(text: &str) -> Result<Option<ExecutionId>, StoreError> {
    let result: ExecutionResult =
        serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("result: {e}")))?;
    Ok(match result {
        ExecutionResult::Cached { successor }
        | ExecutionResult::Deferred { successor }
        | ExecutionResult::Spawned { successor } => Some(successor),
        _ => None,
    })
}

/// The values recorded in one cell of [`ASSET_COLUMNS`] (`table` names the column's table).
pub(crate) fn recorded_values(table: &str, text: &str) -> Result<Vec<Value>, StoreError> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("{table}: {e}"));
    Ok(match table {
        "steps" => serde_json::from_str(text).map_err(corrupt)?,
        "results" => match serde_json::from_str(text).map_err(corrupt)? {
            ExecutionResult::Value { value } => vec![value],
            _ => Vec::new(),
        },
        "checkpoints" => serde_json::from_str::<crate::model::Checkpoints>(text)
            .map_err(corrupt)?
            .into_values()
            .collect(),
        "stream_items" => vec![serde_json::from_str(text).map_err(corrupt)?],
        _ => {
            serde_json::from_str::<crate::model::Schedule>(text)
                .map_err(corrupt)?
                .arguments
        }
    })
}

/// How big a project's database is (see `SqliteStore::size_report`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeReport {
    /// Rows per run table (`runs`, `steps`, `executions`, ...).
    pub rows: HashMap<&'static str, u64>,
    /// Pages in use.
    pub used_pages: u64,
    /// Pages in the database file, free ones included.
    pub pages: u64,
}

/// Adds the ids of the asset records `value` refers to.
pub fn asset_ids(value: &Value, ids: &mut HashSet<String>) {
    for reference in value.references() {
        if let crate::model::Reference::Asset { id, .. } = reference {
            ids.insert(id.clone());
        }
    }
}

/// The runs of `candidates` that can all be deleted together: none of them is linked to from
/// a run outside the set (removing a linked run from the set can make the runs it links to
/// linked from outside in turn, so this repeats until nothing changes).
pub fn deletable(candidates: &[RunId], links: &[(RunId, RunId)]) -> Vec<RunId> {
    let mut set: HashSet<RunId> = candidates.iter().copied().collect();
    loop {
        let linked: HashSet<RunId> = links
            .iter()
            .filter(|(from, to)| set.contains(to) && !set.contains(from))
            .map(|(_, to)| *to)
            .collect();
        if linked.is_empty() {
            break;
        }
        set.retain(|run| !linked.contains(run));
    }
    candidates
        .iter()
        .copied()
        .filter(|r| set.contains(r))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_retention_keeps_runs_linked_from_outside_and_what_they_link_to() {
        let r = RunId;
        // 2 hit 1's cache; 3 spawned 4; 5 (not a candidate) hit 3's cache.
        let links = [(r(2), r(1)), (r(3), r(4)), (r(5), r(3))];
        assert_eq!(
            deletable(&[r(1), r(2), r(3), r(4)], &links),
            vec![r(1), r(2)]
        );
        assert_eq!(deletable(&[r(1)], &links), Vec::<RunId>::new());
        assert_eq!(deletable(&[r(2)], &links), vec![r(2)]);
    }
}

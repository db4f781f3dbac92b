//! Run retention: which finished runs are old enough to go, which of them
//! a surviving run still links to, and the deletion of a batch of runs with everything
//! recorded under them ([`Write::DeleteRuns`](super::Write::DeleteRuns)).
//!
//! A run is *linked to* when an execution of another run points at one of its executions: a
//! cache hit or a deferral (`cached`/`deferred` results), a spawned workflow (`spawned`
//! results, `calls`), or an extra parent → child link (`children`). Linked runs are kept until
//! every run linking to them has gone (see docs/semantics.md, *Run retention*).

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, params};

use super::StoreError;
use super::sqlite::SqliteStore;
use crate::model::{ExecutionId, ExecutionResult, Millis, RunId, Value};

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

fn run_key(run: RunId) -> Result<i64, StoreError> {
    i64::try_from(run.0).map_err(|_| StoreError::Corrupt(format!("run id {}", run.0)))
}

fn parse_execution(text: &str) -> Result<ExecutionId, StoreError> {
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("execution id '{text}': {e}")))
}

/// Deletes `runs` and every row recorded under them, skipping any that has an execution
/// without a result (a run re-run meanwhile). Returns the runs deleted.
pub(crate) fn delete_runs(conn: &Connection, runs: &[RunId]) -> Result<Vec<RunId>, StoreError> {
    let mut deleted = Vec::with_capacity(runs.len());
    for run in runs {
        let key = run_key(*run)?;
        let removed = conn
            .prepare_cached("DELETE FROM runs WHERE id = ?1 AND open_executions = 0")?
            .execute(params![key])?;
        if removed == 0 {
            continue;
        }
        for table in RUN_TABLES {
            conn.prepare_cached(&format!("DELETE FROM {table} WHERE run_id = ?1"))?
                .execute(params![key])?;
        }
        deleted.push(*run);
    }
    if let Some(max) = deleted.iter().map(|r| r.0).max() {
        conn.prepare_cached(
            "INSERT INTO deleted_runs (id, max_run_id) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET max_run_id = max(max_run_id, excluded.max_run_id)",
        )?
        .execute(params![i64::try_from(max).unwrap_or(i64::MAX)])?;
    }
    Ok(deleted)
}

impl SqliteStore {
    /// Up to `limit` runs created before `cutoff` that have no open execution, oldest first,
    /// after run `after` (exclusive; for paging).
    pub fn expired_runs(
        &self,
        cutoff: Millis,
        after: Option<RunId>,
        limit: usize,
    ) -> Result<Vec<RunId>, StoreError> {
        let after = after.map(run_key).transpose()?.unwrap_or(0);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.connection().prepare(
            "SELECT id FROM runs WHERE id > ?1 AND created_at < ?2 AND open_executions = 0
             ORDER BY id LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![after, cutoff, limit], |r| r.get::<_, i64>(0))?;
        rows.map(|id| {
            let id = id?;
            u64::try_from(id)
                .map(RunId)
                .map_err(|_| StoreError::Corrupt(format!("run id {id}")))
        })
        .collect()
    }

    /// Whether `run` has an execution without a result (`None`: no such run).
    pub fn run_is_open(&self, run: RunId) -> Result<Option<bool>, StoreError> {
        use rusqlite::OptionalExtension;
        let open: Option<i64> = self
            .connection()
            .query_row(
                "SELECT open_executions FROM runs WHERE id = ?1",
                params![run_key(run)?],
                |r| r.get(0),
            )
            .optional()?;
        Ok(open.map(|n| n > 0))
    }

    /// Every link from an execution of one run to an execution of another, as (linking run,
    /// linked run). Read in one pass over the linking rows; an undecodable row is an error
    /// (a caller deciding what to delete must not mistake it for no link).
    pub fn cross_run_links(&self) -> Result<Vec<(RunId, RunId)>, StoreError> {
        let conn = self.connection();
        let mut links = HashSet::new();
        let mut add = |from: i64, to: ExecutionId| {
            let from = u64::try_from(from).map(RunId).unwrap_or(RunId(0));
            if from != to.run() {
                links.insert((from, to.run()));
            }
        };
        let mut results = conn.prepare(LINKING_RESULTS_SQL)?;
        let mut rows = results.query([])?;
        while let Some(row) = rows.next()? {
            let text: String = row.get(1)?;
            if let Some(successor) = result_link(&text)? {
                add(row.get(0)?, successor);
            }
        }
        for query in LINK_SQL {
            let mut stmt = conn.prepare(query)?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let child: String = row.get(1)?;
                add(row.get(0)?, parse_execution(&child)?);
            }
        }
        Ok(links.into_iter().collect())
    }

    /// The ids of the asset records that a recorded value refers to (step arguments, results,
    /// checkpoints, stream items, schedule arguments). Only rows whose JSON mentions an asset
    /// are decoded; an undecodable one is an error.
    pub fn referenced_asset_ids(&self) -> Result<HashSet<String>, StoreError> {
        let conn = self.connection();
        let mut ids = HashSet::new();
        for (table, column) in ASSET_COLUMNS {
            let mut stmt = conn.prepare(&format!(
                "SELECT {column} FROM {table} WHERE {column} LIKE '%\"asset\"%'"
            ))?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let text: String = row.get(0)?;
                for value in recorded_values(table, &text)? {
                    asset_ids(&value, &mut ids);
                }
            }
        }
        Ok(ids)
    }

    /// Row counts of the run tables and the database's used pages (`page_count` minus
    /// `freelist_count`), for checking that retention keeps a project bounded.
    pub fn size_report(&self) -> Result<SizeReport, StoreError> {
        let conn = self.connection();
        let mut rows = HashMap::new();
        for table in std::iter::once("runs").chain(RUN_TABLES) {
            let count: i64 =
                conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
            rows.insert(table, u64::try_from(count).unwrap_or(0));
        }
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        Ok(SizeReport {
            rows,
            used_pages: u64::try_from(pages - free).unwrap_or(0),
            pages: u64::try_from(pages).unwrap_or(0),
        })
    }
}

/// How big a project's database is (see [`SqliteStore::size_report`]).
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
    use crate::model::{EnvironmentId, RunRecord};
    use crate::store::{ProjectStore, Write};

    #[test]
    fn store_retention_deleted_run_ids_are_never_handed_out_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("project.sqlite");
        let mut store = SqliteStore::open(&path, crate::store::Durability::Normal).unwrap();
        let run = |id| {
            Write::CreateRun(RunRecord {
                id: RunId(id),
                environment: EnvironmentId(1),
                parent_execution: None,
                created_at: 10,
            })
        };
        store.apply(&[run(4), run(5)]).unwrap();
        store
            .apply(&[Write::DeleteRuns(vec![RunId(5), RunId(4)])])
            .unwrap();
        assert!(store.expired_runs(100, None, 10).unwrap().is_empty());
        drop(store);
        let store = SqliteStore::open(&path, crate::store::Durability::Normal).unwrap();
        assert_eq!(store.load().unwrap().next_run, 6, "after a restart too");
    }

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

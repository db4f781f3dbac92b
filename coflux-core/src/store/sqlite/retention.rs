//! Run retention in the SQLite store: the runs old enough to go, the links between runs, the
//! deletion of a batch of runs with everything recorded under them
//! ([`Write::DeleteRuns`](crate::store::Write::DeleteRuns)), and the database's size. Which
//! runs may go together is decided in [`crate::store::retention`].

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, params};

use super::SqliteStore;
use crate::model::{ExecutionId, Millis, RunId};
use crate::store::StoreError;
use crate::store::codec::{parse_execution, run_key};
use crate::store::retention::{
    ASSET_COLUMNS, LINK_SQL, LINKING_RESULTS_SQL, RUN_TABLES, SizeReport, asset_ids,
    recorded_values, result_link,
};

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
}

//! Run retention on PostgreSQL: the same reads and deletion as the SQLite store's
//! (`store::retention`, which defines what a link between runs is), over this backend's rows.

use std::collections::{HashMap, HashSet};

use super::{Conn, PgStore};
use crate::model::{ExecutionId, Millis, RunId};
use crate::store::StoreError;
use crate::store::retention::{
    ASSET_COLUMNS, LINK_SQL, LINKING_RESULTS_SQL, RUN_TABLES, SizeReport, asset_ids,
    recorded_values, result_link,
};
use crate::store::sqlite::{parse_execution, run_key, to_u64};

/// `DELETE FROM <table> WHERE run_id = $1` for each of [`RUN_TABLES`] (static text, so each is
/// prepared once per connection).
const DELETE_SQL: [&str; 10] = [
    "DELETE FROM steps WHERE run_id = $1",
    "DELETE FROM executions WHERE run_id = $1",
    "DELETE FROM results WHERE run_id = $1",
    "DELETE FROM children WHERE run_id = $1",
    "DELETE FROM calls WHERE run_id = $1",
    "DELETE FROM checkpoints WHERE run_id = $1",
    "DELETE FROM stream_items WHERE run_id = $1",
    "DELETE FROM streams WHERE run_id = $1",
    "DELETE FROM inputs WHERE run_id = $1",
    "DELETE FROM idempotency_keys WHERE run_id = $1",
];

/// Deletes `runs` and every row recorded under them inside the writer's transaction, skipping
/// any that has an execution without a result; returns the runs deleted.
pub(super) fn delete_runs(conn: &mut Conn, runs: &[RunId]) -> Result<Vec<RunId>, StoreError> {
    let mut deleted = Vec::with_capacity(runs.len());
    for run in runs {
        let key = run_key(*run)?;
        let removed = conn.exec(
            "DELETE FROM runs WHERE id = $1 AND open_executions = 0",
            &[&key],
        )?;
        if removed == 0 {
            continue;
        }
        for sql in DELETE_SQL {
            conn.exec(sql, &[&key])?;
        }
        deleted.push(*run);
    }
    if let Some(max) = deleted.iter().map(|r| r.0).max() {
        conn.exec(
            "INSERT INTO deleted_runs (id, max_run_id) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE
             SET max_run_id = GREATEST(deleted_runs.max_run_id, excluded.max_run_id)",
            &[&i64::try_from(max).unwrap_or(i64::MAX)],
        )?;
    }
    Ok(deleted)
}

impl PgStore {
    /// Up to `limit` runs created before `cutoff` that have no open execution, oldest first,
    /// after run `after` (exclusive).
    pub fn expired_runs(
        &self,
        cutoff: Millis,
        after: Option<RunId>,
        limit: usize,
    ) -> Result<Vec<RunId>, StoreError> {
        let after = after.map(run_key).transpose()?.unwrap_or(0);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|r| {
            r.conn
                .query(
                    "SELECT id FROM runs WHERE id > $1 AND created_at < $2
                     AND open_executions = 0 ORDER BY id LIMIT $3",
                    &[&after, &cutoff, &limit],
                )?
                .iter()
                .map(|row| Ok(RunId(to_u64(row.try_get(0)?, "run id")?)))
                .collect()
        })
    }

    /// Whether `run` has an execution without a result (`None`: no such run).
    pub fn run_is_open(&self, run: RunId) -> Result<Option<bool>, StoreError> {
        let key = run_key(run)?;
        self.read(|r| {
            let rows = r
                .conn
                .query("SELECT open_executions FROM runs WHERE id = $1", &[&key])?;
            rows.first()
                .map(|row| Ok(row.try_get::<_, i64>(0)? > 0))
                .transpose()
        })
    }

    /// Every link from an execution of one run to an execution of another, as (linking run,
    /// linked run); an undecodable row is an error.
    pub fn cross_run_links(&self) -> Result<Vec<(RunId, RunId)>, StoreError> {
        self.read(|r| {
            let mut links = HashSet::new();
            let mut add = |from: i64, to: ExecutionId| {
                let from = u64::try_from(from).map(RunId).unwrap_or(RunId(0));
                if from != to.run() {
                    links.insert((from, to.run()));
                }
            };
            for row in r.conn.query(LINKING_RESULTS_SQL, &[])? {
                let text: String = row.try_get(1)?;
                if let Some(successor) = result_link(&text)? {
                    add(row.try_get(0)?, successor);
                }
            }
            for sql in LINK_SQL {
                for row in r.conn.query(sql, &[])? {
                    let child: String = row.try_get(1)?;
                    add(row.try_get(0)?, parse_execution(&child)?);
                }
            }
            Ok(links.into_iter().collect())
        })
    }

    /// The ids of the asset records that a recorded value refers to.
    pub fn referenced_asset_ids(&self) -> Result<HashSet<String>, StoreError> {
        self.read(|r| {
            let mut ids = HashSet::new();
            for (table, column) in ASSET_COLUMNS {
                let sql = format!("SELECT {column} FROM {table} WHERE {column} LIKE '%\"asset\"%'");
                for row in r.conn.client.query(&sql, &[])? {
                    let text: String = row.try_get(0)?;
                    for value in recorded_values(table, &text)? {
                        asset_ids(&value, &mut ids);
                    }
                }
            }
            Ok(ids)
        })
    }

    /// Row counts of the run tables and the pages (of `block_size` bytes) the project's tables
    /// and indexes take; PostgreSQL reuses the space of deleted rows after a vacuum, so
    /// `used_pages` equals `pages` here.
    pub fn size_report(&self) -> Result<SizeReport, StoreError> {
        let schema = self.location.schema.clone();
        self.read(move |r| {
            let mut rows = HashMap::new();
            for table in std::iter::once("runs").chain(RUN_TABLES) {
                let count: i64 = r
                    .conn
                    .client
                    .query_one(&format!("SELECT count(*) FROM {table}"), &[])?
                    .try_get(0)?;
                rows.insert(table, u64::try_from(count).unwrap_or(0));
            }
            let pages: i64 = r
                .conn
                .client
                .query_one(
                    "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::BIGINT
                            / current_setting('block_size')::BIGINT
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = $1 AND c.relkind = 'r'",
                    &[&schema],
                )?
                .try_get(0)?;
            let pages = u64::try_from(pages).unwrap_or(0);
            Ok(SizeReport {
                rows,
                used_pages: pages,
                pages,
            })
        })
    }
}

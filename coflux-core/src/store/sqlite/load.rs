//! Recovery reads: the project snapshot [`ProjectStore::load`](crate::store::ProjectStore::load)
//! returns (environments, active runs, cache entries, keys, limits, schedules) and one run's
//! snapshot, each read inside the caller's read transaction.

use super::SqliteStore;
use crate::model::{
    Environment, EnvironmentId, EnvironmentName, EnvironmentState, RunId, RunRecord, TargetRef,
};
use crate::store::codec::{execution_id, from_json, parse_execution, run_key, to_u32, to_u64};
use crate::store::rows::{execution_from_row, step_from_row};
use crate::store::{CacheEntry, CacheOutcome, ProjectSnapshot, RunSnapshot, StoreError};
use rusqlite::OptionalExtension;

impl SqliteStore {
    fn load_environments(&self) -> Result<Vec<Environment>, StoreError> {
        let sql = "SELECT id, name, parent_id, state, created_at FROM environments ORDER BY id";
        self.query_all(sql, [], |row| {
            let name: String = row.get(1)?;
            let state: String = row.get(3)?;
            Ok(Environment {
                id: EnvironmentId(to_u32(row.get(0)?, "environment id")?),
                name: EnvironmentName::new(&name)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                parent: row
                    .get::<_, Option<i64>>(2)?
                    .map(|p| to_u32(p, "parent environment id").map(EnvironmentId))
                    .transpose()?,
                state: EnvironmentState::parse(&state)
                    .ok_or_else(|| StoreError::Corrupt(format!("environment state '{state}'")))?,
                created_at: row.get(4)?,
            })
        })
    }

    fn load_cache_entries(&self) -> Result<Vec<CacheEntry>, StoreError> {
        let sql = "SELECT s.cache_key, e.run_id, e.step_number, e.attempt, e.environment_id,
                    e.created_at, r.kind, r.created_at
             FROM steps s
             JOIN executions e ON e.run_id = s.run_id AND e.step_number = s.number
             LEFT JOIN results r ON r.run_id = e.run_id AND r.step_number = e.step_number
                                AND r.attempt = e.attempt
             WHERE s.cache_key IS NOT NULL AND (r.kind IS NULL OR r.kind = 'value')
             ORDER BY s.cache_key, e.run_id, e.step_number, e.attempt";
        self.query_all(sql, [], |row| {
            let kind: Option<String> = row.get(6)?;
            let outcome = match kind.as_deref() {
                None => CacheOutcome::Pending,
                Some("value") => CacheOutcome::Succeeded(row.get(7)?),
                Some(_) => CacheOutcome::Failed,
            };
            Ok(CacheEntry {
                key: row.get(0)?,
                execution: execution_id(row.get(1)?, row.get(2)?, row.get(3)?)?,
                environment: EnvironmentId(to_u32(row.get(4)?, "environment id")?),
                created_at: row.get(5)?,
                outcome,
            })
        })
    }

    pub(super) fn load_run_snapshot(&self, run: RunId) -> Result<Option<RunSnapshot>, StoreError> {
        let run_key = run_key(run)?;
        let Some(run_record) = self.run_record(run)? else {
            return Ok(None);
        };

        let steps_sql = concat!(
            "SELECT ",
            step_columns!(),
            " FROM steps WHERE run_id = ?1 ORDER BY number"
        );
        let steps = self.query_all(steps_sql, [run_key], |row| step_from_row(run, row))?;
        let executions_sql = concat!(
            executions_select!(),
            " WHERE e.run_id = ?1 ORDER BY e.step_number, e.attempt"
        );
        let executions = self.query_all(executions_sql, [run_key], |row| {
            execution_from_row(run, row)
        })?;
        let children_sql = "SELECT parent, child FROM children WHERE run_id = ?1";
        let mut children = self.query_all(children_sql, [run_key], |row| {
            let parent: String = row.get(0)?;
            let child: String = row.get(1)?;
            Ok((parse_execution(&parent)?, parse_execution(&child)?))
        })?;
        children.sort_unstable();
        let calls_sql = "SELECT parent, call, child FROM calls WHERE run_id = ?1";
        let calls = self.query_all(calls_sql, [run_key], |row| {
            let parent: String = row.get(0)?;
            let child: String = row.get(2)?;
            Ok((
                parse_execution(&parent)?,
                to_u32(row.get(1)?, "call")?,
                parse_execution(&child)?,
            ))
        })?;

        let checkpoints = crate::store::checkpoints::load(&self.conn, run)?;
        let streams = crate::store::streams::load(&self.conn, run)?;
        let inputs = crate::store::inputs::load(&self.conn, run)?;
        Ok(Some(RunSnapshot {
            run: run_record,
            steps,
            executions,
            children,
            calls,
            checkpoints,
            streams,
            inputs,
        }))
    }

    /// A run's own record, if it exists.
    pub(super) fn run_record(&self, run: RunId) -> Result<Option<RunRecord>, StoreError> {
        let record = self
            .conn
            .prepare_cached(
                "SELECT environment_id, parent_execution, created_at FROM runs WHERE id = ?1",
            )?
            .query_row([run_key(run)?], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, Option<String>>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })
            .optional()?;
        let Some((environment, parent, created_at)) = record else {
            return Ok(None);
        };
        Ok(Some(RunRecord {
            id: run,
            environment: EnvironmentId(to_u32(environment, "environment id")?),
            parent_execution: parent.as_deref().map(parse_execution).transpose()?,
            created_at,
        }))
    }

    pub(super) fn load_in_transaction(&self) -> Result<ProjectSnapshot, StoreError> {
        let environments = self.load_environments()?;
        let max_run: i64 = self
            .conn
            .prepare_cached(
                "SELECT max(COALESCE((SELECT MAX(id) FROM runs), 0),
                            COALESCE((SELECT max_run_id FROM deleted_runs WHERE id = 1), 0))",
            )?
            .query_row([], |row| row.get(0))?;
        let next_run = to_u64(max_run, "run id")? + 1;
        let active_ids: Vec<i64> = {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT id FROM runs WHERE open_executions > 0 ORDER BY id")?;
            stmt.query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()?
        };
        let mut active_runs = Vec::with_capacity(active_ids.len());
        for id in active_ids {
            if let Some(run) = self.load_run_snapshot(RunId(to_u64(id, "run id")?))? {
                active_runs.push(run);
            }
        }
        let cache_entries = self.load_cache_entries()?;
        let keys_sql = "SELECT environment_id, key, run_id, created_at FROM idempotency_keys";
        let idempotency_keys = self.query_all(keys_sql, [], |row| {
            Ok((
                EnvironmentId(to_u32(row.get(0)?, "environment id")?),
                row.get::<_, String>(1)?,
                RunId(to_u64(row.get(2)?, "run id")?),
                row.get::<_, i64>(3)?,
            ))
        })?;
        let limits_sql =
            "SELECT environment_id, module, target, max_running FROM concurrency_limits";
        let concurrency_limits = self.query_all(limits_sql, [], |row| {
            Ok((
                EnvironmentId(to_u32(row.get(0)?, "environment id")?),
                TargetRef::new(row.get::<_, String>(1)?, row.get::<_, String>(2)?),
                to_u32(row.get(3)?, "concurrency limit")?,
            ))
        })?;
        let schedules = self.schedules()?;
        let manifests_sql = "SELECT environment_id, definition FROM manifests
             ORDER BY environment_id, module, target";
        let manifests = self.query_all(manifests_sql, [], |row| {
            Ok((
                EnvironmentId(to_u32(row.get(0)?, "environment id")?),
                from_json(&row.get::<_, String>(1)?, "manifest")?,
            ))
        })?;
        Ok(ProjectSnapshot {
            environments,
            next_run,
            active_runs,
            cache_entries,
            idempotency_keys,
            concurrency_limits,
            schedules,
            manifests,
        })
    }
}

//! Reads: the recovery snapshot, one run, manifests and the runs list, each decoded the same
//! way as the SQLite store's.

use super::{Conn, run_data};
use crate::model::{
    Environment, EnvironmentId, EnvironmentName, EnvironmentState, RunId, RunRecord, Schedule,
    TargetDefinition, TargetRef,
};
use crate::store::rows::{execution_from_row, step_from_row};
use crate::store::sqlite::{execution_id, from_json, parse_execution, run_key, to_u32, to_u64};
use crate::store::{
    CacheEntry, CacheOutcome, ProjectSnapshot, RunSnapshot, RunSummary, StoreError,
};

/// Reads inside one transaction (see [`super::PgStore`]).
pub(super) struct Reader<'a> {
    pub(super) conn: &'a mut Conn,
}

fn env_id(value: i64) -> Result<EnvironmentId, StoreError> {
    Ok(EnvironmentId(to_u32(value, "environment id")?))
}

impl Reader<'_> {
    /// What recovery needs.
    pub(super) fn snapshot(&mut self) -> Result<ProjectSnapshot, StoreError> {
        let environments = self.environments()?;
        let max_run = self.conn.count(
            "SELECT GREATEST(COALESCE((SELECT MAX(id) FROM runs), 0),
                                 COALESCE((SELECT max_run_id FROM deleted_runs WHERE id = 1), 0))",
            &[],
        )?;
        let next_run = to_u64(max_run, "run id")? + 1;
        let active: Vec<i64> = self
            .conn
            .query(
                "SELECT id FROM runs WHERE open_executions > 0 ORDER BY id",
                &[],
            )?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        let mut active_runs = Vec::with_capacity(active.len());
        for id in active {
            if let Some(run) = self.run_snapshot(RunId(to_u64(id, "run id")?))? {
                active_runs.push(run);
            }
        }
        let cache_entries = self.cache_entries()?;
        let idempotency_keys = self
            .conn
            .query(
                "SELECT environment_id, key, run_id, created_at FROM idempotency_keys",
                &[],
            )?
            .iter()
            .map(|row| {
                Ok((
                    env_id(row.try_get(0)?)?,
                    row.try_get::<_, String>(1)?,
                    RunId(to_u64(row.try_get(2)?, "run id")?),
                    row.try_get::<_, i64>(3)?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        let concurrency_limits = self
            .conn
            .query(
                "SELECT environment_id, module, target, max_running FROM concurrency_limits",
                &[],
            )?
            .iter()
            .map(|row| {
                Ok((
                    env_id(row.try_get(0)?)?,
                    TargetRef::new(row.try_get::<_, String>(1)?, row.try_get::<_, String>(2)?),
                    to_u32(row.try_get(3)?, "concurrency limit")?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(ProjectSnapshot {
            environments,
            next_run,
            active_runs,
            cache_entries,
            idempotency_keys,
            concurrency_limits,
            schedules: self.schedules()?,
            manifests: self.all_manifests()?,
        })
    }

    fn environments(&mut self) -> Result<Vec<Environment>, StoreError> {
        self.conn
            .query(
                "SELECT id, name, parent_id, state, created_at FROM environments ORDER BY id",
                &[],
            )?
            .iter()
            .map(|row| {
                let name: String = row.try_get(1)?;
                let state: String = row.try_get(3)?;
                Ok(Environment {
                    id: env_id(row.try_get(0)?)?,
                    name: EnvironmentName::new(&name)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    parent: row.try_get::<_, Option<i64>>(2)?.map(env_id).transpose()?,
                    state: EnvironmentState::parse(&state).ok_or_else(|| {
                        StoreError::Corrupt(format!("environment state '{state}'"))
                    })?,
                    created_at: row.try_get(4)?,
                })
            })
            .collect()
    }

    fn cache_entries(&mut self) -> Result<Vec<CacheEntry>, StoreError> {
        self.conn
            .query(
                "SELECT s.cache_key, e.run_id, e.step_number, e.attempt, e.environment_id,
                        e.created_at, r.kind, r.created_at
                 FROM steps s
                 JOIN executions e ON e.run_id = s.run_id AND e.step_number = s.number
                 LEFT JOIN results r ON r.run_id = e.run_id AND r.step_number = e.step_number
                                    AND r.attempt = e.attempt
                 WHERE s.cache_key IS NOT NULL AND (r.kind IS NULL OR r.kind = 'value')
                 ORDER BY s.cache_key COLLATE \"C\", e.run_id, e.step_number, e.attempt",
                &[],
            )?
            .iter()
            .map(|row| {
                let kind: Option<String> = row.try_get(6)?;
                let outcome = match kind.as_deref() {
                    None => CacheOutcome::Pending,
                    Some("value") => CacheOutcome::Succeeded(row.try_get(7)?),
                    Some(_) => CacheOutcome::Failed,
                };
                Ok(CacheEntry {
                    key: row.try_get(0)?,
                    execution: execution_id(row.try_get(1)?, row.try_get(2)?, row.try_get(3)?)?,
                    environment: env_id(row.try_get(4)?)?,
                    created_at: row.try_get(5)?,
                    outcome,
                })
            })
            .collect()
    }

    /// The run's own record.
    pub(super) fn run_record(&mut self, run: RunId) -> Result<Option<RunRecord>, StoreError> {
        let rows = self.conn.query(
            "SELECT environment_id, parent_execution, created_at FROM runs WHERE id = $1",
            &[&run_key(run)?],
        )?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let parent: Option<String> = row.try_get(1)?;
        Ok(Some(RunRecord {
            id: run,
            environment: env_id(row.try_get(0)?)?,
            parent_execution: parent.as_deref().map(parse_execution).transpose()?,
            created_at: row.try_get(2)?,
        }))
    }

    /// Everything recorded about one run.
    pub(super) fn run_snapshot(&mut self, run: RunId) -> Result<Option<RunSnapshot>, StoreError> {
        let key = run_key(run)?;
        let Some(record) = self.run_record(run)? else {
            return Ok(None);
        };
        let steps = self
            .conn
            .query(
                "SELECT number, parent_execution, module, target, kind, arguments, options,
                        cache_key, memo_key, created_at
                 FROM steps WHERE run_id = $1 ORDER BY number",
                &[&key],
            )?
            .iter()
            .map(|row| step_from_row(run, row))
            .collect::<Result<_, _>>()?;
        let executions = self
            .conn
            .query(
                "SELECT e.step_number, e.attempt, e.environment_id, e.execute_after, e.created_at,
                        e.worker_id, e.assigned_at, r.result, r.created_at, e.dependencies
                 FROM executions e
                 LEFT JOIN results r ON r.run_id = e.run_id AND r.step_number = e.step_number
                                    AND r.attempt = e.attempt
                 WHERE e.run_id = $1 ORDER BY e.step_number, e.attempt",
                &[&key],
            )?
            .iter()
            .map(|row| execution_from_row(run, row))
            .collect::<Result<_, _>>()?;
        let mut children = self
            .conn
            .query(
                "SELECT parent, child FROM children WHERE run_id = $1",
                &[&key],
            )?
            .iter()
            .map(|row| {
                let parent: String = row.try_get(0)?;
                let child: String = row.try_get(1)?;
                Ok((parse_execution(&parent)?, parse_execution(&child)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        children.sort_unstable();
        let calls = self
            .conn
            .query(
                "SELECT parent, call, child FROM calls WHERE run_id = $1
                 ORDER BY parent COLLATE \"C\", call",
                &[&key],
            )?
            .iter()
            .map(|row| {
                let parent: String = row.try_get(0)?;
                let child: String = row.try_get(2)?;
                Ok((
                    parse_execution(&parent)?,
                    to_u32(row.try_get(1)?, "call")?,
                    parse_execution(&child)?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Some(RunSnapshot {
            run: record,
            steps,
            executions,
            children,
            calls,
            checkpoints: run_data::checkpoints(self.conn, run)?,
            streams: run_data::streams(self.conn, run)?,
            inputs: run_data::inputs(self.conn, run)?,
        }))
    }

    /// The manifests of an environment, by module and target.
    /// The definitions registered in every environment.
    fn all_manifests(&mut self) -> Result<Vec<(EnvironmentId, TargetDefinition)>, StoreError> {
        self.conn
            .query(
                "SELECT environment_id, definition FROM manifests
                 ORDER BY environment_id, module COLLATE \"C\", target COLLATE \"C\"",
                &[],
            )?
            .iter()
            .map(|row| {
                Ok((
                    env_id(row.try_get(0)?)?,
                    from_json(&row.try_get::<_, String>(1)?, "manifest")?,
                ))
            })
            .collect()
    }

    pub(super) fn manifests(
        &mut self,
        environment: EnvironmentId,
    ) -> Result<Vec<TargetDefinition>, StoreError> {
        self.conn
            .query(
                "SELECT definition FROM manifests WHERE environment_id = $1
                 ORDER BY module COLLATE \"C\", target COLLATE \"C\"",
                &[&i64::from(environment.0)],
            )?
            .iter()
            .map(|row| from_json(&row.try_get::<_, String>(0)?, "manifest"))
            .collect()
    }

    /// Runs, newest first.
    pub(super) fn list_runs(
        &mut self,
        environment: Option<EnvironmentId>,
        limit: usize,
    ) -> Result<Vec<RunSummary>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let env = environment.map(|e| i64::from(e.0));
        self.conn
            .query(
                "SELECT r.id, r.environment_id, r.created_at, s.module, s.target
                 FROM runs r JOIN steps s ON s.run_id = r.id AND s.number = 1
                 WHERE ($1::BIGINT IS NULL OR r.environment_id = $1)
                 ORDER BY r.id DESC LIMIT $2",
                &[&env, &limit],
            )?
            .iter()
            .map(|row| {
                Ok(RunSummary {
                    id: RunId(to_u64(row.try_get(0)?, "run id")?),
                    environment: env_id(row.try_get(1)?)?,
                    created_at: row.try_get(2)?,
                    target: TargetRef {
                        module: row.try_get(3)?,
                        name: row.try_get(4)?,
                    },
                })
            })
            .collect()
    }

    /// The cron schedules, by id.
    pub(super) fn schedules(&mut self) -> Result<Vec<Schedule>, StoreError> {
        self.conn
            .query(
                "SELECT definition, last_tick, missed FROM schedules ORDER BY id",
                &[],
            )?
            .iter()
            .map(|row| {
                let mut schedule: Schedule = from_json(&row.try_get::<_, String>(0)?, "schedule")?;
                schedule.last_tick = row.try_get(1)?;
                schedule.missed = to_u64(row.try_get(2)?, "missed ticks")?;
                Ok(schedule)
            })
            .collect()
    }

    /// The per-target concurrency limits of an environment, by target.
    pub(super) fn concurrency_limits(
        &mut self,
        environment: EnvironmentId,
    ) -> Result<Vec<(TargetRef, u32)>, StoreError> {
        self.conn
            .query(
                "SELECT module, target, max_running FROM concurrency_limits
                 WHERE environment_id = $1 ORDER BY module COLLATE \"C\", target COLLATE \"C\"",
                &[&i64::from(environment.0)],
            )?
            .iter()
            .map(|row| {
                Ok((
                    TargetRef::new(row.try_get::<_, String>(0)?, row.try_get::<_, String>(1)?),
                    to_u32(row.try_get(2)?, "concurrency limit")?,
                ))
            })
            .collect()
    }
}

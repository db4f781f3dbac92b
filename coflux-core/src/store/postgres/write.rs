//! Applying one [`Write`] inside an open transaction: the same rows as the SQLite store's,
//! with the same rules (a row whose owner is missing fails the batch with
//! [`StoreError::Missing`]; a second result is ignored; re-assigning replaces).

use postgres::types::ToSql;

use super::Conn;
use crate::store::open_runs::{OpenRuns, Transition};
use crate::store::sqlite::{execution_key, result_kind_str, run_key, to_i64, to_json, to_u64};
use crate::store::{StoreError, Write};

pub(super) struct Writer<'a> {
    pub(super) conn: &'a mut Conn,
    pub(super) open_runs: &'a mut OpenRuns,
}

fn env_key(id: crate::model::EnvironmentId) -> i64 {
    i64::from(id.0)
}

fn sat(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// How many of `run`'s executions have no result, as written so far in this transaction.
fn open_executions(conn: &mut Conn, run: i64) -> Result<u64, StoreError> {
    let count = conn.count(
        "SELECT count(*) FROM executions e WHERE e.run_id = $1
           AND NOT EXISTS (SELECT 1 FROM results r WHERE r.run_id = e.run_id
                           AND r.step_number = e.step_number AND r.attempt = e.attempt)",
        &[&run],
    )?;
    to_u64(count, "open executions")
}

impl Writer<'_> {
    fn exec(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        self.conn.exec(sql, params)
    }

    fn mark_run(&mut self, run: i64, transition: Option<Transition>) -> Result<(), StoreError> {
        let open: i64 = match transition {
            None => return Ok(()),
            Some(Transition::Activated) => 1,
            Some(Transition::Idled) => 0,
        };
        self.exec(
            "UPDATE runs SET open_executions = $2 WHERE id = $1",
            &[&run, &open],
        )?;
        Ok(())
    }

    pub(super) fn apply(&mut self, write: &Write) -> Result<(), StoreError> {
        match write {
            Write::CreateEnvironment(env) => {
                self.exec(
                    "INSERT INTO environments (id, name, parent_id, state, created_at)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &env_key(env.id),
                        &env.name.as_str(),
                        &env.parent.map(env_key),
                        &env.state.as_str(),
                        &env.created_at,
                    ],
                )?;
            }
            Write::PutIdempotencyKey {
                environment,
                key,
                run,
                at,
            } => {
                self.exec(
                    "INSERT INTO idempotency_keys (environment_id, key, run_id, created_at)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (environment_id, key)
                     DO UPDATE SET run_id = excluded.run_id, created_at = excluded.created_at",
                    &[&env_key(*environment), key, &run_key(*run)?, at],
                )?;
            }
            Write::PutManifests {
                environment,
                definitions,
                at,
            } => {
                for definition in definitions {
                    self.exec(
                        "INSERT INTO manifests
                             (environment_id, module, target, definition, registered_at)
                         VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (environment_id, module, target)
                         DO UPDATE SET definition = excluded.definition,
                                       registered_at = excluded.registered_at",
                        &[
                            &env_key(*environment),
                            &definition.target.module,
                            &definition.target.name,
                            &to_json(definition)?,
                            at,
                        ],
                    )?;
                }
            }
            Write::PutSchedule(schedule) => {
                self.exec(
                    "INSERT INTO schedules (id, definition, last_tick, missed)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (id) DO UPDATE SET definition = excluded.definition,
                         last_tick = excluded.last_tick, missed = excluded.missed",
                    &[
                        &i64::from(schedule.id),
                        &to_json(schedule.as_ref())?,
                        &schedule.last_tick,
                        &sat(schedule.missed),
                    ],
                )?;
            }
            Write::DeleteSchedule { id } => {
                self.exec("DELETE FROM schedules WHERE id = $1", &[&i64::from(*id)])?;
            }
            Write::ScheduleTicked {
                id,
                last_tick,
                missed,
            } => {
                self.exec(
                    "UPDATE schedules SET last_tick = $2, missed = $3 WHERE id = $1",
                    &[&i64::from(*id), last_tick, &sat(*missed)],
                )?;
            }
            Write::ArchiveModule {
                environment,
                module,
            } => {
                self.exec(
                    "DELETE FROM manifests WHERE environment_id = $1 AND module = $2",
                    &[&env_key(*environment), module],
                )?;
            }
            Write::PutConcurrencyLimit {
                environment,
                target,
                max,
            } => match max {
                Some(max) => {
                    self.exec(
                        "INSERT INTO concurrency_limits
                             (environment_id, module, target, max_running)
                         VALUES ($1, $2, $3, $4)
                         ON CONFLICT (environment_id, module, target)
                         DO UPDATE SET max_running = excluded.max_running",
                        &[
                            &env_key(*environment),
                            &target.module,
                            &target.name,
                            &i64::from(*max),
                        ],
                    )?;
                }
                None => {
                    self.exec(
                        "DELETE FROM concurrency_limits
                         WHERE environment_id = $1 AND module = $2 AND target = $3",
                        &[&env_key(*environment), &target.module, &target.name],
                    )?;
                }
            },
            Write::SetEnvironmentState { id, state } => {
                let changed = self.exec(
                    "UPDATE environments SET state = $2 WHERE id = $1",
                    &[&env_key(*id), &state.as_str()],
                )?;
                if changed == 0 {
                    return Err(StoreError::Missing(format!("unknown environment {id}")));
                }
            }
            Write::SetEnvironmentParent { id, parent } => {
                let changed = self.exec(
                    "UPDATE environments SET parent_id = $2 WHERE id = $1",
                    &[&env_key(*id), &parent.map(env_key)],
                )?;
                if changed == 0 {
                    return Err(StoreError::Missing(format!("unknown environment {id}")));
                }
            }
            Write::CreateRun(run) => {
                self.exec(
                    "INSERT INTO runs (id, environment_id, parent_execution, created_at)
                     VALUES ($1, $2, $3, $4)",
                    &[
                        &run_key(run.id)?,
                        &env_key(run.environment),
                        &run.parent_execution.map(|e| e.to_string()),
                        &run.created_at,
                    ],
                )?;
            }
            Write::CreateStep(step) => {
                let inserted = self.exec(
                    "INSERT INTO steps (run_id, number, parent_execution, module, target, kind,
                                        arguments, options, cache_key, memo_key, created_at)
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
                     WHERE EXISTS (SELECT 1 FROM runs WHERE id = $1)",
                    &[
                        &run_key(step.id.run)?,
                        &i64::from(step.id.number),
                        &step.parent_execution.map(|e| e.to_string()),
                        &step.target.module,
                        &step.target.name,
                        &step.kind.as_str(),
                        &to_json(&step.arguments)?,
                        &to_json(&step.options)?,
                        &step.cache_key,
                        &step.memo_key,
                        &step.created_at,
                    ],
                )?;
                if inserted == 0 {
                    return Err(StoreError::Missing(format!(
                        "step {} of unknown run",
                        step.id
                    )));
                }
            }
            Write::CreateExecution {
                id,
                environment,
                execute_after,
                created_at,
                dependencies,
            } => {
                let (run, step, attempt) = execution_key(*id)?;
                let dependencies = (!dependencies.is_empty())
                    .then(|| to_json(dependencies))
                    .transpose()?;
                // Counted before the insert, so a count read from the database excludes it.
                let conn = &mut *self.conn;
                let transition = self.open_runs.opened(run, || open_executions(conn, run))?;
                let inserted = self.exec(
                    "INSERT INTO executions (run_id, step_number, attempt, environment_id,
                                             execute_after, created_at, dependencies)
                     SELECT $1, $2, $3, $4, $5, $6, $7
                     WHERE EXISTS (SELECT 1 FROM steps WHERE run_id = $1 AND number = $2)",
                    &[
                        &run,
                        &step,
                        &attempt,
                        &env_key(*environment),
                        execute_after,
                        created_at,
                        &dependencies,
                    ],
                )?;
                if inserted == 0 {
                    return Err(StoreError::Missing(format!(
                        "execution {id} of unknown step"
                    )));
                }
                self.mark_run(run, transition)?;
            }
            Write::LinkChild { parent, child } => {
                self.exec(
                    "INSERT INTO children (run_id, parent, child) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                    &[
                        &run_key(parent.run())?,
                        &parent.to_string(),
                        &child.to_string(),
                    ],
                )?;
            }
            Write::PutCall {
                parent,
                call,
                child,
            } => {
                self.exec(
                    "INSERT INTO calls (run_id, parent, call, child) VALUES ($1, $2, $3, $4)
                     ON CONFLICT DO NOTHING",
                    &[
                        &run_key(parent.run())?,
                        &parent.to_string(),
                        &i64::from(*call),
                        &child.to_string(),
                    ],
                )?;
            }
            Write::Assign {
                execution,
                worker,
                at,
            } => {
                let (run, step, attempt) = execution_key(*execution)?;
                let changed = self.exec(
                    "UPDATE executions SET worker_id = $4, assigned_at = $5
                     WHERE run_id = $1 AND step_number = $2 AND attempt = $3",
                    &[&run, &step, &attempt, &to_i64(worker.0, "worker id")?, at],
                )?;
                if changed == 0 {
                    return Err(StoreError::Missing(format!(
                        "assignment of unknown execution {execution}"
                    )));
                }
            }
            Write::RecordResult {
                execution,
                result,
                at,
            } => {
                let (run, step, attempt) = execution_key(*execution)?;
                let inserted = self.exec(
                    "INSERT INTO results (run_id, step_number, attempt, kind, result, created_at)
                     SELECT $1, $2, $3, $4, $5, $6
                     WHERE EXISTS (SELECT 1 FROM executions
                                   WHERE run_id = $1 AND step_number = $2 AND attempt = $3)
                     ON CONFLICT DO NOTHING",
                    &[
                        &run,
                        &step,
                        &attempt,
                        &result_kind_str(result.kind()),
                        &to_json(result)?,
                        at,
                    ],
                )?;
                if inserted == 1 {
                    // Counted after the insert: read as if before (plus one).
                    let conn = &mut *self.conn;
                    let transition = self
                        .open_runs
                        .closed(run, || Ok::<_, StoreError>(open_executions(conn, run)? + 1))?;
                    self.mark_run(run, transition)?;
                } else {
                    let exists = self.conn.count(
                        "SELECT count(*) FROM results
                         WHERE run_id = $1 AND step_number = $2 AND attempt = $3",
                        &[&run, &step, &attempt],
                    )?;
                    if exists == 0 {
                        return Err(StoreError::Missing(format!(
                            "result of unknown execution {execution}"
                        )));
                    }
                }
            }
            Write::DeleteRuns(runs) => {
                super::retention::delete_runs(self.conn, runs)?;
            }
            other => super::run_data::put(self.conn, other)?,
        }
        Ok(())
    }
}

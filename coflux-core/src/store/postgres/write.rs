//! Applying one [`Write`] inside an open transaction: the same rows as the SQLite store's,
//! with the same rules (a row whose owner is missing fails the batch with
//! [`StoreError::Missing`]; a second result is ignored; re-assigning replaces).
//!
//! Statements are queued ([`Conn::queue`]) and sent together when the batch ends; what a
//! statement's result decides is a [`Check`] evaluated then. A run's `open_executions` is the
//! number of its executions without a result, kept by the same statement that inserts the
//! execution or the result (on SQLite it is a 0/1 flag kept by the writer; either way
//! `open_executions > 0` means active).

use super::client::{Param, params};
use super::{Check, Conn};
use crate::store::sqlite::{execution_key, result_kind_str, run_key, to_i64, to_json};
use crate::store::{StoreError, Write};

pub(super) struct Writer<'a> {
    pub(super) conn: &'a mut Conn,
}

fn env_key(id: crate::model::EnvironmentId) -> i64 {
    i64::from(id.0)
}

fn sat(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Writer<'_> {
    fn queue(&mut self, sql: &'static str, params: Vec<Param>) -> Result<(), StoreError> {
        self.conn.queue(sql, params, Check::None)
    }

    fn queue_changing(
        &mut self,
        sql: &'static str,
        params: Vec<Param>,
        missing: String,
    ) -> Result<(), StoreError> {
        self.conn.queue(sql, params, Check::Changed(missing))
    }

    pub(super) fn apply(&mut self, write: &Write) -> Result<(), StoreError> {
        match write {
            Write::CreateEnvironment(env) => {
                self.queue(
                    "INSERT INTO environments (id, name, parent_id, state, created_at)
                     VALUES ($1, $2, $3, $4, $5)",
                    params![
                        env_key(env.id),
                        env.name.as_str().to_owned(),
                        env.parent.map(env_key),
                        env.state.as_str().to_owned(),
                        env.created_at,
                    ],
                )?;
            }
            Write::PutIdempotencyKey {
                environment,
                key,
                run,
                at,
            } => {
                self.queue(
                    "INSERT INTO idempotency_keys (environment_id, key, run_id, created_at)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (environment_id, key)
                     DO UPDATE SET run_id = excluded.run_id, created_at = excluded.created_at",
                    params![env_key(*environment), key.clone(), run_key(*run)?, *at],
                )?;
            }
            Write::PutManifests {
                environment,
                definitions,
                at,
            } => {
                for definition in definitions {
                    self.queue(
                        "INSERT INTO manifests
                             (environment_id, module, target, definition, registered_at)
                         VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (environment_id, module, target)
                         DO UPDATE SET definition = excluded.definition,
                                       registered_at = excluded.registered_at",
                        params![
                            env_key(*environment),
                            definition.target.module.clone(),
                            definition.target.name.clone(),
                            to_json(definition)?,
                            *at,
                        ],
                    )?;
                }
            }
            Write::PutSchedule(schedule) => {
                self.queue(
                    "INSERT INTO schedules (id, definition, last_tick, missed)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (id) DO UPDATE SET definition = excluded.definition,
                         last_tick = excluded.last_tick, missed = excluded.missed",
                    params![
                        i64::from(schedule.id),
                        to_json(schedule.as_ref())?,
                        schedule.last_tick,
                        sat(schedule.missed),
                    ],
                )?;
            }
            Write::DeleteSchedule { id } => {
                self.queue(
                    "DELETE FROM schedules WHERE id = $1",
                    params![i64::from(*id)],
                )?;
            }
            Write::ScheduleTicked {
                id,
                last_tick,
                missed,
            } => {
                self.queue(
                    "UPDATE schedules SET last_tick = $2, missed = $3 WHERE id = $1",
                    params![i64::from(*id), *last_tick, sat(*missed)],
                )?;
            }
            Write::ArchiveModule {
                environment,
                module,
            } => {
                self.queue(
                    "DELETE FROM manifests WHERE environment_id = $1 AND module = $2",
                    params![env_key(*environment), module.clone()],
                )?;
            }
            Write::PutConcurrencyLimit {
                environment,
                target,
                max,
            } => match max {
                Some(max) => {
                    self.queue(
                        "INSERT INTO concurrency_limits
                             (environment_id, module, target, max_running)
                         VALUES ($1, $2, $3, $4)
                         ON CONFLICT (environment_id, module, target)
                         DO UPDATE SET max_running = excluded.max_running",
                        params![
                            env_key(*environment),
                            target.module.clone(),
                            target.name.clone(),
                            i64::from(*max),
                        ],
                    )?;
                }
                None => {
                    self.queue(
                        "DELETE FROM concurrency_limits
                         WHERE environment_id = $1 AND module = $2 AND target = $3",
                        params![
                            env_key(*environment),
                            target.module.clone(),
                            target.name.clone()
                        ],
                    )?;
                }
            },
            Write::SetEnvironmentState { id, state } => {
                self.queue_changing(
                    "UPDATE environments SET state = $2 WHERE id = $1",
                    params![env_key(*id), state.as_str().to_owned()],
                    format!("unknown environment {id}"),
                )?;
            }
            Write::SetEnvironmentParent { id, parent } => {
                self.queue_changing(
                    "UPDATE environments SET parent_id = $2 WHERE id = $1",
                    params![env_key(*id), parent.map(env_key)],
                    format!("unknown environment {id}"),
                )?;
            }
            Write::CreateRun(run) => {
                self.queue(
                    "INSERT INTO runs (id, environment_id, parent_execution, created_at)
                     VALUES ($1, $2, $3, $4)",
                    params![
                        run_key(run.id)?,
                        env_key(run.environment),
                        run.parent_execution.map(|e| e.to_string()),
                        run.created_at,
                    ],
                )?;
            }
            Write::CreateStep(step) => {
                self.queue_changing(
                    "INSERT INTO steps (run_id, number, parent_execution, module, target, kind,
                                        arguments, options, cache_key, memo_key, created_at)
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
                     WHERE EXISTS (SELECT 1 FROM runs WHERE id = $1)",
                    params![
                        run_key(step.id.run)?,
                        i64::from(step.id.number),
                        step.parent_execution.map(|e| e.to_string()),
                        step.target.module.clone(),
                        step.target.name.clone(),
                        step.kind.as_str().to_owned(),
                        to_json(&step.arguments)?,
                        to_json(&step.options)?,
                        step.cache_key.clone(),
                        step.memo_key.clone(),
                        step.created_at,
                    ],
                    format!("step {} of unknown run", step.id),
                )?;
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
                self.queue_changing(
                    "WITH inserted AS (
                         INSERT INTO executions (run_id, step_number, attempt, environment_id,
                                                 execute_after, created_at, dependencies)
                         SELECT $1, $2, $3, $4, $5, $6, $7
                         WHERE EXISTS (SELECT 1 FROM steps WHERE run_id = $1 AND number = $2)
                         RETURNING run_id)
                     UPDATE runs SET open_executions = open_executions + 1
                     WHERE id IN (SELECT run_id FROM inserted)",
                    params![
                        run,
                        step,
                        attempt,
                        env_key(*environment),
                        *execute_after,
                        *created_at,
                        dependencies,
                    ],
                    format!("execution {id} of unknown step"),
                )?;
            }
            Write::LinkChild { parent, child } => {
                self.queue(
                    "INSERT INTO children (run_id, parent, child) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                    params![
                        run_key(parent.run())?,
                        parent.to_string(),
                        child.to_string()
                    ],
                )?;
            }
            Write::PutCall {
                parent,
                call,
                child,
            } => {
                self.queue(
                    "INSERT INTO calls (run_id, parent, call, child) VALUES ($1, $2, $3, $4)
                     ON CONFLICT DO NOTHING",
                    params![
                        run_key(parent.run())?,
                        parent.to_string(),
                        i64::from(*call),
                        child.to_string(),
                    ],
                )?;
            }
            Write::Assign {
                execution,
                worker,
                at,
            } => {
                let (run, step, attempt) = execution_key(*execution)?;
                self.queue_changing(
                    "UPDATE executions SET worker_id = $4, assigned_at = $5
                     WHERE run_id = $1 AND step_number = $2 AND attempt = $3",
                    params![run, step, attempt, to_i64(worker.0, "worker id")?, *at],
                    format!("assignment of unknown execution {execution}"),
                )?;
            }
            Write::RecordResult {
                execution,
                result,
                at,
            } => {
                let (run, step, attempt) = execution_key(*execution)?;
                // A second result is ignored; a result of an unknown execution fails.
                self.conn.queue(
                    "WITH inserted AS (
                         INSERT INTO results (run_id, step_number, attempt, kind, result,
                                              created_at)
                         SELECT $1, $2, $3, $4, $5, $6
                         WHERE EXISTS (SELECT 1 FROM executions
                                       WHERE run_id = $1 AND step_number = $2 AND attempt = $3)
                         ON CONFLICT DO NOTHING
                         RETURNING run_id),
                     counted AS (
                         UPDATE runs SET open_executions = open_executions - 1
                         WHERE id IN (SELECT run_id FROM inserted) RETURNING id)
                     SELECT EXISTS (SELECT 1 FROM executions
                                    WHERE run_id = $1 AND step_number = $2 AND attempt = $3)",
                    params![
                        run,
                        step,
                        attempt,
                        result_kind_str(result.kind()).to_owned(),
                        to_json(result)?,
                        *at,
                    ],
                    Check::Holds(format!("result of unknown execution {execution}")),
                )?;
            }
            Write::DeleteRuns(runs) => {
                // It reads what it deletes: what is queued goes first.
                self.conn.flush()?;
                super::retention::delete_runs(self.conn, runs)?;
            }
            other => super::run_data::put(self.conn, other)?,
        }
        Ok(())
    }
}

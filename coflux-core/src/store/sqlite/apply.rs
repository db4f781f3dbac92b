//! The write path: each [`Write`] of a batch applied inside the batch's transaction, with the
//! run's active/idle flag kept in step (see the module documentation of [`super`]).

use rusqlite::{Connection, ffi, params};

use crate::store::codec::{execution_key, result_kind_str, run_key, to_i64, to_json, to_u64};
use crate::store::open_runs::{OpenRuns, Transition};
use crate::store::{StoreError, Write};

/// Applies one write inside an open transaction.
pub(super) fn apply_one(
    conn: &Connection,
    open_runs: &mut OpenRuns,
    write: &Write,
) -> Result<(), StoreError> {
    match write {
        Write::CreateEnvironment(env) => {
            conn.prepare_cached(
                "INSERT INTO environments (id, name, parent_id, state, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                i64::from(env.id.0),
                env.name.as_str(),
                env.parent.map(|p| i64::from(p.0)),
                env.state.as_str(),
                env.created_at,
            ])?;
        }
        Write::PutIdempotencyKey {
            environment,
            key,
            run,
            at,
        } => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO idempotency_keys (environment_id, key, run_id, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![i64::from(environment.0), key, run_key(*run)?, at])?;
        }
        Write::PutManifests {
            environment,
            definitions,
            at,
        } => {
            let mut stmt = conn.prepare_cached(
                "INSERT OR REPLACE INTO manifests (environment_id, module, target, definition, registered_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for definition in definitions {
                stmt.execute(params![
                    i64::from(environment.0),
                    definition.target.module,
                    definition.target.name,
                    to_json(definition)?,
                    at,
                ])?;
            }
        }
        Write::PutSchedule(schedule) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO schedules (id, definition, last_tick, missed)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                schedule.id,
                to_json(schedule.as_ref())?,
                schedule.last_tick,
                i64::try_from(schedule.missed).unwrap_or(i64::MAX)
            ])?;
        }
        Write::DeleteSchedule { id } => {
            conn.prepare_cached("DELETE FROM schedules WHERE id = ?1")?
                .execute([id])?;
        }
        Write::ScheduleTicked {
            id,
            last_tick,
            missed,
        } => {
            conn.prepare_cached("UPDATE schedules SET last_tick = ?2, missed = ?3 WHERE id = ?1")?
                .execute(params![
                    id,
                    last_tick,
                    i64::try_from(*missed).unwrap_or(i64::MAX)
                ])?;
        }
        Write::ArchiveModule {
            environment,
            module,
        } => {
            conn.prepare_cached("DELETE FROM manifests WHERE environment_id = ?1 AND module = ?2")?
                .execute(params![i64::from(environment.0), module])?;
        }
        Write::PutConcurrencyLimit {
            environment,
            target,
            max,
        } => match max {
            Some(max) => {
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO concurrency_limits
                         (environment_id, module, target, max_running)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    i64::from(environment.0),
                    target.module,
                    target.name,
                    max
                ])?;
            }
            None => {
                conn.prepare_cached(
                    "DELETE FROM concurrency_limits
                     WHERE environment_id = ?1 AND module = ?2 AND target = ?3",
                )?
                .execute(params![
                    i64::from(environment.0),
                    target.module,
                    target.name
                ])?;
            }
        },
        Write::SetEnvironmentState { id, state } => {
            let changed = conn
                .prepare_cached("UPDATE environments SET state = ?2 WHERE id = ?1")?
                .execute(params![i64::from(id.0), state.as_str()])?;
            if changed == 0 {
                return Err(missing(format!("unknown environment {id}")));
            }
        }
        Write::SetEnvironmentParent { id, parent } => {
            let changed = conn
                .prepare_cached("UPDATE environments SET parent_id = ?2 WHERE id = ?1")?
                .execute(params![i64::from(id.0), parent.map(|p| i64::from(p.0))])?;
            if changed == 0 {
                return Err(missing(format!("unknown environment {id}")));
            }
        }
        Write::CreateRun(run) => {
            conn.prepare_cached(
                "INSERT INTO runs (id, environment_id, parent_execution, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                run_key(run.id)?,
                i64::from(run.environment.0),
                run.parent_execution.map(|e| e.to_string()),
                run.created_at,
            ])?;
        }
        Write::CreateStep(step) => {
            let arguments = to_json(&step.arguments)?;
            let options = to_json(&step.options)?;
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO steps (run_id, number, parent_execution, module, target, kind,
                                        arguments, options, cache_key, memo_key, created_at)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11
                     WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?1)",
                )?
                .execute(params![
                    run_key(step.id.run)?,
                    i64::from(step.id.number),
                    step.parent_execution.map(|e| e.to_string()),
                    step.target.module,
                    step.target.name,
                    step.kind.as_str(),
                    arguments,
                    options,
                    step.cache_key,
                    step.memo_key,
                    step.created_at,
                ])?;
            if inserted == 0 {
                return Err(missing(format!("step {} of unknown run", step.id)));
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
            let transition = open_runs.opened(run, || open_executions(conn, run))?;
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO executions (run_id, step_number, attempt, environment_id,
                                             execute_after, created_at, dependencies)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
                     WHERE EXISTS (SELECT 1 FROM steps WHERE run_id = ?1 AND number = ?2)",
                )?
                .execute(params![
                    run,
                    step,
                    attempt,
                    i64::from(environment.0),
                    execute_after,
                    created_at,
                    dependencies
                ])?;
            if inserted == 0 {
                return Err(missing(format!("execution {id} of unknown step")));
            }
            mark_run(conn, run, transition)?;
        }
        Write::LinkChild { parent, child } => {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO children (run_id, parent, child) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![
                run_key(parent.run())?,
                parent.to_string(),
                child.to_string()
            ])?;
        }
        Write::PutCall {
            parent,
            call,
            child,
        } => {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO calls (run_id, parent, call, child) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                run_key(parent.run())?,
                parent.to_string(),
                i64::from(*call),
                child.to_string()
            ])?;
        }
        Write::Assign {
            execution,
            worker,
            at,
        } => {
            let (run, step, attempt) = execution_key(*execution)?;
            let inserted = conn
                .prepare_cached(
                    "UPDATE executions SET worker_id = ?4, assigned_at = ?5
                     WHERE run_id = ?1 AND step_number = ?2 AND attempt = ?3",
                )?
                .execute(params![
                    run,
                    step,
                    attempt,
                    to_i64(worker.0, "worker id")?,
                    at
                ])?;
            if inserted == 0 {
                return Err(missing(format!(
                    "assignment of unknown execution {execution}"
                )));
            }
        }
        Write::PutCheckpoints {
            step,
            environment,
            state,
            at,
        } => crate::store::checkpoints::put(conn, *step, *environment, state, *at)?,
        Write::PutStream {
            stream,
            position,
            producer,
            buffer,
            timeout_ms,
            opened_at,
        } => crate::store::streams::put(
            conn,
            *stream,
            *position,
            *producer,
            *buffer,
            *timeout_ms,
            *opened_at,
        )?,
        Write::PutStreamItem {
            stream,
            sequence,
            value,
            at,
        } => crate::store::streams::put_item(conn, *stream, *sequence, value, *at)?,
        Write::CloseStream {
            stream,
            closure,
            at,
        } => crate::store::streams::close(conn, *stream, closure, *at)?,
        Write::PutInput(input) => crate::store::inputs::put(conn, input)?,
        Write::DeleteRuns(runs) => {
            super::retention::delete_runs(conn, runs)?;
        }
        Write::RecordResult {
            execution,
            result,
            at,
        } => {
            let (run, step, attempt) = execution_key(*execution)?;
            let text = to_json(result)?;
            let has_result = |conn: &Connection| -> Result<bool, StoreError> {
                Ok(conn
                    .prepare_cached(
                        "SELECT 1 FROM results
                         WHERE run_id = ?1 AND step_number = ?2 AND attempt = ?3",
                    )?
                    .exists(params![run, step, attempt])?)
            };
            let inserted = conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO results (run_id, step_number, attempt, kind, result,
                                                    created_at)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6
                     WHERE EXISTS (SELECT 1 FROM executions
                                   WHERE run_id = ?1 AND step_number = ?2 AND attempt = ?3)",
                )?
                .execute(params![
                    run,
                    step,
                    attempt,
                    result_kind_str(result.kind()),
                    text,
                    at
                ])?;
            if inserted == 1 {
                // Counted after the insert: a count read from the database now excludes this
                // execution, so it is read as if before (plus one).
                let transition = open_runs
                    .closed(run, || Ok::<_, StoreError>(open_executions(conn, run)? + 1))?;
                mark_run(conn, run, transition)?;
            } else if !has_result(conn)? {
                return Err(missing(format!("result of unknown execution {execution}")));
            }
        }
    }
    Ok(())
}

/// How many of `run`'s executions have no result, as committed so far in this transaction.
fn open_executions(conn: &Connection, run: i64) -> Result<u64, StoreError> {
    let count: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM executions e
             WHERE e.run_id = ?1
               AND NOT EXISTS (SELECT 1 FROM results r WHERE r.run_id = e.run_id
                               AND r.step_number = e.step_number AND r.attempt = e.attempt)",
        )?
        .query_row([run], |row| row.get(0))?;
    to_u64(count, "open executions")
}

/// Records on a run's row that it became active or idle.
fn mark_run(conn: &Connection, run: i64, transition: Option<Transition>) -> Result<(), StoreError> {
    let open = match transition {
        None => return Ok(()),
        Some(Transition::Activated) => 1,
        Some(Transition::Idled) => 0,
    };
    conn.prepare_cached("UPDATE runs SET open_executions = ?2 WHERE id = ?1")?
        .execute([run, open])?;
    Ok(())
}

/// A constraint error for a write that refers to a row that does not exist.
fn missing(message: String) -> StoreError {
    StoreError::Sqlite(rusqlite::Error::SqliteFailure(
        ffi::Error::new(ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
        Some(message),
    ))
}

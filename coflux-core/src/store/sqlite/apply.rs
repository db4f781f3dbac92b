//! The write path: each [`Write`] of a batch applied inside the batch's transaction, with the
//! run's active/idle flag kept in step (see the module documentation of [`super`]).

use rusqlite::{Connection, params};

use super::project;

use crate::model::{
    Dependencies, EnvironmentId, ExecutionId, ExecutionResult, Millis, StepRecord, WorkerId,
};
use crate::store::codec::{
    execution_key, missing, result_kind_str, run_key, to_i64, to_json, to_u64,
};
use crate::store::open_runs::{OpenRuns, Transition};
use crate::store::{StoreError, Write};

/// Applies one write inside an open transaction.
pub(super) fn apply_one(
    conn: &Connection,
    open_runs: &mut OpenRuns,
    write: &Write,
) -> Result<(), StoreError> {
    match write {
        Write::CreateEnvironment(env) => project::create_environment(conn, env)?,
        Write::PutIdempotencyKey {
            environment,
            key,
            run,
            at,
        } => project::put_idempotency_key(conn, *environment, key, *run, *at)?,
        Write::PutManifests {
            environment,
            definitions,
            at,
        } => project::put_manifests(conn, *environment, definitions, *at)?,
        Write::PutSchedule(schedule) => project::put_schedule(conn, schedule)?,
        Write::DeleteSchedule { id } => project::delete_schedule(conn, *id)?,
        Write::ScheduleTicked {
            id,
            last_tick,
            missed,
        } => project::schedule_ticked(conn, *id, *last_tick, *missed)?,
        Write::ArchiveModule {
            environment,
            module,
        } => project::archive_module(conn, *environment, module)?,
        Write::PutConcurrencyLimit {
            environment,
            target,
            max,
        } => project::put_concurrency_limit(conn, *environment, target, *max)?,
        Write::SetEnvironmentState { id, state } => {
            project::set_environment_state(conn, *id, *state)?
        }
        Write::SetEnvironmentParent { id, parent } => {
            project::set_environment_parent(conn, *id, *parent)?
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
        Write::CreateStep(step) => create_step(conn, step)?,
        Write::CreateExecution {
            id,
            environment,
            execute_after,
            created_at,
            dependencies,
        } => create_execution(
            conn,
            open_runs,
            *id,
            *environment,
            *execute_after,
            *created_at,
            dependencies,
        )?,
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
        } => assign(conn, *execution, *worker, *at)?,
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
        } => record_result(conn, open_runs, *execution, result, *at)?,
    }
    Ok(())
}

/// Inserts a step, if its run exists.
fn create_step(conn: &Connection, step: &StepRecord) -> Result<(), StoreError> {
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
    Ok(())
}

/// Inserts an execution, if its step exists, and counts it open.
fn create_execution(
    conn: &Connection,
    open_runs: &mut OpenRuns,
    id: ExecutionId,
    environment: EnvironmentId,
    execute_after: Option<Millis>,
    created_at: Millis,
    dependencies: &Dependencies,
) -> Result<(), StoreError> {
    let (run, step, attempt) = execution_key(id)?;
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
    Ok(())
}

/// Records an execution's assignment to a worker, if the execution exists.
fn assign(
    conn: &Connection,
    execution: ExecutionId,
    worker: WorkerId,
    at: Millis,
) -> Result<(), StoreError> {
    let (run, step, attempt) = execution_key(execution)?;
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
    Ok(())
}

/// Records an execution's result (a second one is ignored) and counts it closed.
fn record_result(
    conn: &Connection,
    open_runs: &mut OpenRuns,
    execution: ExecutionId,
    result: &ExecutionResult,
    at: Millis,
) -> Result<(), StoreError> {
    let (run, step, attempt) = execution_key(execution)?;
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
        let transition =
            open_runs.closed(run, || Ok::<_, StoreError>(open_executions(conn, run)? + 1))?;
        mark_run(conn, run, transition)?;
    } else if !has_result(conn)? {
        return Err(missing(format!("result of unknown execution {execution}")));
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

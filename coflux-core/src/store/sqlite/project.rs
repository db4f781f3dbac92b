//! The project-level writes: environments, idempotency keys, manifests, cron schedules and
//! concurrency limits (one function per [`Write`](crate::store::Write) variant, called from
//! the write path's table in `apply.rs`).

use rusqlite::{Connection, params};

use crate::model::{
    Environment, EnvironmentId, EnvironmentState, Millis, RunId, Schedule, TargetDefinition,
    TargetRef,
};
use crate::store::StoreError;
use crate::store::codec::{missing, run_key, to_json};

pub(super) fn create_environment(conn: &Connection, env: &Environment) -> Result<(), StoreError> {
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
    Ok(())
}

pub(super) fn set_environment_state(
    conn: &Connection,
    id: EnvironmentId,
    state: EnvironmentState,
) -> Result<(), StoreError> {
    let sql = "UPDATE environments SET state = ?2 WHERE id = ?1";
    update_environment(conn, id, sql, state.as_str())
}

pub(super) fn set_environment_parent(
    conn: &Connection,
    id: EnvironmentId,
    parent: Option<EnvironmentId>,
) -> Result<(), StoreError> {
    let sql = "UPDATE environments SET parent_id = ?2 WHERE id = ?1";
    update_environment(conn, id, sql, parent.map(|p| i64::from(p.0)))
}

/// Runs `sql` (`?1` the environment, `?2` the value); an unknown environment is an error.
fn update_environment(
    conn: &Connection,
    id: EnvironmentId,
    sql: &str,
    value: impl rusqlite::ToSql,
) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached(sql)?
        .execute(params![i64::from(id.0), value])?;
    if changed == 0 {
        return Err(missing(format!("unknown environment {id}")));
    }
    Ok(())
}

pub(super) fn put_idempotency_key(
    conn: &Connection,
    environment: EnvironmentId,
    key: &str,
    run: RunId,
    at: Millis,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO idempotency_keys (environment_id, key, run_id, created_at)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![i64::from(environment.0), key, run_key(run)?, at])?;
    Ok(())
}

pub(super) fn put_manifests(
    conn: &Connection,
    environment: EnvironmentId,
    definitions: &[TargetDefinition],
    at: Millis,
) -> Result<(), StoreError> {
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
    Ok(())
}

pub(super) fn archive_module(
    conn: &Connection,
    environment: EnvironmentId,
    module: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM manifests WHERE environment_id = ?1 AND module = ?2")?
        .execute(params![i64::from(environment.0), module])?;
    Ok(())
}

pub(super) fn put_schedule(conn: &Connection, schedule: &Schedule) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO schedules (id, definition, last_tick, missed)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        schedule.id,
        to_json(schedule)?,
        schedule.last_tick,
        i64::try_from(schedule.missed).unwrap_or(i64::MAX)
    ])?;
    Ok(())
}

pub(super) fn delete_schedule(conn: &Connection, id: u32) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM schedules WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

pub(super) fn schedule_ticked(
    conn: &Connection,
    id: u32,
    last_tick: Millis,
    missed: u64,
) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE schedules SET last_tick = ?2, missed = ?3 WHERE id = ?1")?
        .execute(params![
            id,
            last_tick,
            i64::try_from(missed).unwrap_or(i64::MAX)
        ])?;
    Ok(())
}

pub(super) fn put_concurrency_limit(
    conn: &Connection,
    environment: EnvironmentId,
    target: &TargetRef,
    max: Option<u32>,
) -> Result<(), StoreError> {
    match max {
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
    }
    Ok(())
}

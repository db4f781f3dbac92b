//! Versioned PostgreSQL schemas: one per project (in its own PostgreSQL schema, see
//! [`super::schema_name`]) and the shared catalogue.
//!
//! Migrations only ever get appended; a shipped migration is never edited. Version 1 of a
//! project has the same tables, columns and keys as version 11 of the SQLite project schema
//! (see `store::schema` for what each column means), with BIGINT for every integer and TEXT
//! for JSON, so both backends store and decode the same values. The applied version is kept
//! in `schema_version`; migrations run under a transaction-scoped advisory lock, so two nodes
//! opening the same project at once apply each migration once.
//!
//! Only plain DDL is used (no extensions, no PostgreSQL-only types), so PostgreSQL-compatible
//! distributed databases have a chance to accept it; only PostgreSQL itself is tested.

use postgres::Client;

use crate::store::StoreError;

/// Version 1 of a project (= SQLite project schema version 11).
const PROJECT_V1: &str = "
CREATE TABLE environments (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    parent_id BIGINT,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE runs (
    id BIGINT PRIMARY KEY,
    environment_id BIGINT NOT NULL,
    parent_execution TEXT,
    created_at BIGINT NOT NULL,
    open_executions BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX runs_active ON runs (id) WHERE open_executions > 0;
CREATE INDEX runs_environment ON runs (environment_id, id);
CREATE TABLE steps (
    run_id BIGINT NOT NULL,
    number BIGINT NOT NULL,
    parent_execution TEXT,
    module TEXT NOT NULL,
    target TEXT NOT NULL,
    kind TEXT NOT NULL,
    arguments TEXT NOT NULL,
    options TEXT NOT NULL,
    cache_key TEXT,
    memo_key TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, number)
);
CREATE INDEX steps_cache_key ON steps (cache_key) WHERE cache_key IS NOT NULL;
CREATE TABLE executions (
    run_id BIGINT NOT NULL,
    step_number BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    environment_id BIGINT NOT NULL,
    execute_after BIGINT,
    created_at BIGINT NOT NULL,
    dependencies TEXT,
    worker_id BIGINT,
    assigned_at BIGINT,
    PRIMARY KEY (run_id, step_number, attempt)
);
CREATE TABLE results (
    run_id BIGINT NOT NULL,
    step_number BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    kind TEXT NOT NULL,
    result TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, step_number, attempt)
);
CREATE TABLE children (
    run_id BIGINT NOT NULL,
    parent TEXT NOT NULL,
    child TEXT NOT NULL,
    PRIMARY KEY (run_id, parent, child)
);
CREATE TABLE manifests (
    environment_id BIGINT NOT NULL,
    module TEXT NOT NULL,
    target TEXT NOT NULL,
    definition TEXT NOT NULL,
    registered_at BIGINT NOT NULL,
    PRIMARY KEY (environment_id, module, target)
);
CREATE TABLE idempotency_keys (
    environment_id BIGINT NOT NULL,
    key TEXT NOT NULL,
    run_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (environment_id, key)
);
CREATE TABLE concurrency_limits (
    environment_id BIGINT NOT NULL,
    module TEXT NOT NULL,
    target TEXT NOT NULL,
    max_running BIGINT NOT NULL,
    PRIMARY KEY (environment_id, module, target)
);
CREATE TABLE schedules (
    id BIGINT PRIMARY KEY,
    definition TEXT NOT NULL,
    last_tick BIGINT NOT NULL,
    missed BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE calls (
    run_id BIGINT NOT NULL,
    parent TEXT NOT NULL,
    call BIGINT NOT NULL,
    child TEXT NOT NULL,
    PRIMARY KEY (run_id, parent, call)
);
CREATE TABLE checkpoints (
    run_id BIGINT NOT NULL,
    step_number BIGINT NOT NULL,
    environment_id BIGINT NOT NULL,
    state TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, step_number, environment_id)
);
CREATE TABLE streams (
    run_id BIGINT NOT NULL,
    step_number BIGINT NOT NULL,
    stream_index BIGINT NOT NULL,
    position BIGINT NOT NULL,
    producer TEXT NOT NULL,
    buffer BIGINT,
    timeout_ms BIGINT,
    opened_at BIGINT NOT NULL,
    closure TEXT,
    closed_at BIGINT,
    PRIMARY KEY (run_id, step_number, stream_index)
);
CREATE TABLE stream_items (
    run_id BIGINT NOT NULL,
    step_number BIGINT NOT NULL,
    stream_index BIGINT NOT NULL,
    sequence BIGINT NOT NULL,
    value TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, step_number, stream_index, sequence)
);
CREATE TABLE inputs (
    run_id BIGINT NOT NULL,
    number BIGINT NOT NULL,
    execution TEXT NOT NULL,
    key TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    pending BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, number)
);
CREATE INDEX inputs_pending ON inputs (created_at) WHERE pending = 1;
";

/// Version 2 (run retention; = SQLite project schema version 12): the highest run id deleted
/// so far, so that a restarted project never hands the ids of deleted runs out again.
const PROJECT_V2_RUN_RETENTION: &str = "
CREATE TABLE deleted_runs (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    max_run_id BIGINT NOT NULL
);
";

/// Version 3: `runs.open_executions` holds the number of the run's executions without a
/// result (kept by the statements that insert them, so a batch needs no read between its
/// statements), instead of SQLite's 0/1 flag; `open_executions > 0` still means active.
const PROJECT_V3_OPEN_COUNT: &str = "
UPDATE runs SET open_executions = (
    SELECT count(*) FROM executions e
    WHERE e.run_id = runs.id
      AND NOT EXISTS (SELECT 1 FROM results r WHERE r.run_id = e.run_id
                      AND r.step_number = e.step_number AND r.attempt = e.attempt));
";

/// Version 4: the sequence number of the project's last committed write batch, written by
/// every batch in its own transaction, so a writer that lost its connection knows which of
/// its batches PostgreSQL kept (see `postgres::commit`).
const PROJECT_V4_COMMIT_SEQ: &str = "
CREATE TABLE commit_seq (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO commit_seq (id, seq) VALUES (1, 0);
";

/// The migrations of a project, oldest first.
const PROJECT: &[&str] = &[
    PROJECT_V1,
    PROJECT_V2_RUN_RETENTION,
    PROJECT_V3_OPEN_COUNT,
    PROJECT_V4_COMMIT_SEQ,
];

/// Version 1 of the catalogue (in the `public` schema; = SQLite catalogue version 1).
const CATALOGUE_V1: &str = "
CREATE TABLE coflux_projects (
    name TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);
";

/// The migrations of the catalogue, oldest first.
const CATALOGUE: &[&str] = &[CATALOGUE_V1];

/// Advisory lock key serialising migrations across nodes (any fixed number).
const MIGRATION_LOCK: i64 = 0x636f_666c_7578;

/// Creates the project schema `schema` if needed and brings it up to date.
pub(super) fn migrate_project(client: &mut Client, schema: &str) -> Result<(), StoreError> {
    migrate(client, schema, "schema_version", PROJECT)
}

/// Brings the catalogue (in `public`) up to date.
pub(crate) fn migrate_catalogue(client: &mut Client) -> Result<(), StoreError> {
    migrate(client, "public", "coflux_catalogue_version", CATALOGUE)
}

/// Brings tables in `public` tracked by their own version table `table` up to date.
pub(super) fn migrate_public(
    client: &mut Client,
    table: &str,
    migrations: &[&str],
) -> Result<(), StoreError> {
    migrate(client, "public", table, migrations)
}

/// How many of a project's migrations are applied (0 for a schema that does not exist).
pub(super) fn project_version(
    client: &mut super::client::PgClient,
    schema: &str,
) -> Result<usize, StoreError> {
    let exists = client
        .query_opt(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = $1
             AND table_name = 'schema_version'",
            &[&schema],
        )?
        .is_some();
    if !exists {
        return Ok(0);
    }
    let sql = format!("SELECT version FROM {}.schema_version", quote(schema));
    let version: i64 = client.query_one(&sql, &[])?.get(0);
    Ok(usize::try_from(version).unwrap_or(0))
}

/// The number of project migrations this build knows.
pub(super) fn project_latest() -> usize {
    PROJECT.len()
}

/// Brings the tables whose version is kept in `schema`.`table` up to date with `migrations`
/// (oldest first; for tables shared by all projects, such as the server's logs and tokens,
/// `schema` is `public`), creating the schema if needed, under the migration advisory lock.
pub fn migrate(
    client: &mut Client,
    schema: &str,
    table: &str,
    migrations: &[&str],
) -> Result<(), StoreError> {
    let fail = |e: postgres::Error| StoreError::Migration(e.to_string());
    let mut tx = client.transaction().map_err(fail)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(fail)?;
    let schema_q = quote(schema);
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema_q};
         SET LOCAL search_path TO {schema_q};
         CREATE TABLE IF NOT EXISTS {table} (version BIGINT NOT NULL);"
    ))
    .map_err(fail)?;
    let version: Option<i64> = tx
        .query_opt(&format!("SELECT version FROM {table}"), &[])
        .map_err(fail)?
        .map(|row| row.get(0));
    let current = match version {
        Some(v) => usize::try_from(v).unwrap_or(usize::MAX),
        None => {
            tx.execute(&format!("INSERT INTO {table} (version) VALUES (0)"), &[])
                .map_err(fail)?;
            0
        }
    };
    if current > migrations.len() {
        return Err(StoreError::Migration(format!(
            "schema {schema} is at version {current}, newer than this server knows ({})",
            migrations.len()
        )));
    }
    for (i, sql) in migrations.iter().enumerate().skip(current) {
        tx.batch_execute(sql)
            .map_err(|e| StoreError::Migration(format!("version {}: {e}", i + 1)))?;
    }
    let latest = i64::try_from(migrations.len()).unwrap_or(i64::MAX);
    tx.execute(&format!("UPDATE {table} SET version = $1"), &[&latest])
        .map_err(fail)?;
    tx.commit().map_err(fail)
}

/// `name` as a quoted identifier.
pub(super) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

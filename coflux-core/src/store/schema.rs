//! Versioned SQLite schemas: one for each project database and one for the catalogue.
//!
//! Migrations only ever get appended; a shipped migration is never edited.
//!
//! Conventions: timestamps are INTEGER unix milliseconds; run ids, step numbers, attempts,
//! environment and worker ids are INTEGERs; execution ids that point across rows (parents,
//! children) are TEXT in their display form (`R1:2:1`), which parses back with `FromStr`.
//! JSON columns hold the serde encoding of the corresponding model type.

use rusqlite_migration::{M, Migrations};

/// Version 1 of a project database.
///
/// - `runs.open_executions` counts the run's executions without a result; it is maintained by
///   the store inside the same transaction as the writes, so recovery finds active runs through
///   the partial index `runs_active` without scanning executions.
/// - `results.kind` repeats the result's `type` so the cache index can be rebuilt without
///   decoding JSON.
/// - `children.run_id` is the parent execution's run, so a run's links are one range scan.
const PROJECT_V1: &str = "
CREATE TABLE environments (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    parent_id INTEGER,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    environment_id INTEGER NOT NULL,
    parent_execution TEXT,
    created_at INTEGER NOT NULL,
    open_executions INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_active ON runs (id) WHERE open_executions > 0;
CREATE INDEX runs_environment ON runs (environment_id, id);

CREATE TABLE steps (
    run_id INTEGER NOT NULL,
    number INTEGER NOT NULL,
    parent_execution TEXT,
    module TEXT NOT NULL,
    target TEXT NOT NULL,
    kind TEXT NOT NULL,
    arguments TEXT NOT NULL,
    options TEXT NOT NULL,
    cache_key TEXT,
    memo_key TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, number)
) WITHOUT ROWID;
CREATE INDEX steps_cache_key ON steps (cache_key) WHERE cache_key IS NOT NULL;

CREATE TABLE executions (
    run_id INTEGER NOT NULL,
    step_number INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    environment_id INTEGER NOT NULL,
    execute_after INTEGER,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, step_number, attempt)
) WITHOUT ROWID;

CREATE TABLE assignments (
    run_id INTEGER NOT NULL,
    step_number INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    worker_id INTEGER NOT NULL,
    assigned_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, step_number, attempt)
) WITHOUT ROWID;

CREATE TABLE results (
    run_id INTEGER NOT NULL,
    step_number INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    kind TEXT NOT NULL,
    result TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, step_number, attempt)
) WITHOUT ROWID;

CREATE TABLE children (
    run_id INTEGER NOT NULL,
    parent TEXT NOT NULL,
    child TEXT NOT NULL,
    PRIMARY KEY (run_id, parent, child)
) WITHOUT ROWID;
";

/// Version 2: registered manifests (workflow and task definitions per environment).
const PROJECT_V2: &str = "
CREATE TABLE manifests (
    environment_id INTEGER NOT NULL,
    module TEXT NOT NULL,
    target TEXT NOT NULL,
    definition TEXT NOT NULL,
    registered_at INTEGER NOT NULL,
    PRIMARY KEY (environment_id, module, target)
) WITHOUT ROWID;
";

/// Version 3: idempotency keys of submitted runs, per environment.
const PROJECT_V3: &str = "
CREATE TABLE idempotency_keys (
    environment_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (environment_id, key)
) WITHOUT ROWID;
";

/// Version 4: executions held until others finish (`wait_for`, suspended selects): the JSON
/// of `Dependencies`, NULL when none.
const PROJECT_V4: &str = "
ALTER TABLE executions ADD COLUMN dependencies TEXT;
";

/// Version 5: per-target concurrency limits, per environment.
const PROJECT_V5: &str = "
CREATE TABLE concurrency_limits (
    environment_id INTEGER NOT NULL,
    module TEXT NOT NULL,
    target TEXT NOT NULL,
    max_running INTEGER NOT NULL,
    PRIMARY KEY (environment_id, module, target)
) WITHOUT ROWID;
";

/// Version 6: cron schedules. `definition` is the JSON of the `Schedule` as created;
/// `last_tick` and `missed` change as it ticks.
const PROJECT_V6: &str = "
CREATE TABLE schedules (
    id INTEGER PRIMARY KEY,
    definition TEXT NOT NULL,
    last_tick INTEGER NOT NULL,
    missed INTEGER NOT NULL DEFAULT 0
);
";

/// Version 7: an execution's assignment moves into its own row (`worker_id`, `assigned_at`),
/// so assigning it in the transaction that creates it dirties no other table; the
/// `assignments` table goes. From this version on, `runs.open_executions` is only written when
/// a run becomes active (1) or idle (0): the exact count is kept by the writer in memory (see
/// the store), so a commit does not rewrite the run's row for every execution. Rows written
/// before keep their count, which is still positive exactly when the run is active.
const PROJECT_V7: &str = "
ALTER TABLE executions ADD COLUMN worker_id INTEGER;
ALTER TABLE executions ADD COLUMN assigned_at INTEGER;
UPDATE executions SET (worker_id, assigned_at) = (
    SELECT a.worker_id, a.assigned_at FROM assignments a
    WHERE a.run_id = executions.run_id AND a.step_number = executions.step_number
      AND a.attempt = executions.attempt
)
WHERE EXISTS (
    SELECT 1 FROM assignments a
    WHERE a.run_id = executions.run_id AND a.step_number = executions.step_number
      AND a.attempt = executions.attempt
);
DROP TABLE assignments;
";

/// Version 8: the children an agent's executions submitted, by the call's number within its
/// execution (`call`: 1, 2, ...), so a submission sent again (after a reconnect or a server
/// restart) gets the child of the first instead of creating another. `run_id` is the parent's
/// run; `child` may be in another run (a spawned workflow).
const PROJECT_V8: &str = "
CREATE TABLE calls (
    run_id INTEGER NOT NULL,
    parent TEXT NOT NULL,
    call INTEGER NOT NULL,
    child TEXT NOT NULL,
    PRIMARY KEY (run_id, parent, call)
) WITHOUT ROWID;
";

/// Version 9 (checkpoints): each step's checkpoint state per environment, as one JSON map
/// (`name → Value`). A row exists once the step has state of its own in that environment (a
/// re-run in a child environment gets a copy of its nearest ancestor's, see the run core).
const PROJECT_V9_CHECKPOINTS: &str = "
CREATE TABLE checkpoints (
    run_id INTEGER NOT NULL,
    step_number INTEGER NOT NULL,
    environment_id INTEGER NOT NULL,
    state TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, step_number, environment_id)
) WITHOUT ROWID;
";

/// Version 10 (streams): each step's streams (registration, producer, closure) and their items,
/// one row per item (values as JSON; large ones are blob references like any value).
const PROJECT_V10_STREAMS: &str = "
CREATE TABLE streams (
    run_id INTEGER NOT NULL,
    step_number INTEGER NOT NULL,
    stream_index INTEGER NOT NULL,
    position INTEGER NOT NULL,
    producer TEXT NOT NULL,
    buffer INTEGER,
    timeout_ms INTEGER,
    opened_at INTEGER NOT NULL,
    closure TEXT,
    closed_at INTEGER,
    PRIMARY KEY (run_id, step_number, stream_index)
) WITHOUT ROWID;
CREATE TABLE stream_items (
    run_id INTEGER NOT NULL,
    step_number INTEGER NOT NULL,
    stream_index INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    value TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, step_number, stream_index, sequence)
) WITHOUT ROWID;
";

/// Version 11 (inputs): the inputs executions asked for (`cf.Prompt`), the prompt and its state
/// as JSON; `pending` indexes the ones still waiting for an answer.
const PROJECT_V11_INPUTS: &str = "
CREATE TABLE inputs (
    run_id INTEGER NOT NULL,
    number INTEGER NOT NULL,
    execution TEXT NOT NULL,
    key TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    pending INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, number)
) WITHOUT ROWID;
CREATE INDEX inputs_pending ON inputs (created_at) WHERE pending;
";

/// Version 12 (run retention): the highest run id deleted so far, so that deleting the newest
/// runs never lets a restarted project hand out their ids again (`next_run` is the highest of
/// it and the runs left, plus one). Written only when runs are deleted.
const PROJECT_V12_RUN_RETENTION: &str = "
CREATE TABLE deleted_runs (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    max_run_id INTEGER NOT NULL
);
";

/// Version 1 of the catalogue database.
const CATALOGUE_V1: &str = "
CREATE TABLE projects (
    name TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
";

/// The migrations of a project database, oldest first.
pub fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(PROJECT_V1),
        M::up(PROJECT_V2),
        M::up(PROJECT_V3),
        M::up(PROJECT_V4),
        M::up(PROJECT_V5),
        M::up(PROJECT_V6),
        M::up(PROJECT_V7),
        M::up(PROJECT_V8),
        M::up(PROJECT_V9_CHECKPOINTS),
        M::up(PROJECT_V10_STREAMS),
        M::up(PROJECT_V11_INPUTS),
        M::up(PROJECT_V12_RUN_RETENTION),
    ])
}

/// The migrations of the catalogue database (`catalogue.sqlite`), oldest first.
pub fn catalogue_migrations() -> Migrations<'static> {
    Migrations::new(vec![M::up(CATALOGUE_V1)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_schema_migrations_are_valid() {
        migrations().validate().unwrap();
        catalogue_migrations().validate().unwrap();
    }

    #[test]
    fn store_schema_applies_to_an_empty_database() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        migrations().to_latest(&mut conn).unwrap();
        assert_eq!(migrations().pending_migrations(&conn).unwrap(), 0);
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 16);
    }
}

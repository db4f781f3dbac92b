//! The schema of a project's log database (`logs.sqlite`). Migrations are only ever appended.
//!
//! - `messages.id` is the cursor. `AUTOINCREMENT` keeps it from ever being reused, even after
//!   pruning deleted the newest rows, so a follower's cursor stays valid.
//! - Templates are stored once per distinct text (`templates`); captured output lines are
//!   templates too.
//! - `values_json` is the JSON of the record's `{name: Value}` map, `NULL` when empty.
//! - Metrics (v2): one definition per execution and key (`definition_json`, the latest one
//!   reported), and points in the order they arrived (`metric_points.id`).

use rusqlite_migration::{M, Migrations};

const LOGS_V1: &str = "
CREATE TABLE templates (
    id INTEGER PRIMARY KEY,
    template TEXT NOT NULL UNIQUE
) STRICT;

CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL,
    step_number INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    level INTEGER NOT NULL,
    template_id INTEGER REFERENCES templates (id),
    values_json TEXT
) STRICT;

CREATE INDEX messages_run ON messages (run_id, id);
CREATE INDEX messages_execution ON messages (run_id, step_number, attempt, id);
CREATE INDEX messages_timestamp ON messages (timestamp);
CREATE INDEX messages_template ON messages (template_id);
";

const LOGS_V2_METRICS: &str = "
CREATE TABLE metric_definitions (
    run_id INTEGER NOT NULL,
    step_number INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    key TEXT NOT NULL,
    definition_json TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    PRIMARY KEY (run_id, step_number, attempt, key)
) STRICT;

CREATE TABLE metric_points (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL,
    step_number INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    key TEXT NOT NULL,
    value REAL NOT NULL,
    at REAL NOT NULL,
    timestamp INTEGER NOT NULL
) STRICT;

CREATE INDEX metric_points_execution ON metric_points (run_id, step_number, attempt, id);
CREATE INDEX metric_points_timestamp ON metric_points (timestamp);
CREATE INDEX metric_definitions_timestamp ON metric_definitions (timestamp);
";

/// The migrations of a log database, oldest first.
pub fn migrations() -> Migrations<'static> {
    Migrations::new(vec![M::up(LOGS_V1), M::up(LOGS_V2_METRICS)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_migrations_are_valid() {
        migrations().validate().unwrap();
    }
}

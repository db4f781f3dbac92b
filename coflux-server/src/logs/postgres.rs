//! Logs and metrics in PostgreSQL (`--database-url`): tables in the `public` schema shared by
//! every project and every node, each row keyed by its project. Cursors come from one
//! sequence, taken in a block per batch and handed out in order, so they grow with commit
//! order on the node writing a project's logs (its owner).
//!
//! Templates are stored once per project and text (found by the text's SHA-256, since a
//! B-tree index cannot hold a 64 KiB text). Migrations are versioned in
//! `coflux_logs_version`, like the projects' ones.

use std::collections::HashMap;
use std::sync::Mutex;

use coflux_core::model::{ExecutionId, ProjectName, RunId, Value};
use coflux_core::store::postgres::{off_runtime, schema};
use postgres::{Client, NoTls, Row};
use sha2::Digest;

use super::backend::{
    LogBackend, LogReader, LogRow, LogWriter, Prepared, PreparedMetric, decode_values,
    filter_numbers, to_i64,
};
use super::metrics::RunMetrics;
use super::record::{LogError, LogFilter, StoredLog};
use super::sqlite::TEMPLATE_CACHE;

/// Version 1: logs (= the SQLite log schema's version 2, with a project column).
const LOGS_V1: &str = "
CREATE SEQUENCE coflux_log_message_ids;
CREATE TABLE coflux_log_templates (
    id BIGINT PRIMARY KEY,
    project TEXT NOT NULL,
    hash TEXT NOT NULL,
    template TEXT NOT NULL,
    UNIQUE (project, hash)
);
CREATE SEQUENCE coflux_log_template_ids;
CREATE TABLE coflux_log_messages (
    id BIGINT PRIMARY KEY,
    project TEXT NOT NULL,
    run_id BIGINT NOT NULL,
    step_number BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    timestamp_ms BIGINT NOT NULL,
    level BIGINT NOT NULL,
    template_id BIGINT,
    values_json TEXT
);
CREATE INDEX coflux_log_messages_run ON coflux_log_messages (project, run_id, id);
CREATE INDEX coflux_log_messages_time ON coflux_log_messages (project, timestamp_ms);
CREATE INDEX coflux_log_messages_template ON coflux_log_messages (template_id);
CREATE TABLE coflux_metric_definitions (
    project TEXT NOT NULL,
    run_id BIGINT NOT NULL,
    step_number BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    key TEXT NOT NULL,
    definition_json TEXT NOT NULL,
    timestamp_ms BIGINT NOT NULL,
    PRIMARY KEY (project, run_id, step_number, attempt, key)
);
CREATE INDEX coflux_metric_definitions_time ON coflux_metric_definitions (project, timestamp_ms);
CREATE SEQUENCE coflux_metric_point_ids;
CREATE TABLE coflux_metric_points (
    id BIGINT PRIMARY KEY,
    project TEXT NOT NULL,
    run_id BIGINT NOT NULL,
    step_number BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    key TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    timestamp_ms BIGINT NOT NULL
);
CREATE INDEX coflux_metric_points_run ON coflux_metric_points (project, run_id, id);
CREATE INDEX coflux_metric_points_time ON coflux_metric_points (project, timestamp_ms);
";

/// The log tables' migrations, oldest first.
const LOGS: &[&str] = &[LOGS_V1];

/// Idle read connections kept.
const IDLE_READERS: usize = 4;

fn connect(url: &str) -> Result<Client, LogError> {
    let mut client = Client::connect(url, NoTls)?;
    client.batch_execute("SET application_name TO 'coflux-logs'")?;
    Ok(client)
}

/// The log tables of one PostgreSQL database.
pub(super) struct PgLogs {
    url: String,
    readers: Mutex<Vec<Client>>,
}

impl PgLogs {
    /// Connects to `url` and brings the log tables up to date.
    pub(super) fn open(url: &str) -> Result<Self, LogError> {
        off_runtime(|| {
            let mut client = connect(url)?;
            schema::migrate(&mut client, "public", "coflux_logs_version", LOGS)
                .map_err(|e| LogError::Migration(e.to_string()))?;
            Ok(Self {
                url: url.to_owned(),
                readers: Mutex::new(vec![client]),
            })
        })
    }

    fn take_reader(&self) -> Result<Client, LogError> {
        let idle = super::writer::lock(&self.readers).pop();
        match idle {
            Some(client) if !client.is_closed() => Ok(client),
            _ => connect(&self.url),
        }
    }
}

impl Drop for PgLogs {
    fn drop(&mut self) {
        // A client owns a runtime, which must not be dropped on an async worker.
        let readers = std::mem::take(&mut *super::writer::lock(&self.readers));
        off_runtime(move || drop(readers));
    }
}

impl LogBackend for PgLogs {
    fn writer(&self) -> Box<dyn LogWriter> {
        Box::new(PgLogWriter {
            url: self.url.clone(),
            client: None,
            templates: HashMap::new(),
        })
    }

    fn read(
        &self,
        project: &ProjectName,
        f: &mut (dyn FnMut(&mut dyn LogReader) -> Result<(), LogError> + Send),
    ) -> Result<bool, LogError> {
        off_runtime(|| {
            let client = self.take_reader()?;
            let mut reader = PgReader {
                client,
                project: project.as_str(),
            };
            let result = f(&mut reader);
            let mut idle = super::writer::lock(&self.readers);
            if idle.len() < IDLE_READERS {
                idle.push(reader.client);
            }
            result.map(|()| true)
        })
    }

    fn projects(&self) -> Result<Vec<ProjectName>, LogError> {
        off_runtime(|| {
            let mut client = self.take_reader()?;
            let rows = client.query(
                "SELECT DISTINCT project FROM coflux_log_templates
                 UNION SELECT DISTINCT project FROM coflux_log_messages
                 UNION SELECT DISTINCT project FROM coflux_metric_definitions
                 ORDER BY 1",
                &[],
            )?;
            super::writer::lock(&self.readers).push(client);
            Ok(rows
                .iter()
                .filter_map(|row| ProjectName::new(row.get::<_, &str>(0)).ok())
                .collect())
        })
    }

    fn describe(&self) -> String {
        "postgres".into()
    }
}

/// Reads of one project's rows.
struct PgReader<'a> {
    client: Client,
    project: &'a str,
}

impl LogReader for PgReader<'_> {
    fn page(
        &mut self,
        run: RunId,
        filter: Option<LogFilter>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredLog>, LogError> {
        let (step, attempt) = filter_numbers(filter);
        let rows = self.client.query(
            "SELECT m.id, m.step_number, m.attempt, m.timestamp_ms, m.level, t.template,
                    m.values_json
             FROM coflux_log_messages m LEFT JOIN coflux_log_templates t ON t.id = m.template_id
             WHERE m.project = $1 AND m.run_id = $2 AND m.id > $3
               AND ($4::BIGINT < 0 OR m.step_number = $4) AND ($5::BIGINT < 0 OR m.attempt = $5)
             ORDER BY m.id LIMIT $6",
            &[
                &self.project,
                &to_i64(run.0, "run id")?,
                &to_i64(after.unwrap_or(0), "cursor")?,
                &step,
                &attempt,
                &to_i64(limit as u64, "limit")?,
            ],
        )?;
        rows.iter().map(|row| decode_row(run, row)).collect()
    }

    fn metrics(
        &mut self,
        run: RunId,
        execution: Option<ExecutionId>,
    ) -> Result<RunMetrics, LogError> {
        super::pg_metrics::read(&mut self.client, self.project, run, execution)
    }

    fn values(
        &mut self,
        hint: Option<&str>,
        f: &mut (dyn FnMut(&Value) + Send),
    ) -> Result<(), LogError> {
        let pattern = hint.map_or_else(|| "%".to_owned(), |h| format!("%{h}%"));
        let rows = self.client.query(
            "SELECT id, values_json FROM coflux_log_messages
             WHERE project = $1 AND values_json IS NOT NULL AND values_json LIKE $2",
            &[&self.project, &pattern],
        )?;
        for row in rows {
            for value in decode_values(row.try_get(0)?, row.try_get(1)?)?.values() {
                f(value);
            }
        }
        Ok(())
    }
}

fn decode_row(run: RunId, row: &Row) -> Result<StoredLog, LogError> {
    let row = LogRow {
        cursor: row.try_get(0)?,
        step: row.try_get(1)?,
        attempt: row.try_get(2)?,
        timestamp: row.try_get(3)?,
        level: row.try_get(4)?,
        template: row.try_get(5)?,
        values: row.try_get(6)?,
    };
    row.decode(run)
}

/// The writer thread's connection and template ids, per project.
struct PgLogWriter {
    url: String,
    client: Option<Client>,
    templates: HashMap<ProjectName, HashMap<String, i64>>,
}

impl PgLogWriter {
    fn client(&mut self) -> Result<&mut Client, LogError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(connect(&self.url)?);
            self.templates.clear();
        }
        self.client
            .as_mut()
            .ok_or_else(|| LogError::Corrupt("log connection vanished".into()))
    }
}

impl LogWriter for PgLogWriter {
    fn write_logs(
        &mut self,
        project: &ProjectName,
        records: &[Prepared],
    ) -> Result<Vec<u64>, LogError> {
        let mut known = self.templates.remove(project).unwrap_or_default();
        let client = self.client()?;
        let mut tx = client.transaction()?;
        let ids = super::pg_metrics::next_ids(&mut tx, "coflux_log_message_ids", records.len())?;
        let mut template_ids = Vec::with_capacity(records.len());
        for Prepared { record, .. } in records {
            let Some(text) = &record.template else {
                template_ids.push(None);
                continue;
            };
            if let Some(id) = known.get(text) {
                template_ids.push(Some(*id));
                continue;
            }
            let hash = hex::encode(sha2::Sha256::digest(text.as_bytes()));
            let id: i64 = tx
                .query_one(
                    "INSERT INTO coflux_log_templates (id, project, hash, template)
                     VALUES (nextval('coflux_log_template_ids'), $1, $2, $3)
                     ON CONFLICT (project, hash) DO UPDATE SET hash = excluded.hash
                     RETURNING id",
                    &[&project.as_str(), &hash, text],
                )?
                .try_get(0)?;
            if known.len() >= TEMPLATE_CACHE {
                known.clear();
            }
            known.insert(text.clone(), id);
            template_ids.push(Some(id));
        }
        let mut runs = Vec::with_capacity(records.len());
        let mut steps = Vec::with_capacity(records.len());
        let mut attempts = Vec::with_capacity(records.len());
        let mut times = Vec::with_capacity(records.len());
        let mut levels = Vec::with_capacity(records.len());
        let mut values = Vec::with_capacity(records.len());
        for Prepared {
            record,
            values_json,
        } in records
        {
            runs.push(to_i64(record.execution.run().0, "run id")?);
            steps.push(i64::from(record.execution.step.number));
            attempts.push(i64::from(record.execution.attempt));
            times.push(to_i64(record.timestamp_ms, "timestamp")?);
            levels.push(i64::from(record.level));
            values.push(values_json.clone());
        }
        tx.execute(
            "INSERT INTO coflux_log_messages (id, project, run_id, step_number, attempt,
                                              timestamp_ms, level, template_id, values_json)
             SELECT u.id, $1, u.run_id, u.step_number, u.attempt, u.t, u.level, u.template_id,
                    u.values_json
             FROM unnest($2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[], $6::BIGINT[],
                         $7::BIGINT[], $8::BIGINT[], $9::TEXT[])
                  AS u(id, run_id, step_number, attempt, t, level, template_id, values_json)",
            &[
                &project.as_str(),
                &ids,
                &runs,
                &steps,
                &attempts,
                &times,
                &levels,
                &template_ids,
                &values,
            ],
        )?;
        tx.commit()?;
        // Only committed template ids are remembered.
        self.templates.insert(project.clone(), known);
        ids.into_iter()
            .map(|id| u64::try_from(id).map_err(|_| LogError::Corrupt("negative cursor".into())))
            .collect()
    }

    fn write_metrics(
        &mut self,
        project: &ProjectName,
        records: Vec<PreparedMetric>,
    ) -> Result<(), LogError> {
        let client = self.client()?;
        let mut tx = client.transaction()?;
        super::pg_metrics::write(&mut tx, project, records)?;
        Ok(tx.commit()?)
    }

    fn prune(
        &mut self,
        project: &ProjectName,
        older_than_ms: i64,
        limit: usize,
    ) -> Result<u64, LogError> {
        let name = project.as_str();
        let client = self.client()?;
        let mut tx = client.transaction()?;
        let batch = to_i64(limit as u64, "limit")?;
        let deleted = tx.execute(
            "DELETE FROM coflux_log_messages WHERE id IN (SELECT id FROM coflux_log_messages
             WHERE project = $1 AND timestamp_ms < $2 ORDER BY timestamp_ms LIMIT $3)",
            &[&name, &older_than_ms, &batch],
        )?;
        let last_batch = deleted < limit as u64;
        if last_batch {
            tx.execute(
                "DELETE FROM coflux_metric_points WHERE id IN (SELECT id FROM coflux_metric_points
                 WHERE project = $1 AND timestamp_ms < $2 ORDER BY timestamp_ms LIMIT $3)",
                &[&name, &older_than_ms, &batch],
            )?;
            tx.execute(
                "DELETE FROM coflux_metric_definitions
                 WHERE project = $1 AND timestamp_ms < $2",
                &[&name, &older_than_ms],
            )?;
            tx.execute(
                "DELETE FROM coflux_log_templates t WHERE t.project = $1 AND NOT EXISTS
                 (SELECT 1 FROM coflux_log_messages m WHERE m.template_id = t.id)",
                &[&name],
            )?;
        }
        tx.commit()?;
        if last_batch {
            // Some remembered template ids may have been deleted.
            self.templates.remove(project);
        }
        Ok(deleted)
    }

    fn delete_runs(&mut self, project: &ProjectName, runs: &[RunId]) -> Result<u64, LogError> {
        let runs = runs
            .iter()
            .map(|run| to_i64(run.0, "run id"))
            .collect::<Result<Vec<_>, _>>()?;
        let name = project.as_str();
        let client = self.client()?;
        let mut tx = client.transaction()?;
        let deleted = tx.execute(
            "DELETE FROM coflux_log_messages WHERE project = $1 AND run_id = ANY($2)",
            &[&name, &runs],
        )?;
        for sql in [
            "DELETE FROM coflux_metric_points WHERE project = $1 AND run_id = ANY($2)",
            "DELETE FROM coflux_metric_definitions WHERE project = $1 AND run_id = ANY($2)",
        ] {
            tx.execute(sql, &[&name, &runs])?;
        }
        tx.commit()?;
        Ok(deleted)
    }

    fn reset(&mut self, project: &ProjectName) {
        self.templates.remove(project);
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
    }
}

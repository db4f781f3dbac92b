//! Inspection reads beyond recovery: inputs, schedules, concurrency limits and the keys of
//! the blobs the project's values reference.

use super::SqliteStore;
use crate::model::{EnvironmentId, ExecutionResult, Schedule, TargetRef};
use crate::store::StoreError;
use crate::store::codec::{collect_blob_keys, from_json, to_u32, to_u64};

impl SqliteStore {
    /// The project's pending inputs, oldest first (at most `limit`).
    pub fn pending_inputs(&self, limit: u32) -> Result<Vec<crate::model::InputRecord>, StoreError> {
        crate::store::inputs::pending(&self.conn, limit)
    }

    /// One input, if it exists.
    pub fn input(
        &self,
        id: crate::model::InputId,
    ) -> Result<Option<crate::model::InputRecord>, StoreError> {
        crate::store::inputs::get(&self.conn, id)
    }

    /// The cron schedules, by id.
    pub fn schedules(&self) -> Result<Vec<Schedule>, StoreError> {
        let sql = "SELECT definition, last_tick, missed FROM schedules ORDER BY id";
        self.query_all(sql, [], |row| {
            let mut schedule: Schedule = from_json(&row.get::<_, String>(0)?, "schedule")?;
            schedule.last_tick = row.get(1)?;
            schedule.missed = to_u64(row.get(2)?, "missed ticks")?;
            Ok(schedule)
        })
    }

    /// The per-target concurrency limits of an environment, by target.
    pub fn concurrency_limits(
        &self,
        environment: EnvironmentId,
    ) -> Result<Vec<(TargetRef, u32)>, StoreError> {
        let sql = "SELECT module, target, max_running FROM concurrency_limits
             WHERE environment_id = ?1 ORDER BY module, target";
        self.query_all(sql, [i64::from(environment.0)], |row| {
            Ok((
                TargetRef::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?),
                to_u32(row.get(2)?, "concurrency limit")?,
            ))
        })
    }
}

impl SqliteStore {
    /// The keys of every blob the project's recorded values reference: step arguments
    /// (`steps.arguments`), execution results (`results.result`) and the arguments of cron
    /// schedules. A value references the blob holding it ([`crate::model::Value::Blob`]) and
    /// the blob of each of its fragment references ([`crate::model::Reference::Fragment`]).
    ///
    /// Rows are streamed and decoded one at a time, so memory stays bounded apart from the
    /// returned set. A row that does not decode is an error, never skipped: a caller deciding
    /// what may be deleted must not mistake an unreadable reference for an absent one.
    pub fn referenced_blob_keys(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut keys = std::collections::HashSet::new();
        let mut steps = self.conn.prepare("SELECT arguments FROM steps")?;
        let mut rows = steps.query([])?;
        while let Some(row) = rows.next()? {
            let text: String = row.get(0)?;
            let arguments: Vec<crate::model::Value> = from_json(&text, "step arguments")?;
            for value in &arguments {
                collect_blob_keys(value, &mut keys);
            }
        }
        let mut results = self.conn.prepare("SELECT result FROM results")?;
        let mut rows = results.query([])?;
        while let Some(row) = rows.next()? {
            let text: String = row.get(0)?;
            if let ExecutionResult::Value { value } = from_json(&text, "result")? {
                collect_blob_keys(&value, &mut keys);
            }
        }
        let mut schedules = self.conn.prepare("SELECT definition FROM schedules")?;
        let mut rows = schedules.query([])?;
        while let Some(row) = rows.next()? {
            let text: String = row.get(0)?;
            let schedule: Schedule = from_json(&text, "schedule")?;
            for value in &schedule.arguments {
                collect_blob_keys(value, &mut keys);
            }
        }
        crate::store::checkpoints::blob_keys(&self.conn, &mut keys)?;
        crate::store::streams::blob_keys(&self.conn, &mut keys)?;
        Ok(keys)
    }
}

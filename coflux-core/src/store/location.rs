//! Where a project's state lives ([`StoreLocation`]: a SQLite file or a PostgreSQL schema),
//! and the reads inspection needs beyond [`ProjectStore`] ([`ProjectReader`]), so the
//! orchestrator and the API readers work the same on either backend.

use std::collections::HashSet;
use std::path::PathBuf;

use super::postgres::{PgLocation, PgStore};
use super::run_list::{RunFilter, RunPage};
use super::sqlite::SqliteStore;
use super::{ProjectStore, RunSnapshot, StoreError};
use crate::model::{EnvironmentId, InputId, InputRecord, RunId, Schedule, TargetRef};

/// Where one project's state is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A schema of a PostgreSQL database.
    Postgres(PgLocation),
}

impl StoreLocation {
    /// A read-only store on this location (for inspection off the writer's thread).
    pub fn open_reader(&self) -> Result<Box<dyn ProjectReader>, StoreError> {
        Ok(match self {
            Self::Sqlite(path) => Box::new(SqliteStore::open_reader(path)?),
            Self::Postgres(location) => Box::new(PgStore::open_reader(location)?),
        })
    }
}

/// Reads for inspection that the recovery interface does not need.
pub trait ProjectReader: ProjectStore {
    /// The project's pending inputs, oldest first (at most `limit`).
    fn pending_inputs(&self, limit: u32) -> Result<Vec<InputRecord>, StoreError>;
    /// One input, if it exists.
    fn input(&self, id: InputId) -> Result<Option<InputRecord>, StoreError>;
    /// The cron schedules, by id.
    fn schedules(&self) -> Result<Vec<Schedule>, StoreError>;
    /// The per-target concurrency limits of an environment, by target.
    fn concurrency_limits(
        &self,
        environment: EnvironmentId,
    ) -> Result<Vec<(TargetRef, u32)>, StoreError>;
    /// The run with steps `offset..offset + limit` and what a view of them needs, plus the
    /// run's number of steps; with `view`, only the steps with an execution in the run's
    /// environment or in `view` (see `SqliteStore::load_run_page`).
    fn load_run_page(
        &self,
        run: RunId,
        offset: usize,
        limit: usize,
        view: Option<&[EnvironmentId]>,
    ) -> Result<Option<(RunSnapshot, usize)>, StoreError>;
    /// One page of the filtered runs list.
    fn query_runs(&self, filter: &RunFilter, limit: usize) -> Result<RunPage, StoreError>;
    /// The keys of every blob the project's recorded values reference.
    fn referenced_blob_keys(&self) -> Result<HashSet<String>, StoreError>;
}

impl ProjectReader for SqliteStore {
    fn pending_inputs(&self, limit: u32) -> Result<Vec<InputRecord>, StoreError> {
        SqliteStore::pending_inputs(self, limit)
    }
    fn input(&self, id: InputId) -> Result<Option<InputRecord>, StoreError> {
        SqliteStore::input(self, id)
    }
    fn schedules(&self) -> Result<Vec<Schedule>, StoreError> {
        SqliteStore::schedules(self)
    }
    fn concurrency_limits(
        &self,
        environment: EnvironmentId,
    ) -> Result<Vec<(TargetRef, u32)>, StoreError> {
        SqliteStore::concurrency_limits(self, environment)
    }
    fn load_run_page(
        &self,
        run: RunId,
        offset: usize,
        limit: usize,
        view: Option<&[EnvironmentId]>,
    ) -> Result<Option<(RunSnapshot, usize)>, StoreError> {
        SqliteStore::load_run_page(self, run, offset, limit, view)
    }
    fn query_runs(&self, filter: &RunFilter, limit: usize) -> Result<RunPage, StoreError> {
        super::run_list::query_runs(self.connection(), filter, limit)
    }
    fn referenced_blob_keys(&self) -> Result<HashSet<String>, StoreError> {
        SqliteStore::referenced_blob_keys(self)
    }
}

impl ProjectReader for PgStore {
    fn pending_inputs(&self, limit: u32) -> Result<Vec<InputRecord>, StoreError> {
        PgStore::pending_inputs(self, limit)
    }
    fn input(&self, id: InputId) -> Result<Option<InputRecord>, StoreError> {
        PgStore::input(self, id)
    }
    fn schedules(&self) -> Result<Vec<Schedule>, StoreError> {
        PgStore::schedules(self)
    }
    fn concurrency_limits(
        &self,
        environment: EnvironmentId,
    ) -> Result<Vec<(TargetRef, u32)>, StoreError> {
        PgStore::concurrency_limits(self, environment)
    }
    /// Reads the whole run and keeps the page (not paged in SQL yet).
    fn load_run_page(
        &self,
        run: RunId,
        offset: usize,
        limit: usize,
        view: Option<&[EnvironmentId]>,
    ) -> Result<Option<(RunSnapshot, usize)>, StoreError> {
        let Some(mut snapshot) = self.load_run(run)? else {
            return Ok(None);
        };
        if let Some(view) = view {
            let home = snapshot.run.environment;
            let seen: HashSet<u32> = snapshot
                .executions
                .iter()
                .filter(|e| crate::model::visible_from(home, view, e.environment))
                .map(|e| e.id.step.number)
                .collect();
            snapshot.steps.retain(|s| seen.contains(&s.id.number));
        }
        let total = snapshot.steps.len();
        snapshot.steps = snapshot
            .steps
            .into_iter()
            .skip(offset)
            .take(limit)
            .collect();
        let numbers: HashSet<u32> = snapshot.steps.iter().map(|s| s.id.number).collect();
        snapshot
            .executions
            .retain(|e| numbers.contains(&e.id.step.number));
        // As the SQLite page: only the page's links to other runs, no calls; the page's
        // steps' inputs.
        snapshot
            .children
            .retain(|(parent, child)| child.run() != run && numbers.contains(&parent.step.number));
        snapshot.calls.clear();
        snapshot
            .inputs
            .retain(|i| numbers.contains(&i.execution.step.number));
        snapshot
            .checkpoints
            .retain(|(step, _, _)| numbers.contains(&step.number));
        snapshot
            .streams
            .retain(|s| numbers.contains(&s.id.step.number));
        Ok(Some((snapshot, total)))
    }
    fn query_runs(&self, filter: &RunFilter, limit: usize) -> Result<RunPage, StoreError> {
        PgStore::query_runs(self, filter, limit)
    }
    fn referenced_blob_keys(&self) -> Result<HashSet<String>, StoreError> {
        PgStore::referenced_blob_keys(self)
    }
}

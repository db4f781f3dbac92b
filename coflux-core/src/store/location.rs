//! Where a project's state lives ([`StoreLocation`]: a SQLite file or a PostgreSQL schema),
//! and the reads inspection needs beyond [`ProjectStore`] ([`ProjectReader`]), so the
//! orchestrator and the API readers work the same on either backend.

use std::collections::HashSet;
use std::path::PathBuf;

use super::postgres::{PgLocation, PgStore};
use super::retention::SizeReport;
use super::run_list::{RunFilter, RunPage};
use super::sqlite::SqliteStore;
use super::{ProjectStore, RunSnapshot, StoreError};
use crate::model::{EnvironmentId, InputId, InputRecord, Millis, RunId, Schedule, TargetRef};

/// Where one project's state is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A schema of a PostgreSQL database.
    Postgres(PgLocation),
}

impl StoreLocation {
    /// A read-only store on this location (for inspection off the writer's thread, not on an
    /// async worker). On PostgreSQL its connection is taken from a pool and returned to it
    /// when the reader is dropped.
    pub fn open_reader(&self) -> Result<Reader, StoreError> {
        Ok(Reader(match self {
            Self::Sqlite(path) => Some(Either::Sqlite(SqliteStore::open_reader(path)?)),
            Self::Postgres(location) => {
                Some(Either::Postgres(super::postgres::pool::take(location)?))
            }
        }))
    }
}

/// A read-only store (see [`StoreLocation::open_reader`]); use it as a [`ProjectReader`].
pub struct Reader(Option<Either>);

// One per open reader: the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Either {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl std::ops::Deref for Reader {
    type Target = dyn ProjectReader;

    fn deref(&self) -> &Self::Target {
        match &self.0 {
            Some(Either::Sqlite(store)) => store,
            Some(Either::Postgres(store)) => store,
            // Only `drop` takes it out.
            None => unreachable!("a reader is used after it was dropped"),
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(Either::Postgres(store)) = self.0.take() {
            super::postgres::pool::give_back(store);
        }
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
    /// Up to `limit` finished runs created before `cutoff`, oldest first, after `after`.
    fn expired_runs(
        &self,
        cutoff: Millis,
        after: Option<RunId>,
        limit: usize,
    ) -> Result<Vec<RunId>, StoreError>;
    /// Whether `run` has an execution without a result (`None`: no such run).
    fn run_is_open(&self, run: RunId) -> Result<Option<bool>, StoreError>;
    /// Every link from one run to another, as (linking run, linked run).
    fn cross_run_links(&self) -> Result<Vec<(RunId, RunId)>, StoreError>;
    /// The ids of the asset records the project's recorded values refer to.
    fn referenced_asset_ids(&self) -> Result<HashSet<String>, StoreError>;
    /// Row counts of the run tables and the pages the project takes.
    fn size_report(&self) -> Result<SizeReport, StoreError>;
}

/// The [`ProjectReader`] reads both backends answer with an inherent method of the same name.
macro_rules! delegated_reads {
    ($store:ty) => {
        fn pending_inputs(&self, limit: u32) -> Result<Vec<InputRecord>, StoreError> {
            <$store>::pending_inputs(self, limit)
        }
        fn input(&self, id: InputId) -> Result<Option<InputRecord>, StoreError> {
            <$store>::input(self, id)
        }
        fn schedules(&self) -> Result<Vec<Schedule>, StoreError> {
            <$store>::schedules(self)
        }
        fn concurrency_limits(
            &self,
            environment: EnvironmentId,
        ) -> Result<Vec<(TargetRef, u32)>, StoreError> {
            <$store>::concurrency_limits(self, environment)
        }
        fn referenced_blob_keys(&self) -> Result<HashSet<String>, StoreError> {
            <$store>::referenced_blob_keys(self)
        }
        fn expired_runs(
            &self,
            cutoff: Millis,
            after: Option<RunId>,
            limit: usize,
        ) -> Result<Vec<RunId>, StoreError> {
            <$store>::expired_runs(self, cutoff, after, limit)
        }
        fn run_is_open(&self, run: RunId) -> Result<Option<bool>, StoreError> {
            <$store>::run_is_open(self, run)
        }
        fn cross_run_links(&self) -> Result<Vec<(RunId, RunId)>, StoreError> {
            <$store>::cross_run_links(self)
        }
        fn referenced_asset_ids(&self) -> Result<HashSet<String>, StoreError> {
            <$store>::referenced_asset_ids(self)
        }
        fn size_report(&self) -> Result<SizeReport, StoreError> {
            <$store>::size_report(self)
        }
    };
}

impl ProjectReader for SqliteStore {
    delegated_reads!(SqliteStore);
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
}

impl ProjectReader for PgStore {
    delegated_reads!(PgStore);
    fn load_run_page(
        &self,
        run: RunId,
        offset: usize,
        limit: usize,
        view: Option<&[EnvironmentId]>,
    ) -> Result<Option<(RunSnapshot, usize)>, StoreError> {
        PgStore::load_run_page(self, run, offset, limit, view)
    }
    fn query_runs(&self, filter: &RunFilter, limit: usize) -> Result<RunPage, StoreError> {
        PgStore::query_runs(self, filter, limit)
    }
}

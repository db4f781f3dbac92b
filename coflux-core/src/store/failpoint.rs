//! [`FailingStore`]: a store whose commits fail while a switch is on, to test what a full disk
//! does to a project (tests and feature `failpoints` only).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{ProjectStore, RunSummary, StoreError, Write};
use crate::model::{EnvironmentId, RunId, TargetDefinition};

/// Wraps a store: while `full` is set, [`apply`](ProjectStore::apply) fails as SQLite does on a
/// full disk (`SQLITE_FULL`) and applies nothing; reads are unaffected.
pub struct FailingStore {
    inner: Box<dyn ProjectStore>,
    full: Arc<AtomicBool>,
}

impl FailingStore {
    /// Wraps `inner`, failing its commits while `full` is set.
    pub fn new(inner: Box<dyn ProjectStore>, full: Arc<AtomicBool>) -> Self {
        Self { inner, full }
    }
}

impl ProjectStore for FailingStore {
    fn apply(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        if self.full.load(Ordering::Acquire) {
            return Err(StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                Some("database or disk is full (injected)".to_owned()),
            )));
        }
        self.inner.apply(writes)
    }
    fn load(&self) -> Result<super::ProjectSnapshot, StoreError> {
        self.inner.load()
    }
    fn load_run(&self, run: RunId) -> Result<Option<super::RunSnapshot>, StoreError> {
        self.inner.load_run(run)
    }
    fn manifests(&self, environment: EnvironmentId) -> Result<Vec<TargetDefinition>, StoreError> {
        self.inner.manifests(environment)
    }
    fn list_runs(
        &self,
        environment: Option<EnvironmentId>,
        limit: usize,
    ) -> Result<Vec<RunSummary>, StoreError> {
        self.inner.list_runs(environment, limit)
    }
    fn set_wake(&mut self, wake: super::StoreWake) {
        self.inner.set_wake(wake);
    }
    fn maintain(&mut self) {
        self.inner.maintain();
    }
}

//! Usage tracking for garbage collection: when each blob was last uploaded or checked, and the
//! serialization of a use with a deletion of the same blob. In memory on one node
//! ([`MemoryUsage`]), or in PostgreSQL with `--database-url` ([`SharedUsage`]), where every
//! node's uses are seen by whichever node sweeps.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use coflux_core::model::ProjectName;

use super::key::{BlobError, BlobKey};
pub(crate) use super::shared_usage::SharedUsage;

/// Where uses are recorded.
#[derive(Debug, Clone)]
pub(crate) enum Tracking {
    /// In this process's memory.
    Memory(Arc<MemoryUsage>),
    /// In PostgreSQL, shared by every node.
    Shared(Arc<SharedUsage>),
}

/// One sweep's right to delete blobs ([`super::BlobStore::begin_sweep`]): over PostgreSQL it
/// holds the sweep lock (one node sweeps at a time) and the connection deletions lock blob
/// uses on.
pub struct Sweep(pub(crate) Option<super::shared_usage::SweepConnection>);

impl std::fmt::Debug for Sweep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Sweep").field(&self.0.is_some()).finish()
    }
}

/// When blobs were last uploaded or checked, and which are being deleted.
#[derive(Debug, Default)]
pub(crate) struct MemoryUsage {
    state: Mutex<UsageState>,
}

#[derive(Debug, Default)]
struct UsageState {
    /// `<project>/<key>` → when it was last uploaded or checked.
    last_used: HashMap<String, SystemTime>,
    /// `<project>/<key>` of the blobs being deleted right now.
    deleting: HashSet<String>,
}

/// How often a use waits for the deletion of the same blob to end (rare and short).
const DELETION_POLL: Duration = Duration::from_millis(5);

impl MemoryUsage {
    fn lock(&self) -> std::sync::MutexGuard<'_, UsageState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a use now; if the blob is being deleted, waits until the deletion is over, so
    /// what the caller does next (check or upload) happens after it.
    pub(crate) async fn note(&self, project: &ProjectName, key: &BlobKey) {
        let id = usage_id(project, key);
        let deleting = {
            let mut state = self.lock();
            state.last_used.insert(id.clone(), SystemTime::now());
            state.deleting.contains(&id)
        };
        if deleting {
            while self.lock().deleting.contains(&id) {
                tokio::time::sleep(DELETION_POLL).await;
            }
        }
    }

    /// Forgets the uses older than `cutoff`.
    pub(crate) fn forget_before(&self, cutoff: SystemTime) {
        self.lock().last_used.retain(|_, used| *used >= cutoff);
    }

    /// Runs `delete` unless the blob was used at or after `cutoff` (`Ok(false)`, not run); a
    /// use starting meanwhile waits for it to end.
    pub(crate) async fn delete_unused<F>(
        &self,
        project: &ProjectName,
        key: &BlobKey,
        cutoff: SystemTime,
        delete: F,
    ) -> Result<bool, BlobError>
    where
        F: std::future::Future<Output = Result<(), BlobError>>,
    {
        let id = usage_id(project, key);
        let _mark = {
            let mut state = self.lock();
            if state.last_used.get(&id).is_some_and(|used| *used >= cutoff) {
                return Ok(false);
            }
            state.deleting.insert(id.clone());
            DeletingMark { usage: self, id }
        };
        delete.await?;
        Ok(true)
    }
}

/// Clears a blob's "being deleted" mark when its deletion ends (or is cancelled).
struct DeletingMark<'a> {
    usage: &'a MemoryUsage,
    id: String,
}

impl Drop for DeletingMark<'_> {
    fn drop(&mut self) {
        self.usage.lock().deleting.remove(&self.id);
    }
}

fn usage_id(project: &ProjectName, key: &BlobKey) -> String {
    format!("{}/{}", project.as_str(), key.as_str())
}

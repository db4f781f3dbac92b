//! Garbage collection of blobs (`--blob-gc-grace-hours`, default 24; 0 disables it).
//!
//! A background sweep runs [`FIRST_SWEEP`] after the server starts, then every
//! `blob_gc_interval` (6 hours), off the request path. For each project of the catalogue it
//! lists the project's blobs, then gathers every key the project references:
//!
//! - the step arguments, execution results and schedule arguments of its orchestration
//!   database (a blob value's key and every fragment reference's `blob_key`;
//!   [`coflux_core::Project::referenced_blob_keys`]);
//! - its asset records (every entry's `blob_key`; [`AssetStore`]);
//! - the values of its log messages, until log retention removes them.
//!
//! A blob is deleted only if it is in none of these AND it was last written before
//! `now - grace` AND it was not uploaded or checked (`PUT`, `HEAD`, asset creation; see
//! [`BlobStore::with_usage_tracking`]) since then. The grace protects uploads in flight: an
//! agent uploads a blob (or checks that it is there) before it records the result or asset
//! that references it. If anything about a project cannot be read (its database, an asset
//! record, its log database, a row that does not decode), nothing of that project is deleted
//! in that sweep. Blobs of directories or prefixes that are not projects of the catalogue are
//! never touched.
//!
//! With `--database-url` all of these are in PostgreSQL, shared by the nodes: the project's
//! schema (read whichever node owns the project), the asset records and logs tables, and the
//! blob uses of every node ([`BlobStore::with_shared_usage_tracking`]). One node sweeps at a
//! time (a sweep holds a PostgreSQL advisory lock; a node finding it taken skips its sweep),
//! and a use of a blob on any node is serialized with its deletion.
//!
//! Limits: on one node usage is remembered in memory, so the first sweep waits
//! [`FIRST_SWEEP`] after a start for agents to finish what they checked before it; the
//! servers must own the blob store (another process writing to the same bucket or directory
//! is not seen).

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use coflux_core::Coflux;
use coflux_core::model::ProjectName;
use coflux_core::store::collect_blob_keys;

use crate::asset_store::AssetStore;
use crate::blobs::{BlobStore, Deletion, Sweep};
use crate::logs::LogStore;

/// How long after start the first sweep runs (at most; sooner if the interval is shorter).
pub const FIRST_SWEEP: Duration = Duration::from_secs(15 * 60);

/// What one sweep did, over all projects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Projects whose blobs were examined.
    pub projects: usize,
    /// Blobs listed.
    pub blobs: u64,
    /// Blobs kept because something references them.
    pub referenced: u64,
    /// Unreferenced blobs kept because they were written within the grace period.
    pub young: u64,
    /// Unreferenced blobs kept because they were uploaded or checked within the grace period.
    pub recently_used: u64,
    /// Blobs deleted.
    pub deleted: u64,
    /// Bytes of the blobs deleted.
    pub deleted_bytes: u64,
    /// Projects skipped because their references or blobs could not be read, plus blobs whose
    /// deletion failed (logged; retried on the next sweep).
    pub failed: u64,
}

/// The blob garbage collector of a server: its sweeps and their schedule.
pub struct BlobGc {
    coflux: Coflux,
    blobs: BlobStore,
    logs: Arc<LogStore>,
    assets: Arc<AssetStore>,
    grace: Duration,
}

impl std::fmt::Debug for BlobGc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobGc")
            .field("assets", &self.assets)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl BlobGc {
    /// A collector of `blobs` (which should track usage, see
    /// [`BlobStore::with_usage_tracking`]) for the projects of `coflux`, sparing blobs written
    /// or used within `grace`.
    pub fn new(
        coflux: Coflux,
        blobs: BlobStore,
        logs: Arc<LogStore>,
        assets: Arc<AssetStore>,
        grace: Duration,
    ) -> Self {
        Self {
            coflux,
            blobs,
            logs,
            assets,
            grace,
        }
    }

    /// The grace period.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Runs one sweep as if the time were `now` (injected so tests control the clock). A
    /// project that fails is logged and skipped; only the list of projects failing is an
    /// error. `Ok(None)` when another node is sweeping (over PostgreSQL).
    pub async fn sweep(&self, now: SystemTime) -> anyhow::Result<Option<GcReport>> {
        let mut report = GcReport::default();
        let Some(cutoff) = now.checked_sub(self.grace) else {
            return Ok(Some(report));
        };
        let Some(mut sweep) = self.blobs.begin_sweep().await? else {
            tracing::info!("blob GC: another node is sweeping; skipped");
            return Ok(None);
        };
        for name in self.coflux.list_projects().await? {
            let project = match ProjectName::new(&name) {
                Ok(project) => project,
                Err(error) => {
                    tracing::warn!(project = %name, %error, "blob GC: skipping a project");
                    report.failed += 1;
                    continue;
                }
            };
            report.projects += 1;
            if let Err(error) = self
                .sweep_project(&mut sweep, &project, cutoff, &mut report)
                .await
            {
                report.failed += 1;
                tracing::warn!(project = %name, error = %format!("{error:#}"),
                    "blob GC: project skipped, nothing of it deleted");
            }
        }
        if let Err(error) = self.blobs.forget_uses_before(cutoff).await {
            tracing::warn!(%error, "blob GC: could not forget old uses");
        }
        tracing::info!(
            projects = report.projects,
            blobs = report.blobs,
            referenced = report.referenced,
            young = report.young,
            recently_used = report.recently_used,
            deleted = report.deleted,
            deleted_bytes = report.deleted_bytes,
            failed = report.failed,
            grace_secs = self.grace.as_secs(),
            "blob GC sweep"
        );
        Ok(Some(report))
    }

    async fn sweep_project(
        &self,
        sweep: &mut Sweep,
        project: &ProjectName,
        cutoff: SystemTime,
        report: &mut GcReport,
    ) -> anyhow::Result<()> {
        // Listed first: whatever is referenced by the time the references are read is kept.
        let blobs = self.blobs.list(project).await?;
        if blobs.is_empty() {
            return Ok(());
        }
        let referenced = self.referenced(project).await?;
        for blob in blobs {
            report.blobs += 1;
            if referenced.contains(blob.key.as_str()) {
                report.referenced += 1;
                continue;
            }
            if blob.modified >= cutoff {
                report.young += 1;
                continue;
            }
            match self
                .blobs
                .delete_unused(sweep, project, &blob.key, cutoff)
                .await
            {
                Ok(Deletion::Deleted) => {
                    report.deleted += 1;
                    report.deleted_bytes += blob.size;
                    tracing::debug!(project = %project, key = %blob.key, "blob GC: deleted");
                }
                Ok(Deletion::RecentlyUsed) => report.recently_used += 1,
                Err(error) => {
                    report.failed += 1;
                    tracing::warn!(project = %project, key = %blob.key, %error,
                        "blob GC: deleting failed");
                }
            }
        }
        Ok(())
    }

    /// Every blob key a project references (database, asset records, logs).
    pub async fn referenced(&self, project: &ProjectName) -> anyhow::Result<HashSet<String>> {
        let mut keys = self.coflux.referenced_blob_keys(project.as_str()).await?;
        let assets = Arc::clone(&self.assets);
        let logs = Arc::clone(&self.logs);
        let project = project.clone();
        let files = tokio::task::spawn_blocking(move || {
            let mut keys = HashSet::new();
            assets.blob_keys(&project, &mut keys)?;
            logs.for_each_logged_value(&project, None, &mut |value| {
                collect_blob_keys(value, &mut keys)
            })?;
            anyhow::Ok(keys)
        })
        .await??;
        keys.extend(files);
        Ok(keys)
    }

    /// Starts the periodic sweep on the current Tokio runtime: first within [`FIRST_SWEEP`]
    /// (or one `interval` if shorter), then every `interval`. The task ends by itself once the
    /// collector has been dropped.
    pub fn start(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let gc: Weak<Self> = Arc::downgrade(self);
        let interval = interval.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut wait = interval.min(FIRST_SWEEP);
            loop {
                tokio::time::sleep(wait).await;
                wait = interval;
                let Some(gc) = gc.upgrade() else {
                    return;
                };
                if let Err(error) = gc.sweep(SystemTime::now()).await {
                    tracing::warn!(error = %format!("{error:#}"), "blob GC sweep failed");
                }
            }
        })
    }
}

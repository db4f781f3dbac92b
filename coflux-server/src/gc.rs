//! Garbage collection of blobs (`--blob-gc-grace-hours`, default 24; 0 disables it).
//!
//! A background sweep runs [`FIRST_SWEEP`] after the server starts, then every
//! `blob_gc_interval` (6 hours), off the request path. For each project of the catalogue it
//! lists the project's blobs, then gathers every key the project references:
//!
//! - the step arguments, execution results and schedule arguments of its orchestration
//!   database (a blob value's key and every fragment reference's `blob_key`;
//!   [`coflux_core::Project::referenced_blob_keys`]);
//! - its asset records (`<data_dir>/assets/<project>/<id>.json`, every entry's `blob_key`);
//! - the values of its log messages (`logs.sqlite`), until log retention removes them.
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
//! Limits: usage is remembered in memory, so the first sweep waits [`FIRST_SWEEP`] after a
//! start for agents to finish what they checked before it; one server must own the blob
//! store (another process writing to the same bucket or directory is not seen).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use coflux_core::Coflux;
use coflux_core::model::ProjectName;
use coflux_core::store::sqlite::collect_blob_keys;

use crate::asset_record::Record;
use crate::blobs::{BlobStore, Deletion};
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
    data_dir: PathBuf,
    grace: Duration,
}

impl std::fmt::Debug for BlobGc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobGc")
            .field("data_dir", &self.data_dir)
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
        data_dir: impl Into<PathBuf>,
        grace: Duration,
    ) -> Self {
        Self {
            coflux,
            blobs,
            logs,
            data_dir: data_dir.into(),
            grace,
        }
    }

    /// The grace period.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Runs one sweep as if the time were `now` (injected so tests control the clock). A
    /// project that fails is logged and skipped; only the list of projects failing is an
    /// error.
    pub async fn sweep(&self, now: SystemTime) -> anyhow::Result<GcReport> {
        let mut report = GcReport::default();
        let Some(cutoff) = now.checked_sub(self.grace) else {
            return Ok(report);
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
            if let Err(error) = self.sweep_project(&project, cutoff, &mut report).await {
                report.failed += 1;
                tracing::warn!(project = %name, error = %format!("{error:#}"),
                    "blob GC: project skipped, nothing of it deleted");
            }
        }
        self.blobs.forget_uses_before(cutoff);
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
        Ok(report)
    }

    async fn sweep_project(
        &self,
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
            match self.blobs.delete_unused(project, &blob.key, cutoff).await {
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
        let handle = self.coflux.existing_project(project.as_str()).await?;
        let mut keys = handle.referenced_blob_keys().await?;
        let assets = self.data_dir.join("assets").join(project.as_str());
        let logs = Arc::clone(&self.logs);
        let project = project.clone();
        let files = tokio::task::spawn_blocking(move || {
            let mut keys = HashSet::new();
            asset_blob_keys(&assets, &mut keys)?;
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

/// Adds the blob keys of every asset record in `directory` (`<id>.json`; temporary files
/// starting with `.` are records being written, whose blobs were just checked).
fn asset_blob_keys(directory: &std::path::Path, keys: &mut HashSet<String>) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(directory) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        let content = std::fs::read(entry.path())?;
        let record: Record = serde_json::from_slice(&content)
            .map_err(|e| anyhow::anyhow!("asset record {name}: {e}"))?;
        keys.extend(record.entries.into_values().map(|entry| entry.blob_key));
    }
    Ok(())
}

//! Run retention (`--run-retention-days`, default: keep runs forever).
//!
//! A background sweep (within 10 minutes of start, then hourly) deletes, in every project, the
//! finished runs created before `now - retention`, in small transactions through the project's
//! writer ([`coflux_core::Project::delete_expired_runs`]; runs a surviving run links to, e.g.
//! through a cache hit, are kept until it goes). What lives outside the project's database
//! goes with them ([`forget_deleted_runs`]): their logs and metrics, and the asset records no
//! recorded value or log refers to any more. The blobs they referenced are then unreferenced
//! and fall to the blob garbage collector ([`crate::gc`]).

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coflux_core::api::{ASSET_GRACE, DEFAULT_RETENTION_BATCH};
use coflux_core::model::{ProjectName, RunId};
use coflux_core::store::retention::asset_ids;
use coflux_core::{Coflux, Project};

use crate::asset_store::AssetStore;
use crate::logs::LogStore;

/// How long after start the first sweep runs (at most; sooner if the interval is shorter).
pub const FIRST_SWEEP: Duration = Duration::from_secs(10 * 60);

/// What one sweep did, over all projects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionSweep {
    /// Projects examined.
    pub projects: usize,
    /// Runs deleted.
    pub deleted: usize,
    /// Expired runs kept (a surviving run links to them, or they were in use).
    pub kept: usize,
    /// Asset records deleted.
    pub asset_records: usize,
    /// Projects whose sweep failed (logged; retried on the next sweep).
    pub failed: usize,
}

/// The run retention of a server.
pub struct RunRetention {
    coflux: Coflux,
    logs: Arc<LogStore>,
    assets: Arc<AssetStore>,
    retention: Duration,
}

impl RunRetention {
    /// Retention of `retention` over the projects of `coflux`.
    pub fn new(
        coflux: Coflux,
        logs: Arc<LogStore>,
        assets: Arc<AssetStore>,
        retention: Duration,
    ) -> Self {
        Self {
            coflux,
            logs,
            assets,
            retention,
        }
    }

    /// Runs one sweep as if the time were `now` (injected so tests control the clock).
    pub async fn sweep(&self, now: SystemTime) -> anyhow::Result<RetentionSweep> {
        let mut report = RetentionSweep::default();
        let cutoff = now
            .checked_sub(self.retention)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        for name in self.coflux.list_projects().await? {
            report.projects += 1;
            if let Err(error) = self.sweep_project(&name, cutoff, &mut report).await {
                report.failed += 1;
                tracing::warn!(project = %name, error = %format!("{error:#}"), "run retention: project skipped");
            }
        }
        if report.deleted > 0 || report.failed > 0 {
            tracing::info!(
                projects = report.projects,
                deleted = report.deleted,
                kept = report.kept,
                asset_records = report.asset_records,
                failed = report.failed,
                "run retention sweep"
            );
        }
        Ok(report)
    }

    async fn sweep_project(
        &self,
        name: &str,
        cutoff: i64,
        report: &mut RetentionSweep,
    ) -> anyhow::Result<()> {
        let project = self.coflux.existing_project(name).await?;
        let result = project
            .delete_expired_runs(cutoff, DEFAULT_RETENTION_BATCH)
            .await?;
        report.deleted += result.deleted.len();
        report.kept += result.kept;
        report.asset_records +=
            forget_deleted_runs(&project, &self.logs, &self.assets, &result.deleted).await?;
        Ok(())
    }

    /// Starts the periodic sweep on the current Tokio runtime: first within [`FIRST_SWEEP`]
    /// (or one `interval` if shorter), then every `interval`. The task ends by itself once
    /// the retention has been dropped.
    pub fn start(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let this: Weak<Self> = Arc::downgrade(self);
        let interval = interval.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut wait = interval.min(FIRST_SWEEP);
            loop {
                tokio::time::sleep(wait).await;
                wait = interval;
                let Some(this) = this.upgrade() else {
                    return;
                };
                if let Err(error) = this.sweep(SystemTime::now()).await {
                    tracing::warn!(error = %format!("{error:#}"), "run retention sweep failed");
                }
            }
        })
    }
}

/// Removes what deleted runs leave outside their project's database: their logs and metrics,
/// then the asset records that no recorded value or log message refers to and that are older
/// than [`ASSET_GRACE`]. Returns how many asset records were deleted.
pub async fn forget_deleted_runs(
    project: &Project,
    logs: &LogStore,
    assets: &Arc<AssetStore>,
    runs: &[RunId],
) -> anyhow::Result<usize> {
    if runs.is_empty() {
        return Ok(0);
    }
    let name = ProjectName::new(project.name())?;
    logs.delete_runs(&name, runs).await?;
    let mut referenced = project.referenced_asset_ids().await?;
    let assets = Arc::clone(assets);
    let logs = logs.clone();
    tokio::task::spawn_blocking(move || {
        logs.for_each_logged_value(&name, Some("\"asset\""), &mut |value| {
            asset_ids(value, &mut referenced)
        })?;
        let cutoff = SystemTime::now()
            .checked_sub(ASSET_GRACE)
            .unwrap_or(UNIX_EPOCH);
        anyhow::Ok(assets.delete_unreferenced(&name, &referenced, cutoff)?)
    })
    .await?
}

//! Log retention: a periodic background sweep deletes every project's logs older than the
//! retention (`--log-retention-days`), in bounded batches on the log writer thread, so it
//! never runs on a request's path and appends interleave with it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::record::LogError;
use super::store::LogStore;

/// How long after start the first sweep runs (at most; sooner if the interval is shorter).
const FIRST_SWEEP: Duration = Duration::from_secs(60);

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Projects whose logs were examined.
    pub projects: usize,
    /// Records deleted, over all projects.
    pub deleted: u64,
    /// Projects whose pruning failed (logged; retried on the next sweep).
    pub failed: usize,
}

/// The current time in Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl LogStore {
    /// Deletes, in every project, the logs older than `now_ms - retention` (`now_ms` in Unix
    /// milliseconds; injected so tests control the clock). A project that fails is logged and
    /// skipped.
    pub async fn sweep(&self, now_ms: u64, retention: Duration) -> Result<SweepReport, LogError> {
        let retention_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
        let cutoff = now_ms.saturating_sub(retention_ms);
        let mut report = SweepReport::default();
        for project in self.projects_with_logs()? {
            report.projects += 1;
            match self.prune(project.as_str(), cutoff).await {
                Ok(deleted) => report.deleted += deleted,
                Err(error) => {
                    report.failed += 1;
                    tracing::warn!(project = %project, %error, "log retention sweep failed");
                }
            }
        }
        if report.deleted > 0 || report.failed > 0 {
            tracing::info!(
                deleted = report.deleted,
                projects = report.projects,
                failed = report.failed,
                cutoff_ms = cutoff,
                "log retention sweep"
            );
        }
        Ok(report)
    }

    /// Starts the periodic sweep on the current Tokio runtime: first within a minute (or one
    /// `interval` if shorter), then every `interval`, keeping `retention`. The task ends by
    /// itself once the store has been dropped; dropping the returned handle does not stop it.
    pub fn start_retention(
        &self,
        retention: Duration,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.downgrade();
        let interval = interval.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut wait = interval.min(FIRST_SWEEP);
            loop {
                tokio::time::sleep(wait).await;
                wait = interval;
                let Some(store) = store.upgrade() else {
                    return;
                };
                if let Err(error) = store.sweep(now_ms(), retention).await {
                    tracing::warn!(%error, "log retention sweep failed");
                }
            }
        })
    }
}

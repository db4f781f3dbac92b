//! Run retention and deletion: finished runs older than a cutoff (or one run on request) are
//! deleted with everything recorded under them, in small transactions, off the request path.
//!
//! Each batch: the runs that no surviving run links to are marked as being deleted (runs in memory are skipped: active, or
//! just finished), the project stops offering their executions as cache sources and forgets
//! their idempotency keys, then, after [`SETTLE`] (so a cache hit handed out just before is
//! recorded by the run that got it), the runs that a surviving run links to are taken out of
//! the batch and the rest is deleted in one transaction through the project's writer.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::model::{Millis, RunId};
use crate::orchestration::OrchestrationError;
use crate::orchestration::messages::{Envelope, ProjectMsg, Reply};
use crate::store::Write;
use crate::store::location::ProjectReader;
use crate::store::retention::{SizeReport, deletable};

use super::Coflux;
use super::error::Error;
use super::project::{Project, unexpected};

/// How long a batch waits between withdrawing its runs from the cache and checking which of
/// them a surviving run links to.
pub const SETTLE: Duration = Duration::from_millis(200);

/// How many runs one deletion transaction removes at most.
pub const DEFAULT_BATCH: usize = 50;

/// How long [`Project::delete_run`] waits for a finished run to leave memory.
const RETIRE_WAIT: Duration = Duration::from_secs(3);

/// What one retention pass over a project did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Runs deleted, oldest first.
    pub deleted: Vec<RunId>,
    /// Expired runs kept because a surviving run links to them or they were in use.
    pub kept: usize,
}

impl Project {
    /// Deletes every finished run created before `cutoff` (Unix ms), `batch` runs per
    /// transaction, keeping the runs a surviving run links to (cache hits, deferrals, spawned
    /// workflows) and runs in use. The asset records they leave unreferenced go too (see
    /// [`super::Config::asset_records_by_host`]); a host keeping logs and metrics outside the
    /// project's database removes those for [`RetentionReport::deleted`].
    pub async fn delete_expired_runs(
        &self,
        cutoff: Millis,
        batch: usize,
    ) -> Result<RetentionReport, Error> {
        let batch = batch.max(1);
        let mut report = RetentionReport::default();
        let mut after = None;
        // Read once per pass to pick each batch; each batch reads them again before deleting.
        let mut links = self.read(|store| store.cross_run_links()).await?;
        loop {
            let page = self
                .read(move |store| store.expired_runs(cutoff, after, batch))
                .await?;
            let Some(last) = page.last().copied() else {
                self.after_runs_deleted(&report.deleted).await;
                return Ok(report);
            };
            after = Some(last);
            let deleted = self.delete_batch(&page, &links).await?;
            links.retain(|(from, _)| !deleted.contains(from));
            report.kept += page.len() - deleted.len();
            report.deleted.extend(deleted);
        }
    }

    /// Deletes one finished run with everything recorded under it (and the asset records it
    /// leaves unreferenced, see [`super::Config::asset_records_by_host`]). Refused with `run_active`
    /// while it has an execution without a result, and with `run_referenced` while another
    /// run links to one of its executions (e.g. a newer run's cache hit).
    pub async fn delete_run(&self, run: RunId) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + RETIRE_WAIT;
        loop {
            match self.read(move |store| store.run_is_open(run)).await? {
                None => return Err(OrchestrationError::RunNotFound(run.to_string()).into()),
                Some(true) => return Err(OrchestrationError::RunActive(run.to_string()).into()),
                Some(false) => {}
            }
            let links = self.read(|store| store.cross_run_links()).await?;
            let by: BTreeSet<String> = links
                .iter()
                .filter(|(_, to)| *to == run)
                .map(|(from, _)| from.to_string())
                .collect();
            if !by.is_empty() {
                return Err(OrchestrationError::RunReferenced {
                    run: run.to_string(),
                    by: by.into_iter().collect(),
                }
                .into());
            }
            if !self.delete_batch(&[run], &links).await?.is_empty() {
                self.after_runs_deleted(&[run]).await;
                return Ok(());
            }
            // Still in memory (it just finished) or linked to meanwhile: look again.
            if tokio::time::Instant::now() >= deadline {
                return Err(OrchestrationError::RunActive(run.to_string()).into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The ids of the asset records the project's recorded values refer to (see
    /// `ProjectReader::referenced_asset_ids`); an undecodable row is an error.
    pub async fn referenced_asset_ids(&self) -> Result<std::collections::HashSet<String>, Error> {
        self.read(|store| store.referenced_asset_ids()).await
    }

    /// Row counts and used pages of the project's database.
    pub async fn database_size(&self) -> Result<SizeReport, Error> {
        self.read(|store| store.size_report()).await
    }

    /// One deletion transaction (see the module's documentation); returns the runs deleted.
    /// Runs linked to in `links` (read shortly before) are left alone: they stay cache
    /// sources. The links are read again once the others are withdrawn from the cache.
    async fn delete_batch(
        &self,
        runs: &[RunId],
        links: &[(RunId, RunId)],
    ) -> Result<Vec<RunId>, Error> {
        let runs = deletable(runs, links);
        let router = &self.handle().router;
        let marked = router.begin_delete(&runs);
        let result = self.delete_marked(&marked).await;
        router.end_delete(&marked);
        result
    }

    async fn delete_marked(&self, marked: &[RunId]) -> Result<Vec<RunId>, Error> {
        if marked.is_empty() {
            return Ok(Vec::new());
        }
        let runs = marked.to_vec();
        match self
            .request(|reply| Envelope::Project(ProjectMsg::ForgetRuns { runs, reply }))
            .await?
        {
            Reply::Recorded(r) => r?,
            other => return Err(unexpected(other)),
        }
        tokio::time::sleep(SETTLE).await;
        let links = self.read(|store| store.cross_run_links()).await?;
        let runs = deletable(marked, &links);
        if runs.is_empty() {
            return Ok(runs);
        }
        let router = &self.handle().router;
        let (id, rx) = router.expect_reply();
        router.commit(
            vec![Write::DeleteRuns(runs.clone())],
            vec![Envelope::Reply(id, Reply::Recorded(Ok(())))],
        );
        match rx.await {
            Ok(Reply::Recorded(r)) => r?,
            Ok(other) => return Err(unexpected(other)),
            Err(_) => return Err(Error::Unavailable("the project stopped".into())),
        }
        for run in &runs {
            tracing::debug!(project = %self.name(), run = %run, "run deleted");
        }
        Ok(runs)
    }

    /// Runs `f` on a read-only connection to the project's database, on a blocking thread.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn ProjectReader) -> Result<T, crate::store::StoreError> + Send + 'static,
    ) -> Result<T, Error> {
        let location = self.handle().store.clone();
        actix_rt::task::spawn_blocking(move || {
            let store = location.open_reader()?;
            Ok(f(&*store)?)
        })
        .await
        .map_err(|_| Error::Unavailable("a read of the project's database failed".into()))?
    }
}

/// Starts the embedded retention task ([`super::Config::run_retention`]): every `interval`,
/// the finished runs of every project created more than `retention` ago are deleted. It
/// holds the orchestrator weakly and ends once every [`Coflux`] clone is dropped.
pub(super) fn start(coflux: &Coflux, retention: Duration, interval: Duration) {
    let supervisor = coflux.supervisor.downgrade();
    let data_dir = coflux.data_dir.clone();
    let database_url = coflux.database_url.clone();
    let asset_records_by_host = coflux.asset_records_by_host;
    let interval = interval.max(Duration::from_millis(10));
    let retention = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    actix_rt::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(supervisor) = supervisor.upgrade() else {
                return;
            };
            let coflux = Coflux {
                supervisor,
                data_dir: data_dir.clone(),
                database_url: database_url.clone(),
                asset_records_by_host,
            };
            let cutoff = crate::model::now_millis().saturating_sub(retention);
            let projects = coflux.list_projects().await.unwrap_or_default();
            for name in projects {
                let result = match coflux.existing_project(&name).await {
                    Ok(project) => project.delete_expired_runs(cutoff, DEFAULT_BATCH).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(report) if !report.deleted.is_empty() => {
                        tracing::info!(project = %name, deleted = report.deleted.len(), kept = report.kept, "run retention")
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(project = %name, %error, "run retention failed"),
                }
            }
        }
    });
}

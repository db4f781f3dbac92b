//! [`Project::query_runs`]: a page of the runs list, filtered, from the committed state.

use crate::model::{Millis, RunId, TargetRef};
use crate::orchestration::OrchestrationError;
use crate::store::run_list::{RunFilter, RunPage, RunStatus};

use super::{Error, Project};

/// Which runs to list (see [`Project::query_runs`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunQuery {
    /// Only runs submitted in the environment(s) with this name.
    pub environment: Option<String>,
    /// Only runs of this workflow.
    pub workflow: Option<TargetRef>,
    /// Only runs with this status.
    pub status: Option<RunStatus>,
    /// Only runs submitted at or after this time.
    pub since: Option<Millis>,
    /// Only runs submitted before this time.
    pub until: Option<Millis>,
    /// Only runs older than this one (where the previous page ended).
    pub before: Option<RunId>,
    /// The page size.
    pub limit: usize,
}

impl Project {
    /// A page of runs, newest first (404 `environment_not_found` for an unknown environment
    /// name). The page's `next` continues below its last run, so paging never repeats or
    /// skips a run while new ones are created.
    pub async fn query_runs(&self, query: RunQuery) -> Result<RunPage, Error> {
        let environments = match &query.environment {
            None => None,
            Some(name) => {
                let ids: Vec<_> = self
                    .environments()
                    .await?
                    .into_iter()
                    .filter(|e| e.name.as_str() == name)
                    .map(|e| e.id)
                    .collect();
                if ids.is_empty() {
                    return Err(OrchestrationError::EnvironmentNotFound(name.clone()).into());
                }
                Some(ids)
            }
        };
        let filter = RunFilter {
            environments,
            workflow: query.workflow,
            status: query.status,
            since: query.since,
            until: query.until,
            before: query.before,
        };
        let location = self.handle().store.clone();
        let limit = query.limit;
        actix_rt::task::spawn_blocking(move || {
            Ok(location.open_reader()?.query_runs(&filter, limit)?)
        })
        .await
        .map_err(|_| Error::Unavailable("inspection task failed".into()))?
    }
}

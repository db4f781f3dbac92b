//! Per-environment settings of a project: per-target concurrency limits and archived modules.

use crate::model::TargetRef;
use crate::orchestration::messages::{Envelope, ProjectMsg, Reply};

use super::error::Error;
use super::project::{Project, environment_name, unexpected};

/// A per-target concurrency limit of an environment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConcurrencyLimit {
    /// The target.
    pub target: TargetRef,
    /// At most this many of its executions run at once in the environment.
    pub max: u32,
}

impl Project {
    /// Limits how many executions of `target` run at once in an environment (across all its
    /// agents); `None` or 0 lifts the limit. Executions waiting for their children do not
    /// count. The limit is stored and survives restarts.
    pub async fn set_concurrency_limit(
        &self,
        environment: &str,
        target: TargetRef,
        max: Option<u32>,
    ) -> Result<(), Error> {
        if target.module.is_empty() || target.name.is_empty() {
            return Err(Error::Invalid("a target needs a module and a name".into()));
        }
        let environment = environment_name(environment)?;
        match self
            .request(|reply| {
                Envelope::Project(ProjectMsg::SetConcurrencyLimit {
                    environment,
                    target,
                    max,
                    reply,
                })
            })
            .await?
        {
            Reply::Environment(r) => r.map(|_| ()).map_err(Error::from),
            other => Err(unexpected(other)),
        }
    }

    /// The concurrency limits of an environment, by target.
    pub async fn concurrency_limits(
        &self,
        environment: &str,
    ) -> Result<Vec<ConcurrencyLimit>, Error> {
        let env = self.environment_id(environment).await?.id;
        let location = self.handle().store.clone();
        actix_rt::task::spawn_blocking(move || {
            let store = location.open_reader()?;
            Ok(store
                .concurrency_limits(env)?
                .into_iter()
                .map(|(target, max)| ConcurrencyLimit { target, max })
                .collect())
        })
        .await
        .map_err(|_| Error::Unavailable("limits task failed".into()))?
    }

    /// Archives a module in an environment: its registered workflows and tasks are no longer
    /// listed (nor submittable through the server) until a manifest registers them again.
    /// Runs already started are not affected.
    pub async fn archive_module(&self, environment: &str, module: &str) -> Result<(), Error> {
        if module.is_empty() {
            return Err(Error::Invalid("a module name is required".into()));
        }
        let env = environment_name(environment)?;
        let known = self
            .manifests(environment)
            .await?
            .iter()
            .any(|d| d.target.module == module);
        if !known {
            return Err(Error::Invalid(format!(
                "module {module} has no registered targets in {environment}"
            )));
        }
        let module = module.to_string();
        match self
            .request(|reply| {
                Envelope::Project(ProjectMsg::ArchiveModule {
                    environment: env,
                    module,
                    reply,
                })
            })
            .await?
        {
            Reply::Environment(r) => r.map(|_| ()).map_err(Error::from),
            other => Err(unexpected(other)),
        }
    }
}

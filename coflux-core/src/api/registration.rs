//! Whether a workflow may be submitted in an environment, and with which registered options,
//! read from outside the project actor (for schedules): the environment is resolved once and
//! its manifests read once. A run submission is decided by the project actor itself
//! ([`Project::submit_with`]).

use crate::model::{EnvironmentId, TargetDefinition, TargetRef};
use crate::orchestration::OrchestrationError;
use crate::orchestration::registration;

use super::error::Error;
use super::project::Project;

/// A workflow's registration in an environment ([`Project::registration`]).
#[derive(Debug, Clone)]
pub struct Registration {
    /// Its registered definition, if a manifest registered it (as a workflow or a task).
    pub definition: Option<TargetDefinition>,
    /// Why it may not be submitted unless unregistered workflows are allowed.
    unregistered: Option<OrchestrationError>,
}

impl Registration {
    /// Refuses the workflow (`workflow_not_found`, with the closest names) unless a connected
    /// worker of the environment hosts it or a manifest registered it there as a workflow.
    pub fn require(&self) -> Result<(), Error> {
        match &self.unregistered {
            Some(error) => Err(error.clone().into()),
            None => Ok(()),
        }
    }
}

impl Project {
    /// `target`'s registration in `environment`: its registered definition and whether it may
    /// be submitted (see [`Registration::require`]). One environment lookup, one manifest read.
    pub async fn registration(
        &self,
        environment: &str,
        target: &TargetRef,
    ) -> Result<Registration, Error> {
        let env = self.environment_id(environment).await?;
        let manifests = self.read_manifests(env.id).await?;
        let hosted = self.handle().router.hosted_targets(env.id);
        let unregistered =
            registration::check_registered(target, env.name.as_str(), &hosted, &manifests).err();
        let definition = manifests.into_iter().find(|d| &d.target == target);
        Ok(Registration {
            definition,
            unregistered,
        })
    }

    /// The definitions registered for an environment, by module and name.
    pub async fn manifests(&self, environment: &str) -> Result<Vec<TargetDefinition>, Error> {
        let env = self.environment_id(environment).await?.id;
        self.read_manifests(env).await
    }

    /// The definitions registered for environment `env`, read through a reader.
    async fn read_manifests(&self, env: EnvironmentId) -> Result<Vec<TargetDefinition>, Error> {
        let location = self.handle().store.clone();
        actix_rt::task::spawn_blocking(move || Ok(location.open_reader()?.manifests(env)?))
            .await
            .map_err(|_| Error::Unavailable("manifest task failed".into()))?
    }
}

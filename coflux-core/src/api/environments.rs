//! A project's environments: create, list, re-base, pause, resume and archive.

use crate::model::{Environment, EnvironmentState};
use crate::orchestration::OrchestrationError;
use crate::orchestration::messages::{Envelope, ProjectMsg, Reply, ReplyTo};

use super::error::Error;
use super::project::{Project, environment_name, unexpected};

impl Project {
    /// Creates an environment, optionally inheriting from `parent`.
    pub async fn create_environment(
        &self,
        name: &str,
        parent: Option<&str>,
    ) -> Result<Environment, Error> {
        let name = environment_name(name)?;
        let parent = parent.map(environment_name).transpose()?;
        self.environment_request(|reply| ProjectMsg::CreateEnvironment {
            name,
            parent,
            reply,
        })
        .await
    }

    /// Returns the environment with this name, creating it (with `parent`) if it does not exist.
    pub async fn ensure_environment(
        &self,
        name: &str,
        parent: Option<&str>,
    ) -> Result<Environment, Error> {
        match self.active_environment(name).await? {
            Some(env) => Ok(env),
            None => self.create_environment(name, parent).await,
        }
    }

    /// All environments, including archived ones.
    pub async fn environments(&self) -> Result<Vec<Environment>, Error> {
        match self
            .request(|reply| Envelope::Project(ProjectMsg::ListEnvironments { reply }))
            .await?
        {
            Reply::Environments(list) => Ok(list),
            other => Err(unexpected(other)),
        }
    }

    async fn set_state(&self, name: &str, state: EnvironmentState) -> Result<Environment, Error> {
        let name = environment_name(name)?;
        self.environment_request(|reply| ProjectMsg::SetEnvironmentState { name, state, reply })
            .await
    }

    /// Re-bases an environment on `parent` (or on none): from then on it inherits cached
    /// results, manifests and run views from its new ancestors. Refused (`environment_cycle`)
    /// if `parent` is the environment itself or one of its descendants.
    pub async fn set_environment_parent(
        &self,
        name: &str,
        parent: Option<&str>,
    ) -> Result<Environment, Error> {
        let name = environment_name(name)?;
        let parent = parent.map(environment_name).transpose()?;
        self.environment_request(|reply| ProjectMsg::SetEnvironmentParent {
            name,
            parent,
            reply,
        })
        .await
    }

    /// Pauses an environment: nothing is assigned until it is resumed.
    pub async fn pause_environment(&self, name: &str) -> Result<Environment, Error> {
        self.set_state(name, EnvironmentState::Paused).await
    }

    /// Resumes a paused environment.
    pub async fn resume_environment(&self, name: &str) -> Result<Environment, Error> {
        self.set_state(name, EnvironmentState::Active).await
    }

    /// Archives an environment (refused while it has active children); its pending work is
    /// cancelled.
    pub async fn archive_environment(&self, name: &str) -> Result<Environment, Error> {
        self.set_state(name, EnvironmentState::Archived).await
    }

    /// The environment with this name that is not archived.
    pub(crate) async fn environment_id(&self, name: &str) -> Result<Environment, Error> {
        self.active_environment(name)
            .await?
            .ok_or_else(|| OrchestrationError::EnvironmentNotFound(name.to_owned()).into())
    }

    /// The environment with this name that is not archived, if any.
    async fn active_environment(&self, name: &str) -> Result<Option<Environment>, Error> {
        let wanted = environment_name(name)?;
        Ok(self
            .environments()
            .await?
            .into_iter()
            .find(|e| e.name == wanted && e.state != EnvironmentState::Archived))
    }

    /// Sends a project message whose answer is one environment.
    async fn environment_request(
        &self,
        make: impl FnOnce(ReplyTo) -> ProjectMsg,
    ) -> Result<Environment, Error> {
        match self.request(|reply| Envelope::Project(make(reply))).await? {
            Reply::Environment(r) => Ok(r?),
            other => Err(unexpected(other)),
        }
    }
}

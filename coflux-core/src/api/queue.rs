//! [`Project::queue`]: what waits in an environment's queue, and why.

use crate::model::QueuedExecution;
use crate::orchestration::messages::{Envelope, EnvironmentMsg, Reply};

use super::error::Error;
use super::project::Project;

impl Project {
    /// The executions waiting in `environment`'s queue, oldest first (at most `limit`), each
    /// with why it waits, and how many wait in all.
    pub async fn queue(
        &self,
        environment: &str,
        limit: usize,
    ) -> Result<(Vec<QueuedExecution>, usize), Error> {
        let env = self.environment_id(environment).await?;
        let reply = self
            .request(|reply| Envelope::Environment(env.id, EnvironmentMsg::Queue { limit, reply }))
            .await?;
        match reply {
            Reply::Queue(waiting, total) => Ok((waiting, total)),
            other => Err(Error::Unavailable(format!("unexpected reply {other:?}"))),
        }
    }
}

//! The router as its actor hosts see it ([`Link`]).

use std::sync::Arc;

use super::super::super::environment::EnvironmentCore;
use super::super::super::messages::{Envelope, Outbox, ReplyTo};
use super::super::super::project::ProjectCore;
use super::super::link::Link;
use super::Router;
use crate::model::{EnvironmentId, RunId};
use crate::store::{RunSnapshot, StoreError, Write};

impl Link for Router {
    fn project(&self) -> &str {
        Router::project(self)
    }
    fn deliver(self: &Arc<Self>, envelope: Envelope) {
        Router::deliver(self, envelope);
    }
    fn deliver_all(self: &Arc<Self>, envelopes: Vec<Envelope>) {
        Router::deliver_all(self, envelopes);
    }
    fn queue_commit(self: &Arc<Self>, writes: Vec<Write>, messages: Vec<Envelope>) {
        Router::queue_commit(self, writes, messages);
    }
    fn fail_replies(&self, replies: &[ReplyTo]) {
        Router::fail_replies(self, replies);
    }
    fn finish_retire(&self, id: RunId) -> bool {
        Router::finish_retire(self, id)
    }
    fn set_scheduled(&self, scheduled: bool) {
        Router::set_scheduled(self, scheduled);
    }
    fn load_run(&self, id: RunId) -> Result<Option<RunSnapshot>, StoreError> {
        Router::load_run(self, id)
    }
    fn rebuild_environment(
        self: &Arc<Self>,
        id: EnvironmentId,
        out: &mut Outbox,
    ) -> EnvironmentCore {
        Router::rebuild_environment(self, id, out)
    }
    fn rebuild_project(
        &self,
        key_retention_ms: crate::model::Millis,
        out: &mut Outbox,
    ) -> Result<ProjectCore, StoreError> {
        Router::rebuild_project(self, key_retention_ms, out)
    }
}

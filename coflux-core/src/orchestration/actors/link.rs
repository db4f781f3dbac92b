//! [`Link`]: what an actor host asks of its project's router. The hosts are generic over it,
//! so they do not name the router, which creates them (the router implements it).

use std::sync::Arc;

use crate::model::RunId;
use crate::store::{RunSnapshot, StoreError, Write};

use super::super::environment::EnvironmentCore;
use super::super::messages::{Envelope, Outbox, ReplyTo};
use super::super::project::ProjectCore;

/// The router as seen from an actor host.
pub trait Link: Send + Sync + 'static {
    /// The project's name.
    fn project(&self) -> &str;
    /// Delivers one envelope now.
    fn deliver(self: &Arc<Self>, envelope: Envelope);
    /// Delivers several envelopes in order.
    fn deliver_all(self: &Arc<Self>, envelopes: Vec<Envelope>);
    /// Queues a batch: `messages` are delivered once `writes` are committed.
    fn queue_commit(self: &Arc<Self>, writes: Vec<Write>, messages: Vec<Envelope>);
    /// Fails the callers waiting for `replies`.
    fn fail_replies(&self, replies: &[ReplyTo]);
    /// Whether a retiring run may stop (see the router's `finish_retire`).
    fn finish_retire(&self, id: RunId) -> bool;
    /// Records whether the project has cron schedules.
    fn set_scheduled(&self, scheduled: bool);
    /// Reads a run as committed.
    fn load_run(&self, id: RunId) -> Result<Option<RunSnapshot>, StoreError>;
    /// Rebuilds an environment's state after its actor panicked.
    fn rebuild_environment(
        self: &Arc<Self>,
        id: crate::model::EnvironmentId,
        out: &mut Outbox,
    ) -> EnvironmentCore;
    /// Rebuilds the project's state from what is committed, after its actor panicked.
    fn rebuild_project(
        &self,
        key_retention_ms: crate::model::Millis,
        out: &mut Outbox,
    ) -> Result<ProjectCore, StoreError>;
}

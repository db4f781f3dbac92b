//! The registry of connected workers: remembered so a re-created environment actor learns
//! about them again, and used to route commands to them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use super::super::super::messages::{Envelope, EnvironmentMsg, WorkerCommand};
use super::{Router, lock};
use crate::model::{EnvironmentId, Requires, TargetRef, WorkerId};

/// A worker connected to an environment, remembered so a re-created environment actor learns
/// about it again.
#[derive(Debug, Clone)]
pub struct WorkerRegistration {
    /// The environment.
    pub environment: EnvironmentId,
    /// The targets it hosts.
    pub targets: BTreeSet<TargetRef>,
    /// How many executions it runs at once.
    pub capacity: usize,
    /// Its tags.
    pub provides: Requires,
    /// Tags an execution's `requires` must include to run on it (empty: any).
    pub accepts: Requires,
    /// Where its commands go.
    pub commands: mpsc::UnboundedSender<WorkerCommand>,
}

impl Router {
    /// A fresh worker id.
    pub fn next_worker_id(&self) -> WorkerId {
        WorkerId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Connects a worker to its environment.
    pub fn connect_worker(self: &Arc<Self>, worker: WorkerId, registration: WorkerRegistration) {
        let msg = connect_msg(worker, &registration);
        let environment = registration.environment;
        lock(&self.workers).insert(worker, registration);
        self.deliver(Envelope::Environment(environment, msg));
    }

    /// Connects a worker under an id it had before (in an earlier process, or on another
    /// node); `false`, connecting nothing, if a worker with that id is connected here.
    pub fn reconnect_worker(
        self: &Arc<Self>,
        worker: WorkerId,
        registration: WorkerRegistration,
    ) -> bool {
        let msg = connect_msg(worker, &registration);
        let environment = registration.environment;
        {
            let mut workers = lock(&self.workers);
            if workers.contains_key(&worker) {
                return false;
            }
            workers.insert(worker, registration);
        }
        self.deliver(Envelope::Environment(environment, msg));
        true
    }

    /// The targets the connected workers of `environment` host.
    pub fn hosted_targets(&self, environment: EnvironmentId) -> BTreeSet<TargetRef> {
        lock(&self.workers)
            .values()
            .filter(|r| r.environment == environment)
            .flat_map(|r| r.targets.iter().cloned())
            .collect()
    }

    /// The targets the connected workers host, by environment.
    pub fn hosted_by_environment(&self) -> BTreeMap<EnvironmentId, BTreeSet<TargetRef>> {
        let mut hosted: BTreeMap<EnvironmentId, BTreeSet<TargetRef>> = BTreeMap::new();
        for r in lock(&self.workers).values() {
            hosted
                .entry(r.environment)
                .or_default()
                .extend(r.targets.iter().cloned());
        }
        hosted
    }

    /// Disconnects a worker: its executions are abandoned.
    pub fn disconnect_worker(self: &Arc<Self>, worker: WorkerId) {
        let registration = lock(&self.workers).remove(&worker);
        if let Some(reg) = registration {
            self.deliver(Envelope::Environment(
                reg.environment,
                EnvironmentMsg::Disconnect { worker },
            ));
        }
    }

    /// Marks a worker as reachable or not (unreachable workers get no new executions).
    pub fn set_worker_available(self: &Arc<Self>, worker: WorkerId, available: bool) {
        let environment = lock(&self.workers).get(&worker).map(|r| r.environment);
        if let Some(environment) = environment {
            self.deliver(Envelope::Environment(
                environment,
                EnvironmentMsg::SetAvailable { worker, available },
            ));
        }
    }

    /// Marks an execution of a worker as waiting for others or running again.
    pub fn set_execution_waiting(
        self: &Arc<Self>,
        worker: WorkerId,
        execution: crate::model::ExecutionId,
        waiting: bool,
    ) {
        let environment = lock(&self.workers).get(&worker).map(|r| r.environment);
        if let Some(environment) = environment {
            self.deliver(Envelope::Environment(
                environment,
                EnvironmentMsg::SetWaiting {
                    worker,
                    execution,
                    waiting,
                },
            ));
        }
    }

    pub(super) fn registrations(
        &self,
        environment: EnvironmentId,
    ) -> Vec<(WorkerId, WorkerRegistration)> {
        lock(&self.workers)
            .iter()
            .filter(|(_, r)| r.environment == environment)
            .map(|(w, r)| (*w, r.clone()))
            .collect()
    }
}

pub(super) fn connect_msg(worker: WorkerId, reg: &WorkerRegistration) -> EnvironmentMsg {
    EnvironmentMsg::Connect {
        worker,
        targets: reg.targets.clone(),
        capacity: reg.capacity,
        provides: reg.provides.clone(),
        accepts: reg.accepts.clone(),
    }
}

//! Re-creation (supervision): actors are started on demand, and one that died (its handler
//! panicked) is rebuilt from the database and what the workers and the project know.

use std::sync::Arc;

use actix::{Actor, Addr};

use super::super::super::environment::EnvironmentCore;
use super::super::super::messages::{
    Envelope, EnvironmentMsg, Outbox, ProjectMsg, ReloadTarget, RunMsg,
};
use super::super::super::project::ProjectCore;
use super::super::super::run::RunCore;
use super::super::hosts::{Deliver, Reload};
use super::workers::connect_msg;
use super::{EnvironmentActor, Router, RunActor, lock};
use crate::model::{EnvironmentId, EnvironmentState, RunId, now_millis};
use crate::store::{ProjectStore, StoreError};

impl Router {
    pub(super) fn environment(self: &Arc<Self>, id: EnvironmentId) -> Addr<EnvironmentActor> {
        if let Some(addr) = lock(&self.environments).get(&id).filter(|a| a.connected()) {
            return addr.clone();
        }
        let dead = lock(&self.environments).contains_key(&id);
        let mut initial = Outbox::default();
        let core = if dead {
            tracing::error!(project = %self.project, environment = %id, "environment actor died; re-creating it");
            self.rebuild_environment(id, &mut initial)
        } else {
            let mut core = EnvironmentCore::new(id);
            for (worker, reg) in self.registrations(id) {
                core.handle(connect_msg(worker, &reg), now_millis(), &mut initial);
            }
            core
        };
        let mut environments = lock(&self.environments);
        if let Some(addr) = environments.get(&id).filter(|a| a.connected()) {
            return addr.clone();
        }
        let router = Arc::clone(self);
        let addr = EnvironmentActor::start_in_arbiter(&self.arbiter, move |_| {
            EnvironmentActor::new(core, router, initial)
        });
        environments.insert(id, addr.clone());
        addr
    }

    /// Supervision: rebuilds an environment's state after its actor panicked, from what the
    /// workers, the project and the database know. It starts paused until the project
    /// announces its actual state; its registered workers are connected again; the executions
    /// queued in it are queued again; those assigned to a worker still connected stay assigned,
    /// the others are abandoned.
    pub fn rebuild_environment(
        self: &Arc<Self>,
        id: EnvironmentId,
        out: &mut Outbox,
    ) -> EnvironmentCore {
        let now = now_millis();
        let mut core = EnvironmentCore::new(id);
        core.handle(EnvironmentMsg::SetState(EnvironmentState::Paused), now, out);
        let registrations = self.registrations(id);
        for (worker, reg) in &registrations {
            core.handle(connect_msg(*worker, reg), now, out);
        }
        out.send(Envelope::Project(ProjectMsg::Announce { environment: id }));
        let snapshot = self.read(|reader| reader.load());
        match snapshot {
            Ok(snapshot) => {
                for run in &snapshot.active_runs {
                    for (execution, worker) in RunCore::assigned_executions(run, id) {
                        if registrations.iter().any(|(w, _)| *w == worker) {
                            core.restore_assignment(execution, worker);
                        } else {
                            out.send(Envelope::Run(
                                execution.run(),
                                RunMsg::Abandon {
                                    execution,
                                    requeue: false,
                                },
                            ));
                        }
                    }
                    for ticket in RunCore::queued_tickets(run, id) {
                        core.handle(EnvironmentMsg::Enqueue(ticket), now, out);
                    }
                }
            }
            Err(e) => {
                tracing::error!(project = %self.project, error = %e, "could not reload the environment's executions")
            }
        }
        core
    }

    /// Supervision: rebuilds the project's state after its actor panicked, from what is
    /// committed (everything the actor sent before it asked to be reloaded). The outbox tells
    /// the environments their states and limits again and re-arms the schedules' timers.
    pub fn rebuild_project(
        &self,
        key_retention_ms: crate::model::Millis,
        out: &mut Outbox,
    ) -> Result<ProjectCore, StoreError> {
        let snapshot = self.read(|reader| reader.load())?;
        Ok(ProjectCore::reload(&snapshot, key_retention_ms, out))
    }

    /// Reads a run as committed (for supervision and on-demand loading).
    pub fn load_run(&self, id: RunId) -> Result<Option<crate::store::RunSnapshot>, StoreError> {
        self.read(|reader| reader.load_run(id))
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn ProjectStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match lock(&self.reader).as_mut() {
            Some(reader) => f(reader.as_mut()),
            None => Err(StoreError::WriterStopped),
        }
    }

    /// After a panic, an actor asks to be reloaded once the writer has committed everything it
    /// sent before (this arrives through the writer).
    pub(super) fn reload(&self, target: ReloadTarget) {
        match target {
            ReloadTarget::Run(id) => {
                if let Some((addr, _)) = lock(&self.runs).get(&id) {
                    addr.do_send(Reload);
                }
            }
            ReloadTarget::Environment(id) => {
                if let Some(addr) = lock(&self.environments).get(&id) {
                    addr.do_send(Reload);
                }
            }
            ReloadTarget::Project => {
                if let Some(addr) = lock(&self.project_actor).as_ref() {
                    addr.do_send(Reload);
                }
            }
        }
    }

    pub(super) fn route_run(self: &Arc<Self>, id: RunId, msg: RunMsg) {
        // Sent after the lock is released (sending wakes the arbiter's thread).
        let running = lock(&self.runs)
            .get_mut(&id)
            .filter(|(a, _)| a.connected())
            .map(|(addr, retiring)| {
                *retiring = false;
                addr.clone()
            });
        if let Some(addr) = running {
            return addr.do_send(Deliver(msg));
        }
        let Some(msg) = self.hold_if_deleting(id, msg) else {
            return;
        };
        let now = now_millis();
        let mut initial = Outbox::default();
        let core = if matches!(msg, RunMsg::Create { .. }) {
            Some(RunCore::new(id))
        } else {
            // Not in memory: a run that finished before this process started, or whose actor
            // died (supervision re-creates it from the database).
            let snapshot = self.load_run(id);
            match snapshot {
                Ok(Some(snapshot)) => Some(RunCore::restore(snapshot, now, &mut initial)),
                Ok(None) => None,
                Err(e) => {
                    tracing::error!(project = %self.project, run = %id, error = %e, "could not load run");
                    None
                }
            }
        };
        let Some(core) = core else {
            // Unknown run: answer without keeping an actor for it.
            let mut out = Outbox::default();
            RunCore::new(id).handle(msg, now, &mut out);
            return self.commit(out.writes, out.messages);
        };
        let mut runs = lock(&self.runs);
        if let Some((addr, retiring)) = runs.get_mut(&id).filter(|(a, _)| a.connected()) {
            *retiring = false;
            return addr.do_send(Deliver(msg));
        }
        // Marked for deletion while it was being read: held with the others.
        let Some(msg) = self.hold_if_deleting(id, msg) else {
            return;
        };
        if runs.contains_key(&id) {
            tracing::error!(project = %self.project, run = %id, "run actor died; re-created it from the database");
        }
        let router = Arc::clone(self);
        let addr = RunActor::start_in_arbiter(&self.arbiter, move |_| {
            RunActor::new(core, router, initial)
        });
        addr.do_send(Deliver(msg));
        runs.insert(id, (addr, false));
    }
}

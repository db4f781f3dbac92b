//! The project state machine: environments and their hierarchy, run submission and ids, and the
//! cache index shared by all runs.

use std::collections::{BTreeMap, HashMap};

use crate::model::{
    CronSpec, Environment, EnvironmentId, EnvironmentName, EnvironmentState, Millis, RunId,
    Schedule, StepOptions, TargetRef, Value,
};
use crate::store::{CacheOutcome, ProjectSnapshot, Write};

use super::cache::CacheIndex;
use super::error::OrchestrationError;
use super::messages::{Envelope, EnvironmentMsg, Outbox, ProjectMsg, ReplyTo, RunMsg, Timer};

mod handlers;
mod schedules;
mod submit;

pub use submit::check_idempotency_key;

use schedules::arm;

/// A project's environments, run counter and cache index.
#[derive(Debug, Default)]
pub struct ProjectCore {
    environments: BTreeMap<EnvironmentId, Environment>,
    next_run: u64,
    cache: CacheIndex,
    /// Idempotency keys of submitted runs, with when they were used.
    keys: HashMap<(EnvironmentId, String), (RunId, Millis)>,
    key_retention_ms: Millis,
    /// Per-target concurrency limits of each environment.
    limits: HashMap<EnvironmentId, BTreeMap<TargetRef, u32>>,
    /// Cron schedules, by id.
    schedules: BTreeMap<u32, ActiveSchedule>,
    /// The definitions registered by manifests, by environment and target.
    manifests: submit::Manifests,
}

/// A schedule with its parsed expression and the tick its timer is armed for.
#[derive(Debug)]
struct ActiveSchedule {
    schedule: Schedule,
    spec: CronSpec,
    next_at: Option<Millis>,
}

/// A caller id nobody waits on (runs started by schedules).
const NO_REPLY: ReplyTo = 0;

/// How late a schedule's tick may be handled and still start its run. Older ticks (the
/// orchestrator was down or stalled) are counted as missed and reported, not run.
pub const SCHEDULE_TOLERANCE_MS: Millis = 30_000;

/// How long an idempotency key is remembered by default (24 hours).
pub const DEFAULT_KEY_RETENTION_MS: Millis = 24 * 60 * 60 * 1000;

impl ProjectCore {
    /// Restores the project from a snapshot. The outbox tells every environment its state.
    pub fn restore(snapshot: &ProjectSnapshot, out: &mut Outbox) -> Self {
        Self::from_snapshot(snapshot, false, out)
    }

    /// Rebuilds a running project's state from what is committed (its actor panicked), keeping
    /// `key_retention_ms`. Unlike at start, runs keep running: their pending executions already
    /// missed their lookups and stay cache sources.
    pub fn reload(snapshot: &ProjectSnapshot, key_retention_ms: Millis, out: &mut Outbox) -> Self {
        let mut core = Self::from_snapshot(snapshot, true, out);
        core.key_retention_ms = key_retention_ms;
        core
    }

    /// How long idempotency keys are remembered.
    pub fn key_retention(&self) -> Millis {
        self.key_retention_ms
    }

    fn from_snapshot(snapshot: &ProjectSnapshot, keep_pending: bool, out: &mut Outbox) -> Self {
        let environments: BTreeMap<_, _> = snapshot
            .environments
            .iter()
            .map(|e| (e.id, e.clone()))
            .collect();
        for env in environments.values() {
            out.send(Envelope::Environment(
                env.id,
                EnvironmentMsg::SetState(env.state),
            ));
        }
        let mut limits: HashMap<EnvironmentId, BTreeMap<TargetRef, u32>> = HashMap::new();
        for (env, target, max) in &snapshot.concurrency_limits {
            limits.entry(*env).or_default().insert(target.clone(), *max);
            out.send(Envelope::Environment(
                *env,
                EnvironmentMsg::SetLimit {
                    target: target.clone(),
                    max: Some(*max),
                },
            ));
        }
        let mut schedules = BTreeMap::new();
        for schedule in &snapshot.schedules {
            match CronSpec::parse(&schedule.cron) {
                Ok(spec) => {
                    let mut active = ActiveSchedule {
                        schedule: schedule.clone(),
                        spec,
                        next_at: None,
                    };
                    arm(&mut active, out);
                    schedules.insert(schedule.id, active);
                }
                Err(e) => {
                    tracing::error!(schedule = schedule.id, error = %e, "stored schedule ignored")
                }
            }
        }
        let mut manifests = submit::Manifests::new();
        for (env, definition) in &snapshot.manifests {
            manifests
                .entry(*env)
                .or_default()
                .insert(definition.target.clone(), definition.clone());
        }
        Self {
            limits,
            schedules,
            manifests,
            environments,
            next_run: snapshot.next_run.max(1),
            // Pending first attempts are looked up again when re-queued: until their lookup
            // misses they must not be cache sources.
            cache: CacheIndex::from_entries(
                snapshot
                    .cache_entries
                    .iter()
                    .filter(|e| {
                        keep_pending
                            || e.outcome != CacheOutcome::Pending
                            || e.execution.attempt > 1
                    })
                    .cloned()
                    .collect(),
            ),
            keys: snapshot
                .idempotency_keys
                .iter()
                .map(|(env, key, run, at)| ((*env, key.clone()), (*run, *at)))
                .collect(),
            key_retention_ms: DEFAULT_KEY_RETENTION_MS,
        }
    }

    /// All environments.
    pub fn environments(&self) -> impl Iterator<Item = &Environment> {
        self.environments.values()
    }

    /// The environment with this name that is not archived.
    pub fn find(&self, name: &EnvironmentName) -> Option<&Environment> {
        self.environments
            .values()
            .find(|e| &e.name == name && e.state != EnvironmentState::Archived)
    }

    /// `env` and its ancestors, nearest first.
    pub fn lineage(&self, env: EnvironmentId) -> Vec<EnvironmentId> {
        let mut out = Vec::new();
        let mut current = Some(env);
        while let Some(id) = current {
            if out.contains(&id) {
                break;
            }
            out.push(id);
            current = self.environments.get(&id).and_then(|e| e.parent);
        }
        out
    }

    fn resolve(&self, name: &EnvironmentName) -> Result<&Environment, OrchestrationError> {
        self.find(name)
            .ok_or_else(|| OrchestrationError::EnvironmentNotFound(name.to_string()))
    }

    /// Sets how long idempotency keys are remembered.
    pub fn set_key_retention(&mut self, retention_ms: Millis) {
        self.key_retention_ms = retention_ms;
    }

    /// Whether the project has cron schedules (their timers live in its actor).
    pub fn has_schedules(&self) -> bool {
        !self.schedules.is_empty()
    }

    /// Handles one message.
    pub fn handle(&mut self, msg: ProjectMsg, now: Millis, out: &mut Outbox) {
        match msg {
            msg @ (ProjectMsg::CreateEnvironment { .. }
            | ProjectMsg::SetEnvironmentState { .. }
            | ProjectMsg::SetEnvironmentParent { .. }
            | ProjectMsg::RegisterManifests { .. }
            | ProjectMsg::ArchiveModule { .. }
            | ProjectMsg::SetConcurrencyLimit { .. }
            | ProjectMsg::ListEnvironments { .. }
            | ProjectMsg::Announce { .. }) => self.on_environments(msg, now, out),
            msg @ (ProjectMsg::CreateSchedule { .. }
            | ProjectMsg::DeleteSchedule { .. }
            | ProjectMsg::ScheduleTick { .. }) => self.on_schedules(msg, now, out),
            msg @ (ProjectMsg::StartRun { .. }
            | ProjectMsg::SpawnRun { .. }
            | ProjectMsg::RerunStep { .. }
            | ProjectMsg::ForgetRuns { .. }) => self.on_runs(msg, now, out),
            msg @ (ProjectMsg::CacheLookup { .. } | ProjectMsg::CacheUpdate { .. }) => {
                self.on_cache(msg, now, out)
            }
        }
    }

    fn create_environment(
        &mut self,
        name: EnvironmentName,
        parent: Option<EnvironmentName>,
        now: Millis,
        out: &mut Outbox,
    ) -> Result<Environment, OrchestrationError> {
        if self.find(&name).is_some() {
            return Err(OrchestrationError::EnvironmentExists(name.to_string()));
        }
        let parent = match parent {
            Some(p) => Some(self.resolve(&p)?.id),
            None => None,
        };
        let id = EnvironmentId(
            self.environments
                .keys()
                .next_back()
                .map_or(1, |id| id.0 + 1),
        );
        let env = Environment {
            id,
            name,
            parent,
            state: EnvironmentState::Active,
            created_at: now,
        };
        self.environments.insert(id, env.clone());
        out.write(Write::CreateEnvironment(env.clone()));
        out.send(Envelope::Environment(
            id,
            EnvironmentMsg::SetState(env.state),
        ));
        Ok(env)
    }

    /// Re-bases `name` on `parent` (or on none); refused if `parent` is `name` or one of its
    /// descendants.
    fn set_parent(
        &mut self,
        name: &EnvironmentName,
        parent: Option<&EnvironmentName>,
        out: &mut Outbox,
    ) -> Result<Environment, OrchestrationError> {
        let id = self.resolve(name)?.id;
        let parent = match parent {
            Some(p) => {
                let parent = self.resolve(p)?.id;
                if self.lineage(parent).contains(&id) {
                    return Err(OrchestrationError::EnvironmentCycle {
                        environment: name.to_string(),
                        parent: p.to_string(),
                    });
                }
                Some(parent)
            }
            None => None,
        };
        let Some(env) = self.environments.get_mut(&id) else {
            return Err(OrchestrationError::EnvironmentNotFound(name.to_string()));
        };
        if env.parent != parent {
            env.parent = parent;
            out.write(Write::SetEnvironmentParent { id, parent });
        }
        Ok(env.clone())
    }

    fn set_state(
        &mut self,
        name: &EnvironmentName,
        state: EnvironmentState,
        out: &mut Outbox,
    ) -> Result<Environment, OrchestrationError> {
        let id = self.resolve(name)?.id;
        if state == EnvironmentState::Archived {
            let has_children = self
                .environments
                .values()
                .any(|e| e.parent == Some(id) && e.state != EnvironmentState::Archived);
            if has_children {
                return Err(OrchestrationError::EnvironmentHasChildren(name.to_string()));
            }
        }
        let Some(env) = self.environments.get_mut(&id) else {
            return Err(OrchestrationError::EnvironmentNotFound(name.to_string()));
        };
        if env.state != state {
            env.state = state;
            out.write(Write::SetEnvironmentState { id, state });
            out.send(Envelope::Environment(id, EnvironmentMsg::SetState(state)));
        }
        Ok(env.clone())
    }
}

#[cfg(test)]
mod submit_tests;

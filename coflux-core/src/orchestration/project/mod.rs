//! The project state machine: environments and their hierarchy, run submission and ids, and the
//! cache index shared by all runs.

use std::collections::{BTreeMap, HashMap};

use crate::model::{
    CronSpec, Environment, EnvironmentId, EnvironmentName, EnvironmentState, Millis, RunId,
    Schedule, StepOptions, TargetRef, Value,
};
use crate::store::{CacheEntry, CacheOutcome, ProjectSnapshot, Write};

use super::cache::CacheIndex;
use super::error::OrchestrationError;
use super::messages::{
    Envelope, EnvironmentMsg, Outbox, ProjectMsg, Reply, ReplyTo, RunMsg, Timer,
};

mod schedules;

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
        Self {
            limits,
            schedules,
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
            ProjectMsg::CreateEnvironment {
                name,
                parent,
                reply,
            } => {
                let result = self.create_environment(name, parent, now, out);
                out.reply(reply, Reply::Environment(result));
            }
            ProjectMsg::SetEnvironmentState { name, state, reply } => {
                let result = self.set_state(&name, state, out);
                out.reply(reply, Reply::Environment(result));
            }
            ProjectMsg::SetEnvironmentParent {
                name,
                parent,
                reply,
            } => {
                let result = self.set_parent(&name, parent.as_ref(), out);
                out.reply(reply, Reply::Environment(result));
            }
            ProjectMsg::RegisterManifests {
                environment,
                definitions,
                reply,
            } => {
                let result = self.resolve(&environment).cloned();
                if let Ok(env) = &result {
                    out.write(Write::PutManifests {
                        environment: env.id,
                        definitions,
                        at: now,
                    });
                }
                out.reply(reply, Reply::Environment(result));
            }
            ProjectMsg::ArchiveModule {
                environment,
                module,
                reply,
            } => {
                let result = self.resolve(&environment).cloned();
                if let Ok(env) = &result {
                    out.write(Write::ArchiveModule {
                        environment: env.id,
                        module,
                    });
                }
                out.reply(reply, Reply::Environment(result));
            }
            ProjectMsg::SetConcurrencyLimit {
                environment,
                target,
                max,
                reply,
            } => {
                let result = self.resolve(&environment).cloned();
                if let Ok(env) = &result {
                    let max = max.filter(|m| *m > 0);
                    let limits = self.limits.entry(env.id).or_default();
                    match max {
                        Some(m) => limits.insert(target.clone(), m),
                        None => limits.remove(&target),
                    };
                    out.write(Write::PutConcurrencyLimit {
                        environment: env.id,
                        target: target.clone(),
                        max,
                    });
                    out.send(Envelope::Environment(
                        env.id,
                        EnvironmentMsg::SetLimit { target, max },
                    ));
                }
                out.reply(reply, Reply::Environment(result));
            }
            ProjectMsg::CreateSchedule {
                environment,
                target,
                cron,
                arguments,
                options,
                reply,
            } => {
                let result =
                    self.create_schedule(environment, target, &cron, arguments, options, now, out);
                out.reply(reply, Reply::Schedule(result));
            }
            ProjectMsg::DeleteSchedule { id, reply } => {
                let result = match self.schedules.remove(&id) {
                    Some(active) => {
                        out.write(Write::DeleteSchedule { id });
                        Ok(Box::new(active.schedule))
                    }
                    None => Err(OrchestrationError::ScheduleNotFound(id.to_string())),
                };
                out.reply(reply, Reply::Schedule(result));
            }
            ProjectMsg::ScheduleTick { id, at } => self.tick(id, at, now, out),
            ProjectMsg::ListEnvironments { reply } => {
                out.reply(
                    reply,
                    Reply::Environments(self.environments.values().cloned().collect()),
                );
            }
            ProjectMsg::StartRun {
                environment,
                target,
                arguments,
                options,
                idempotency_key,
                reply,
            } => match self.resolve(&environment).map(|e| e.id) {
                Ok(env) => {
                    if let Some(key) = &idempotency_key {
                        let entry = self.keys.get(&(env, key.clone()));
                        if let Some((run, at)) = entry
                            && now - at < self.key_retention_ms
                        {
                            // Through the run, so the answer follows the run's own commit.
                            return out.send(Envelope::Run(*run, RunMsg::Started { reply }));
                        }
                        self.keys
                            .retain(|_, (_, at)| now - *at < self.key_retention_ms);
                    }
                    let run = RunId(self.next_run);
                    self.next_run += 1;
                    if let Some(key) = &idempotency_key {
                        self.keys.insert((env, key.clone()), (run, now));
                    }
                    let msg = RunMsg::Create {
                        environment: env,
                        target,
                        arguments,
                        options,
                        idempotency_key,
                        spawned_by: None,
                        call: None,
                        reply,
                        wait: None,
                    };
                    out.send(Envelope::Run(run, msg));
                }
                Err(e) => out.reply(reply, Reply::RunStarted(Err(e))),
            },
            ProjectMsg::SpawnRun {
                parent,
                call,
                environment,
                target,
                arguments,
                options,
                reply,
                wait,
            } => {
                let run = RunId(self.next_run);
                self.next_run += 1;
                let msg = RunMsg::Create {
                    environment,
                    target,
                    arguments,
                    options,
                    idempotency_key: None,
                    spawned_by: Some(parent),
                    call,
                    reply,
                    wait,
                };
                out.send(Envelope::Run(run, msg));
            }
            ProjectMsg::RerunStep {
                step,
                environment,
                reply,
            } => {
                let target = match environment {
                    Some(name) => match self.resolve(&name) {
                        Ok(env) => Some(env.id),
                        Err(e) => return out.reply(reply, Reply::Rerun(Err(e))),
                    },
                    None => None,
                };
                let lineage = target.map(|t| self.lineage(t)).unwrap_or_default();
                out.send(Envelope::Run(
                    step.run,
                    RunMsg::Rerun {
                        step,
                        environment: target,
                        lineage,
                        reply,
                    },
                ));
            }
            ProjectMsg::CacheLookup(mut ticket) => {
                let Some(check) = ticket.cache.take() else {
                    let environment = ticket.environment;
                    return out.send(Envelope::Environment(
                        environment,
                        EnvironmentMsg::CacheMissed {
                            ticket,
                            key: String::new(),
                        },
                    ));
                };
                let lineage = self.lineage(ticket.environment);
                match self.cache.lookup(
                    &check.key,
                    &lineage,
                    ticket.execution.step,
                    check.max_age_ms,
                    now,
                ) {
                    Some(source) => out.send(Envelope::Run(
                        ticket.execution.run(),
                        RunMsg::CacheHit {
                            execution: ticket.execution,
                            source,
                        },
                    )),
                    None => {
                        self.cache.update(CacheEntry {
                            key: check.key.clone(),
                            execution: ticket.execution,
                            environment: ticket.environment,
                            created_at: now,
                            outcome: CacheOutcome::Pending,
                        });
                        let environment = ticket.environment;
                        out.send(Envelope::Environment(
                            environment,
                            EnvironmentMsg::CacheMissed {
                                ticket,
                                key: check.key,
                            },
                        ));
                    }
                }
            }
            ProjectMsg::Announce { environment } => {
                if let Some(env) = self.environments.get(&environment) {
                    out.send(Envelope::Environment(
                        environment,
                        EnvironmentMsg::SetState(env.state),
                    ));
                }
                for (target, max) in self.limits.get(&environment).into_iter().flatten() {
                    out.send(Envelope::Environment(
                        environment,
                        EnvironmentMsg::SetLimit {
                            target: target.clone(),
                            max: Some(*max),
                        },
                    ));
                }
            }
            ProjectMsg::ForgetRuns { runs, reply } => {
                let runs: std::collections::HashSet<RunId> = runs.into_iter().collect();
                self.cache.forget_runs(&runs);
                self.keys.retain(|_, (run, _)| !runs.contains(run));
                out.reply(reply, Reply::Recorded(Ok(())));
            }
            ProjectMsg::CacheUpdate {
                key,
                execution,
                environment,
                created_at,
                outcome,
            } => {
                self.cache.update(CacheEntry {
                    key,
                    execution,
                    environment,
                    created_at,
                    outcome,
                });
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

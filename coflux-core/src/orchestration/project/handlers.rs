//! [`ProjectCore::handle`]'s message families, one function each.

use super::ProjectCore;
use crate::model::{Millis, RunId};
use crate::orchestration::error::OrchestrationError;
use crate::orchestration::messages::{Envelope, EnvironmentMsg, Outbox, ProjectMsg, Reply, RunMsg};
use crate::store::{CacheEntry, CacheOutcome, Write};

impl ProjectCore {
    /// Environments: their creation, state, hierarchy, manifests and limits.
    pub(super) fn on_environments(&mut self, msg: ProjectMsg, now: Millis, out: &mut Outbox) {
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
                    self.register(env.id, &definitions);
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
                    self.archive(env.id, &module);
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
            ProjectMsg::ListEnvironments { reply } => {
                out.reply(
                    reply,
                    Reply::Environments(self.environments.values().cloned().collect()),
                );
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
            _ => unreachable!("routed by handle"),
        }
    }

    /// Cron schedules: creation, deletion and ticks.
    pub(super) fn on_schedules(&mut self, msg: ProjectMsg, now: Millis, out: &mut Outbox) {
        match msg {
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
            _ => unreachable!("routed by handle"),
        }
    }

    /// Runs: submission (with idempotency keys), spawning, re-runs and forgetting.
    pub(super) fn on_runs(&mut self, msg: ProjectMsg, now: Millis, out: &mut Outbox) {
        match msg {
            msg @ ProjectMsg::StartRun { .. } => self.submit(msg, now, out),
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
            ProjectMsg::ForgetRuns { runs, reply } => {
                let runs: std::collections::HashSet<RunId> = runs.into_iter().collect();
                self.cache.forget_runs(&runs);
                self.keys.retain(|_, (run, _)| !runs.contains(run));
                out.reply(reply, Reply::Recorded(Ok(())));
            }
            _ => unreachable!("routed by handle"),
        }
    }

    /// The cache index: lookups and updates.
    pub(super) fn on_cache(&mut self, msg: ProjectMsg, now: Millis, out: &mut Outbox) {
        match msg {
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
            _ => unreachable!("routed by handle"),
        }
    }
}

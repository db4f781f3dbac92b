//! Cron schedules: creating them, and their ticks (a run on time, missed ticks counted).
//!
//! Neither creating a schedule nor its ticks check that the workflow is registered (see
//! [`crate::orchestration::registration`]): a schedule outlives deployments, and a tick's run
//! waits for a worker like a submission with `allow_unregistered`.

use super::*;

impl ProjectCore {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn create_schedule(
        &mut self,
        environment: EnvironmentName,
        target: TargetRef,
        cron: &str,
        arguments: Vec<Value>,
        options: StepOptions,
        now: Millis,
        out: &mut Outbox,
    ) -> Result<Box<Schedule>, OrchestrationError> {
        let env = self.resolve(&environment)?.id;
        let spec = CronSpec::parse(cron).map_err(|e| OrchestrationError::Invalid(e.to_string()))?;
        let id = self.schedules.keys().next_back().map_or(1, |last| last + 1);
        let schedule = Schedule {
            id,
            environment: env,
            target,
            cron: spec.as_str().to_string(),
            arguments,
            options,
            created_at: now,
            last_tick: now,
            missed: 0,
        };
        out.write(Write::PutSchedule(Box::new(schedule.clone())));
        let mut active = ActiveSchedule {
            schedule: schedule.clone(),
            spec,
            next_at: None,
        };
        arm(&mut active, out);
        self.schedules.insert(id, active);
        Ok(Box::new(schedule))
    }

    /// A schedule's timer fired for tick `at`: the latest tick due starts a run if it is on
    /// time; earlier ticks due (the orchestrator was down) are counted as missed.
    pub(super) fn tick(&mut self, id: u32, at: Millis, now: Millis, out: &mut Outbox) {
        let Some(active) = self.schedules.get_mut(&id) else {
            return; // removed
        };
        if active.next_at != Some(at) {
            return; // a stale timer
        }
        let mut due = 0u64;
        let mut latest = at;
        let mut next = Some(at);
        while let Some(t) = next.filter(|t| *t <= now) {
            due += 1;
            latest = t;
            next = active.spec.next_after(t);
            if due >= 1_000_000 {
                // Stop counting: the rest are missed too (the last tick accounted for is now).
                latest = now;
                break;
            }
        }
        if due == 0 {
            return arm(active, out);
        }
        let on_time = now - latest <= SCHEDULE_TOLERANCE_MS;
        let missed = due - u64::from(on_time);
        if missed > 0 {
            tracing::warn!(
                schedule = id,
                missed,
                "schedule ticks were missed while the orchestrator was down; they are not run"
            );
        }
        active.schedule.missed += missed;
        active.schedule.last_tick = latest;
        out.write(Write::ScheduleTicked {
            id,
            last_tick: latest,
            missed: active.schedule.missed,
        });
        let start = on_time.then(|| active.schedule.clone());
        arm(active, out);
        if let Some(schedule) = start {
            let archived = self
                .environments
                .get(&schedule.environment)
                .is_none_or(|e| e.state == EnvironmentState::Archived);
            if !archived {
                let run = RunId(self.next_run);
                self.next_run += 1;
                out.send(Envelope::Run(
                    run,
                    RunMsg::Create {
                        environment: schedule.environment,
                        target: schedule.target,
                        arguments: schedule.arguments,
                        options: schedule.options,
                        idempotency_key: None,
                        spawned_by: None,
                        call: None,
                        reply: NO_REPLY,
                        wait: None,
                    },
                ));
            }
        }
    }
}

/// Arms a schedule's timer for its next tick after the last one accounted for.
pub(super) fn arm(active: &mut ActiveSchedule, out: &mut Outbox) {
    active.next_at = active.spec.next_after(active.schedule.last_tick);
    if let Some(at) = active.next_at {
        out.timers.push(Timer {
            at,
            envelope: Envelope::Project(ProjectMsg::ScheduleTick {
                id: active.schedule.id,
                at,
            }),
        });
    }
}

//! Cron schedules of a project: workflows started as new runs at every tick.

use serde::Serialize;

use crate::model::{CronSpec, Millis, Schedule, StepOptions, TargetRef, Value};
use crate::orchestration::messages::{Envelope, ProjectMsg, Reply};

use super::error::Error;
use super::project::{Project, environment_name, unexpected};

/// A schedule as shown to users.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleView {
    /// Its id.
    pub id: u32,
    /// The environment its runs start in.
    pub environment: String,
    /// The workflow.
    pub target: TargetRef,
    /// The cron expression (UTC).
    pub cron: String,
    /// The arguments of every run.
    pub arguments: Vec<Value>,
    /// When it was created.
    pub created_at: Millis,
    /// The last tick accounted for.
    pub last_tick: Millis,
    /// The next tick.
    pub next_at: Option<Millis>,
    /// Ticks that passed while the orchestrator was down and were not run.
    pub missed: u64,
}

impl Project {
    /// Starts `target` as a new run in `environment` at every tick of `cron` (five fields, or
    /// six with seconds first; UTC). Ticks that pass while the orchestrator is down are not
    /// run (except the latest, if it is less than 30 s late) and are counted as missed.
    pub async fn create_schedule(
        &self,
        environment: &str,
        target: TargetRef,
        cron: &str,
        arguments: Vec<Value>,
        options: StepOptions,
    ) -> Result<ScheduleView, Error> {
        if target.module.is_empty() || target.name.is_empty() {
            return Err(Error::Invalid("a target needs a module and a name".into()));
        }
        CronSpec::parse(cron).map_err(|e| Error::Invalid(e.to_string()))?;
        let env = environment_name(environment)?;
        let cron = cron.to_string();
        let schedule = match self
            .request(|reply| {
                Envelope::Project(ProjectMsg::CreateSchedule {
                    environment: env,
                    target,
                    cron,
                    arguments,
                    options,
                    reply,
                })
            })
            .await?
        {
            Reply::Schedule(r) => r?,
            other => return Err(unexpected(other)),
        };
        Ok(view(*schedule, environment.to_string()))
    }

    /// Removes a schedule (runs it started are not affected).
    pub async fn delete_schedule(&self, id: u32) -> Result<(), Error> {
        match self
            .request(|reply| Envelope::Project(ProjectMsg::DeleteSchedule { id, reply }))
            .await?
        {
            Reply::Schedule(r) => r.map(|_| ()).map_err(Error::from),
            other => Err(unexpected(other)),
        }
    }

    /// The project's schedules, by id.
    pub async fn schedules(&self) -> Result<Vec<ScheduleView>, Error> {
        let environments = self.environments().await?;
        let location = self.handle().store.clone();
        let schedules = actix_rt::task::spawn_blocking(move || location.open_reader()?.schedules())
            .await
            .map_err(|_| Error::Unavailable("schedules task failed".into()))??;
        Ok(schedules
            .into_iter()
            .map(|s| {
                let name = environments
                    .iter()
                    .find(|e| e.id == s.environment)
                    .map(|e| e.name.to_string())
                    .unwrap_or_default();
                view(s, name)
            })
            .collect())
    }
}

fn view(schedule: Schedule, environment: String) -> ScheduleView {
    let next_at = CronSpec::parse(&schedule.cron)
        .ok()
        .and_then(|spec| spec.next_after(schedule.last_tick));
    ScheduleView {
        id: schedule.id,
        environment,
        target: schedule.target,
        cron: schedule.cron,
        arguments: schedule.arguments,
        created_at: schedule.created_at,
        last_tick: schedule.last_tick,
        next_at,
        missed: schedule.missed,
    }
}

//! Cron schedules: a registered workflow started as a new run at every tick of a cron
//! expression (UTC, minute or second granularity).

use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Serialize};

use super::{EnvironmentId, Millis, StepOptions, TargetRef, Value};

/// A validated cron expression: five fields (minute, hour, day of month, month, day of week),
/// or six with seconds first; `@hourly`-style nicknames; evaluated in UTC.
#[derive(Debug, Clone)]
pub struct CronSpec {
    text: String,
    cron: Cron,
}

/// Why a cron expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cron expression '{text}': {reason}")]
pub struct InvalidCron {
    /// The expression.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

impl CronSpec {
    /// Parses an expression.
    pub fn parse(text: &str) -> Result<Self, InvalidCron> {
        let invalid = |reason: String| InvalidCron {
            text: text.to_string(),
            reason,
        };
        if text.trim().is_empty() || text.len() > 200 {
            return Err(invalid("expected 5 or 6 fields".into()));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(text.trim())
            .map_err(|e| invalid(e.to_string()))?;
        let spec = Self {
            text: text.trim().to_string(),
            cron,
        };
        if spec.next_after(0).is_none() {
            return Err(invalid("it never matches".into()));
        }
        Ok(spec)
    }

    /// The expression as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first tick strictly after `at` (unix ms), on a whole second.
    pub fn next_after(&self, at: Millis) -> Option<Millis> {
        let second = at.div_euclid(1000) * 1000;
        let from = chrono::DateTime::from_timestamp_millis(second)?;
        let next = self.cron.find_next_occurrence(&from, false).ok()?;
        Some(next.timestamp_millis())
    }
}

/// A workflow started on a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Its id in the project.
    pub id: u32,
    /// The environment its runs start in.
    pub environment: EnvironmentId,
    /// The workflow.
    pub target: TargetRef,
    /// The cron expression.
    pub cron: String,
    /// The arguments of every run.
    pub arguments: Vec<Value>,
    /// The options of every run (the workflow's registered options when it was scheduled).
    pub options: StepOptions,
    /// When it was created.
    pub created_at: Millis,
    /// The last tick accounted for (run started, or counted as missed).
    pub last_tick: Millis,
    /// Ticks that passed while the orchestrator was down (not run, reported).
    pub missed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_specs_give_the_next_tick_and_refuse_nonsense() {
        let every_two = CronSpec::parse("*/2 * * * * *").unwrap();
        assert_eq!(every_two.next_after(1_000_500), Some(1_002_000));
        assert_eq!(every_two.next_after(1_002_000), Some(1_004_000));
        let hourly = CronSpec::parse("0 * * * *").unwrap();
        assert_eq!(hourly.next_after(0), Some(3_600_000));
        for bad in ["", "61 * * * *", "* * *", "every day", "0 0 31 2 *"] {
            assert!(CronSpec::parse(bad).is_err(), "{bad}");
        }
    }
}

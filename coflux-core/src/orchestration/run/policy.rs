//! When a step runs again by itself: retries after failures, and recurrence after a null
//! result.

use super::*;

/// How a step runs again by itself.
pub(super) enum FollowUp {
    /// A retry of a failure.
    Retry,
    /// The next occurrence of a recurrent step.
    Recurrence,
}

impl RunCore {
    /// Whether `execution`'s step runs again by itself after `result`, how and after how long:
    /// a retry (see [`RunCore::retry_delay`]; never for a result that already names its
    /// successor, a forced retry), else the next occurrence of a recurrent step.
    pub(super) fn follow_up(
        &self,
        execution: ExecutionId,
        result: &ExecutionResult,
    ) -> Option<(FollowUp, Millis)> {
        let retry = match result.successor() {
            Some(_) => None,
            None => self.retry_delay(execution, result),
        };
        match retry {
            Some(delay) => Some((FollowUp::Retry, delay)),
            None => self
                .recurrence_delay(execution, result)
                .map(|delay| (FollowUp::Recurrence, delay)),
        }
    }

    /// The delay before the next occurrence of a recurrent step whose execution returned null
    /// (its `delay` option; none for other results or steps).
    fn recurrence_delay(&self, execution: ExecutionId, result: &ExecutionResult) -> Option<Millis> {
        let step = self.step(execution.step)?;
        let recurs = step.record.options.recurrent
            && matches!(result, ExecutionResult::Value { value } if value.is_null());
        recurs.then(|| {
            let delay = step.record.options.delay_ms.unwrap_or(0);
            i64::try_from(delay).unwrap_or(i64::MAX / 2)
        })
    }

    /// The delay before retrying `execution` after `result`, if its policy allows a retry:
    /// consecutive failures before this one are counted, and the delay grows linearly from the
    /// policy's minimum (first retry) to its maximum (last retry); unlimited retries wait a random
    /// time between the two.
    fn retry_delay(&self, execution: ExecutionId, result: &ExecutionResult) -> Option<Millis> {
        if !result.is_retryable_failure() {
            return None;
        }
        let step = self.step(execution.step)?;
        let policy: &RetryPolicy = step.record.options.retries.as_ref()?;
        let previous = &step.attempts[..execution.attempt as usize - 1];
        let failures = previous
            .iter()
            .rev()
            .take_while(|a| a.result.as_ref().is_some_and(ExecutionResult::is_failure))
            .count() as u64;
        let (min, max) = (
            policy.backoff_min_ms,
            policy.backoff_max_ms.max(policy.backoff_min_ms),
        );
        let delay = match policy.limit {
            Some(limit) if failures >= u64::from(limit) => return None,
            Some(limit) => min.saturating_add(
                failures.saturating_mul(max - min) / u64::from(limit.saturating_sub(1).max(1)),
            ),
            None => rand::rng().random_range(min..=max),
        };
        Some(i64::try_from(delay).unwrap_or(i64::MAX / 2))
    }
}

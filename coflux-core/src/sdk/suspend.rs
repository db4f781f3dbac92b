//! Suspending the running execution: it ends as `suspended`, and a new attempt of its step runs
//! later, from the top. Calls the new attempt repeats get the children its predecessor made
//! (the k-th identical call gets the k-th such child), so children are not executed twice; other
//! code before the suspension runs again and should be idempotent.
//!
//! [`suspense`] limits how long the waits on children inside it may take (like Python's
//! `cf.suspense`): a wait that runs out suspends the execution until that child has finished,
//! instead of holding its slot.
//!
//! ```ignore
//! #[workflow]
//! async fn wait_for_file(path: String) -> Result<String, Failure> {
//!     if !std::path::Path::new(&path).exists() {
//!         suspend(Some(Duration::from_secs(5))).await?; // ends this attempt
//!     }
//!     Ok(std::fs::read_to_string(&path)?)
//! }
//! ```

use std::convert::Infallible;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::context::{Context, Suspension};
use super::error::ExecutionError;
use crate::model::{Dependencies, ExecutionId, ExecutionResult, Millis};

tokio::task_local! {
    static SUSPENSE: Duration;
}

/// Returned by [`suspend`]: propagate it with `?` to end the execution. If the suspension could
/// not be requested (outside an execution, or the link failed), the execution fails with
/// `coflux.Suspended` and the reason instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problem.as_deref().unwrap_or("the execution is suspended"))]
pub struct Suspended {
    problem: Option<String>,
}

impl Suspended {
    /// Whether the suspension was accepted (the host ends the execution as suspended).
    pub fn accepted(&self) -> bool {
        self.problem.is_none()
    }
}

/// Suspends the running execution: a new attempt of its step runs after `delay` (`None`: as
/// soon as possible). Always returns `Err`; return it (`suspend(..).await?`) so the body ends.
/// Whatever the body returns afterwards is ignored: the execution ends as suspended.
pub async fn suspend(delay: Option<Duration>) -> Result<Infallible, Suspended> {
    let at = delay.map(|d| SystemTime::now() + d);
    suspend_at(at).await
}

/// Like [`suspend`], resuming at a point in time (`None`: as soon as possible).
pub async fn suspend_at(at: Option<SystemTime>) -> Result<Infallible, Suspended> {
    let Some(context) = Context::current() else {
        return Err(Suspended {
            problem: Some("suspend() was called outside an execution".into()),
        });
    };
    let execute_after = at.map(unix_ms);
    match context.link.suspend(context.execution, execute_after).await {
        Ok(()) => {
            context.request_suspension(Suspension {
                execute_after,
                dependencies: Dependencies::default(),
            });
            Err(Suspended { problem: None })
        }
        Err(e) => Err(Suspended {
            problem: Some(format!("could not suspend: {e}")),
        }),
    }
}

/// Runs `future` with its waits on children ([`crate::sdk::Handle::result`], `.call(..)`)
/// limited to `timeout` (like Python's `with cf.suspense(timeout)`; zero: only a result at
/// hand). A wait that runs out returns [`ExecutionError::Suspended`]; propagate it with `?`:
/// the execution ends as suspended, and its step runs again (from the top, its repeated calls
/// getting the same children) once that child has finished. An inner `suspense` overrides an
/// outer one.
///
/// ```ignore
/// #[workflow]
/// async fn report(day: String) -> Result<String, Failure> {
///     let data = load.submit(day);
///     // Do not hold a slot while a slow load runs: suspend after 5 s.
///     let rows = suspense(Duration::from_secs(5), data.result()).await?;
///     Ok(format!("{} rows", rows.len()))
/// }
/// ```
pub async fn suspense<F: std::future::Future>(timeout: Duration, future: F) -> F::Output {
    SUSPENSE.scope(timeout, future).await
}

/// The enclosing [`suspense`]'s limit, if any.
pub(crate) fn suspense_limit() -> Option<Duration> {
    SUSPENSE.try_with(|limit| *limit).ok()
}

/// Waits for `execution`'s final result within `limit`; when it runs out, the running
/// execution is suspended until `execution` has finished.
pub(crate) async fn wait_within(
    context: &Context,
    execution: ExecutionId,
    limit: Duration,
) -> Result<ExecutionResult, ExecutionError> {
    let waited = context
        .link
        .wait_within(execution, context.execution, limit);
    match waited.await {
        Some(result) => Ok(result),
        None => {
            context.request_suspension(Suspension {
                execute_after: None,
                dependencies: Dependencies::any(vec![execution]),
            });
            Err(ExecutionError::Suspended)
        }
    }
}

fn unix_ms(at: SystemTime) -> Millis {
    let ms = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis();
    Millis::try_from(ms).unwrap_or(Millis::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn outside_an_execution_suspending_fails() {
        let Err(error) = suspend(None).await;
        assert!(!error.accepted());
        let failure: super::super::Failure = error.into();
        assert_eq!(failure.0.error_type, "coflux.Suspended");
    }
}

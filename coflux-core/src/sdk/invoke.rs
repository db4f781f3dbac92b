//! The execution driver: how one execution of a registered target runs, decided once for every
//! host (the embedded worker and the executor binary only adapt transport).
//!
//! - The body runs with a task-local [`Context`] (checkpoints, working directory) and an asset
//!   store: the host's if it has one (the agent's, under an executor), else the repository's
//!   default (an embedded project's data directory).
//! - A panic is caught: the execution fails with `coflux.Panic`, the panic's message, and the
//!   place it happened as its frame (recorded by a panic hook this module chains in front of
//!   the process's own once; the default report still goes to stderr).
//! - A timeout, when the host asks the driver to enforce one (the embedded worker; an agent
//!   enforces its own by stopping the execution), ends it as `timeout`, even if it had asked
//!   to suspend meanwhile.
//! - Streams a body made go on after its value is reported, until they are closed; a body
//!   that ended another way stops them.
//! - A body that asked to be suspended ([`crate::sdk::suspend`], or a wait that ran out of
//!   [`crate::sdk::suspense`] time) ends as suspended, whatever it returned or raised after.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;

use super::asset::{AssetHost, with_assets};
use super::context::{Context, ExecutorLink, Suspension};
use super::error::Failure;
use super::repository::Repository;
use crate::model::{Checkpoints, ErrorInfo, ExecutionId, Frame, TargetRef, Value};

/// One execution to run.
pub(crate) struct Invocation {
    /// The execution.
    pub execution: ExecutionId,
    /// Its target.
    pub target: TargetRef,
    /// Its encoded arguments.
    pub arguments: Vec<Value>,
    /// Its step's checkpoint state.
    pub checkpoints: Checkpoints,
    /// Its own directory, if the host made one.
    pub working_dir: Option<PathBuf>,
    /// A time limit the driver enforces (`None`: none, or the host enforces it).
    pub timeout: Option<Duration>,
    /// The host's asset store (wins over the repository's default).
    pub assets: Option<Arc<dyn AssetHost>>,
}

/// How an execution ended, for its host to report.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ending {
    /// The body returned a value.
    Value(Value),
    /// It failed (returned an error, panicked, or its target is not hosted here).
    Error(ErrorInfo),
    /// It ran out of time.
    Timeout,
    /// It asked to be suspended.
    Suspended(Suspension),
}

/// Runs `invocation` through `link` and gives `report` how it ended. A body that returned a
/// value may still feed the streams it made ([`crate::sdk::stream`]): they go on after the
/// report, and this resolves once they are closed. Otherwise they are stopped first (the
/// orchestrator ends them as the execution ended). Dropping this future stops them too.
pub(crate) async fn invoke(
    repository: &Repository,
    link: Arc<dyn ExecutorLink>,
    invocation: Invocation,
    report: impl FnOnce(Ending),
) {
    let Some(target) = repository.get(&invocation.target) else {
        return report(Ending::Error(ErrorInfo::new(
            "coflux.TargetNotFound",
            format!("this worker does not host {}", invocation.target),
        )));
    };
    record_panic_locations();
    let context = Context::new(invocation.execution, link)
        .with_working_dir(invocation.working_dir)
        .with_checkpoints(invocation.checkpoints);
    let producers = Producers(context.clone());
    let body = context.clone().scope(target.invoke(invocation.arguments));
    let body = async move {
        match invocation.assets {
            Some(host) => with_assets(host, body).await,
            None => body.await,
        }
    };
    let ending = run_body(&context, body, invocation.timeout).await;
    if matches!(ending, Ending::Value(_)) {
        report(ending);
        producers.finish().await;
    } else {
        drop(producers);
        report(ending);
    }
}

async fn run_body(
    context: &Context,
    body: impl Future<Output = Result<Value, Failure>>,
    timeout: Option<Duration>,
) -> Ending {
    let run = AssertUnwindSafe(body).catch_unwind();
    let outcome = match timeout.filter(|t| !t.is_zero()) {
        Some(limit) => match tokio::time::timeout(limit, run).await {
            Ok(outcome) => outcome,
            Err(_) => return Ending::Timeout,
        },
        None => run.await,
    };
    if let Some(suspension) = context.suspension() {
        return Ending::Suspended(suspension);
    }
    match outcome {
        Ok(Ok(value)) => Ending::Value(value),
        Ok(Err(failure)) => Ending::Error(failure.0),
        Err(panic) => Ending::Error(ErrorInfo {
            frames: context.take_panic().into_iter().collect(),
            ..ErrorInfo::new("coflux.Panic", panic_message(&*panic))
        }),
    }
}

/// The stream producers an execution started: stopped when dropped, unless finished.
struct Producers(Context);

impl Producers {
    /// Waits until every producer has closed its stream.
    async fn finish(self) {
        loop {
            let running = self.0.take_producers();
            if running.is_empty() {
                return;
            }
            for producer in running {
                let _ = producer.await;
            }
        }
    }
}

impl Drop for Producers {
    fn drop(&mut self) {
        for producer in self.0.take_producers() {
            producer.abort();
        }
    }
}

type PanicHook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

/// Makes sure this module's hook is in front of the process's panic hook: a panic inside an
/// execution records where it happened in the execution's context, and the hook it wraps (the
/// default report on stderr, or one the program set) still runs. Checked at every execution,
/// so a hook set later by the program is wrapped in turn rather than losing the frames.
fn record_panic_locations() {
    static OURS: Mutex<usize> = Mutex::new(0);
    let mut ours = OURS.lock().unwrap_or_else(|p| p.into_inner());
    let current = std::panic::take_hook();
    if address(&current) == *ours {
        std::panic::set_hook(current);
        return;
    }
    let hook: PanicHook = Box::new(move |info| {
        if let (Some(context), Some(location)) = (Context::current(), info.location()) {
            context.record_panic(Frame {
                file: location.file().to_owned(),
                line: location.line(),
                name: "panic".into(),
                code: None,
            });
        }
        current(info);
    });
    *ours = address(&hook);
    std::panic::set_hook(hook);
}

/// Where a hook lives (ours captures a box, so it is never zero-sized: its address is its own).
fn address(hook: &PanicHook) -> usize {
    std::ptr::from_ref(&**hook).cast::<()>() as usize
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".into())
}

#[cfg(test)]
#[path = "invoke_tests.rs"]
mod tests;

//! The execution context: which execution is running, and the link to the orchestrator that
//! child calls go through.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use super::metric::event::{MetricDefinition, MetricEvent};

use crate::model::{
    Checkpoints, Dependencies, ExecutionId, ExecutionResult, Frame, Millis, StreamOp, StreamReply,
    SubmitRequest, Value,
};

/// A submitted child: its id, and its final result (following retries), which the
/// orchestrator sends as soon as it is known, so awaiting a handle costs no further round trip.
pub struct Submission {
    /// The child's id (an error if the submission was refused).
    pub id: BoxFuture<'static, Result<ExecutionId, String>>,
    /// The child's final result.
    pub result: BoxFuture<'static, Result<ExecutionResult, String>>,
}

/// How a running execution reaches the orchestrator. The embedded worker implements it with
/// actor messages; an executor process under an agent implements it over stdio.
pub trait ExecutorLink: Send + Sync + 'static {
    /// Submits a child of `parent`. The request is queued before this returns, so children are
    /// recorded in call order.
    fn submit(&self, parent: ExecutionId, request: SubmitRequest) -> Submission;
    /// Waits for the final result of `execution`'s chain, on behalf of `from`.
    fn wait(
        &self,
        execution: ExecutionId,
        from: ExecutionId,
    ) -> BoxFuture<'static, ExecutionResult>;

    /// Waits like [`ExecutorLink::wait`] for at most `limit` (zero: only if the result is at
    /// hand), then gives up with `None`: the host then ends `from` as suspended until
    /// `execution` has finished (see [`crate::sdk::suspense`]). The default races `wait`
    /// against the limit (a zero limit gets a short check); the host reads the suspension
    /// from [`Context::suspension`] when the body returns.
    fn wait_within(
        &self,
        execution: ExecutionId,
        from: ExecutionId,
        limit: Duration,
    ) -> BoxFuture<'static, Option<ExecutionResult>> {
        let wait = self.wait(execution, from);
        let limit = if limit.is_zero() { READY_CHECK } else { limit };
        Box::pin(async move { tokio::time::timeout(limit, wait).await.ok() })
    }

    /// Asks for `execution` to end as suspended, resuming as a new attempt after
    /// `execute_after` (unix ms; `None`: as soon as possible). It resolves once the request is
    /// accepted; the host then ends the execution without a result. The default accepts at
    /// once: a host that runs the body itself (the embedded worker) reads the request from
    /// [`Context::suspension`] when the body returns.
    fn suspend(
        &self,
        execution: ExecutionId,
        execute_after: Option<Millis>,
    ) -> BoxFuture<'static, Result<(), String>> {
        let _ = (execution, execute_after);
        Box::pin(async { Ok(()) })
    }

    /// Records checkpoint writes of `execution` (`set` names given a value, `reset` cleared),
    /// in order; fire and forget (see [`ExecutorLink::flush`]). The default drops them.
    fn checkpoint(&self, execution: ExecutionId, set: Checkpoints, reset: Vec<String>) {
        let _ = (execution, set, reset);
    }

    /// Resolves once `execution`'s checkpoint writes so far are durable. The default resolves
    /// at once.
    fn flush(&self, execution: ExecutionId) -> BoxFuture<'static, Result<(), String>> {
        let _ = execution;
        Box::pin(async { Ok(()) })
    }

    /// A stream operation (see [`crate::model::StreamOp`]). The default refuses it.
    fn stream(&self, op: StreamOp) -> BoxFuture<'static, Result<StreamReply, String>> {
        let _ = op;
        Box::pin(async { Err("streams are not supported here".into()) })
    }

    /// Records a metric event of `execution` (fire and forget). The default drops it.
    fn metric(&self, execution: ExecutionId, event: MetricEvent) {
        let _ = (execution, event);
    }
}

/// How long a zero [`crate::sdk::suspense`] waits for a result that may be at hand (as an
/// agent does for a `select` that may suspend at once).
pub(crate) const READY_CHECK: Duration = Duration::from_millis(200);

/// A suspension requested by a running execution (with [`crate::sdk::suspend`], or by a wait
/// that ran out of [`crate::sdk::suspense`] time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspension {
    /// When the next attempt may run (unix ms; `None`: as soon as possible).
    pub execute_after: Option<Millis>,
    /// What the next attempt waits for before it runs (the executions a wait gave up on).
    pub dependencies: Dependencies,
}

/// The running execution and its link, available to target code through [`Context::current`].
#[derive(Clone)]
pub struct Context {
    /// The running execution.
    pub execution: ExecutionId,
    /// The link to the orchestrator.
    pub link: Arc<dyn ExecutorLink>,
    /// The suspension the body asked for, shared by the clones of this context.
    suspension: Arc<Mutex<Option<Suspension>>>,
    /// When the execution started (the default x-axis of metric points).
    started: Instant,
    /// The metric definitions sent so far, by key.
    metrics: Arc<Mutex<HashMap<String, MetricDefinition>>>,
    /// The execution's own directory, if its host made one.
    working_dir: Option<Arc<PathBuf>>,
    /// Its step's checkpoint state, as this execution sees it.
    checkpoints: Arc<Mutex<Checkpoints>>,
    /// Streams registered and subscriptions opened so far (their numbers).
    streams: Arc<(AtomicU32, AtomicU32)>,
    /// Where the body last panicked (recorded by the driver's panic hook).
    panic: Arc<Mutex<Option<Frame>>>,
    /// The tasks feeding the streams the execution made.
    producers: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

tokio::task_local! {
    static CURRENT: Context;
}

impl Context {
    /// The context of `execution`, reaching the orchestrator through `link`.
    pub fn new(execution: ExecutionId, link: Arc<dyn ExecutorLink>) -> Self {
        Self {
            execution,
            link,
            suspension: Arc::default(),
            started: Instant::now(),
            metrics: Arc::default(),
            working_dir: None,
            checkpoints: Arc::default(),
            streams: Arc::default(),
            panic: Arc::default(),
            producers: Arc::default(),
        }
    }

    /// Records a task feeding one of the execution's streams (the driver waits for it after
    /// reporting a value, and stops it otherwise).
    pub(crate) fn add_producer(&self, producer: tokio::task::JoinHandle<()>) {
        self.producers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(producer);
    }

    /// The producers recorded so far (taken).
    pub(crate) fn take_producers(&self) -> Vec<tokio::task::JoinHandle<()>> {
        std::mem::take(&mut *self.producers.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Records where the body panicked.
    pub(crate) fn record_panic(&self, frame: Frame) {
        *self.panic.lock().unwrap_or_else(|p| p.into_inner()) = Some(frame);
    }

    /// Where the body last panicked, if it did.
    pub(crate) fn take_panic(&self) -> Option<Frame> {
        self.panic.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// The number of the next stream this execution registers (0, 1, ...).
    pub(crate) fn next_stream_position(&self) -> u32 {
        self.streams.0.fetch_add(1, Ordering::Relaxed)
    }

    /// The number of the next subscription this execution opens (0, 1, ...).
    pub(crate) fn next_subscription(&self) -> u32 {
        self.streams.1.fetch_add(1, Ordering::Relaxed)
    }

    /// Sets the step's checkpoint state the execution starts from.
    pub fn with_checkpoints(self, checkpoints: Checkpoints) -> Self {
        *self.checkpoints.lock().unwrap_or_else(|p| p.into_inner()) = checkpoints;
        self
    }

    /// A checkpoint's current value, if set.
    pub(crate) fn checkpoint(&self, name: &str) -> Option<Value> {
        let state = self.checkpoints.lock().unwrap_or_else(|p| p.into_inner());
        state.get(name).cloned()
    }

    /// Sets (`Some`) or clears (`None`) a checkpoint, here and through the link.
    pub(crate) fn set_checkpoint(&self, name: &str, value: Option<Value>) {
        let mut state = self.checkpoints.lock().unwrap_or_else(|p| p.into_inner());
        match value {
            Some(value) => {
                state.insert(name.to_owned(), value.clone());
                let set = Checkpoints::from([(name.to_owned(), value)]);
                self.link.checkpoint(self.execution, set, Vec::new());
            }
            None => {
                state.remove(name);
                let reset = vec![name.to_owned()];
                self.link
                    .checkpoint(self.execution, Checkpoints::new(), reset);
            }
        }
    }

    /// Sets the execution's working directory (where relative asset paths start; see
    /// [`crate::sdk::working_dir`]). Without one, the process's current directory is used.
    pub fn with_working_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.working_dir = dir.map(Arc::new);
        self
    }

    /// The execution's working directory, if its host made one.
    pub fn working_dir(&self) -> Option<&Path> {
        self.working_dir.as_deref().map(PathBuf::as_path)
    }

    /// Records a metric point through the link, defining the metric first (again if its
    /// definition changed); `at` defaults to the seconds since the execution started.
    pub(crate) fn record_metric(
        &self,
        key: &str,
        definition: &MetricDefinition,
        value: f64,
        at: Option<f64>,
    ) {
        let changed = {
            let mut defined = self.metrics.lock().unwrap_or_else(|p| p.into_inner());
            let changed = defined.get(key) != Some(definition);
            if changed {
                defined.insert(key.to_owned(), definition.clone());
            }
            changed
        };
        if changed {
            let event = MetricEvent::Define {
                key: key.to_owned(),
                definition: definition.clone(),
            };
            self.link.metric(self.execution, event);
        }
        let at = at.unwrap_or_else(|| self.started.elapsed().as_secs_f64());
        let event = MetricEvent::Point {
            key: key.to_owned(),
            value,
            at,
        };
        self.link.metric(self.execution, event);
    }

    /// The suspension the execution asked for, if any (the first request wins): the host ends
    /// the execution as suspended instead of reporting what its body returned.
    pub fn suspension(&self) -> Option<Suspension> {
        self.suspension
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records a requested suspension (the first one is kept).
    pub(crate) fn request_suspension(&self, suspension: Suspension) {
        let mut slot = self.suspension.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(suspension);
    }

    /// The context of the execution running on this task, if any.
    pub fn current() -> Option<Context> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Runs `future` as the body of this context's execution.
    pub async fn scope<F: std::future::Future>(self, future: F) -> F::Output {
        CURRENT.scope(self, future).await
    }
}

/// The execution running on this task (its run, step and attempt), if any.
pub fn current_execution() -> Option<ExecutionId> {
    CURRENT.try_with(|c| c.execution).ok()
}

/// Carries the current execution's context (and asset store) into `future`, for work a target
/// body spawns (`tokio::spawn(in_context(async { task.call(x).await }))`): the context is
/// task-local, so without this, calls made from a spawned task run their bodies in place
/// instead of becoming child steps.
pub fn in_context<F: std::future::Future>(
    future: F,
) -> impl std::future::Future<Output = F::Output> {
    let context = Context::current();
    let assets = super::asset::current_host();
    async move {
        let inner = async move {
            match context {
                Some(context) => context.scope(future).await,
                None => future.await,
            }
        };
        match assets {
            Some(host) => super::asset::with_assets(host, inner).await,
            None => inner.await,
        }
    }
}

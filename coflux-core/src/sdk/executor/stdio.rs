//! [`StdioLink`]: the [`ExecutorLink`] of an executor binary, over its stdin and stdout.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value as Json;
use tokio::sync::oneshot;

use super::wire::{lock, select_outcome, value_to_wire};
use crate::model::{Checkpoints, ErrorInfo, ExecutionId, ExecutionResult, Millis};
use crate::protocol::executor::{
    AdapterNotification, AdapterRequest, CheckpointUpdate, DefineMetric, ExecutionParams,
    ExecutionResolved, Handle, MetricParams, Response, ResponseError, Select, SelectResult,
    SubmitExecution, SubmitResult, Suspend,
};
use crate::sdk::{ExecutorLink, MetricEvent, Submission, SubmitRequest};

/// The [`ExecutorLink`] over stdio: requests are written to stdout, responses come back by id
/// from the input loop.
#[derive(Clone)]
pub(super) struct StdioLink(Arc<LinkInner>);

type Pending = oneshot::Sender<Result<Json, ResponseError>>;

/// The code of the error a request gets when no answer can come.
pub(super) const CLOSED: &str = "closed";

struct LinkInner {
    /// Stdout (`None` once closed, or after a write failed).
    output: Mutex<Option<Box<dyn Write + Send>>>,
    pending: Mutex<HashMap<u64, Pending>>,
    /// Children's final results the worker pushed (`execution_resolved`), not yet waited on.
    pushed: Mutex<Pushed>,
    next_id: AtomicU64,
    closed: AtomicBool,
}

impl StdioLink {
    pub(super) fn new(output: Box<dyn Write + Send>) -> Self {
        Self(Arc::new(LinkInner {
            output: Mutex::new(Some(output)),
            pending: Mutex::default(),
            pushed: Mutex::default(),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
        }))
    }

    /// Writes one line (with its newline, in one write) and flushes it.
    pub(super) fn send(&self, mut line: String) {
        line.push('\n');
        let mut output = lock(&self.0.output);
        if let Some(out) = output.as_mut()
            && out
                .write_all(line.as_bytes())
                .and_then(|()| out.flush())
                .is_err()
        {
            *output = None;
        }
    }

    /// Sends a request now (so requests go out in call order) and waits for its result.
    pub(super) fn request(
        &self,
        request: AdapterRequest,
    ) -> BoxFuture<'static, Result<Json, String>> {
        let reply = self.call(request);
        async move {
            reply.await.map_err(|e| match e.code.as_str() {
                CLOSED => e.message,
                _ => e.to_string(),
            })
        }
        .boxed()
    }

    /// [`StdioLink::request`] keeping the worker's error code ([`CLOSED`] if no answer can
    /// come).
    pub(super) fn call(
        &self,
        request: AdapterRequest,
    ) -> BoxFuture<'static, Result<Json, ResponseError>> {
        let closed = || ResponseError::new(CLOSED, "the worker closed the connection");
        let (reply, response) = oneshot::channel();
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        if self.0.closed.load(Ordering::Acquire) {
            return async move { Err(closed()) }.boxed();
        }
        lock(&self.0.pending).insert(id, reply);
        self.send(request.to_line(id));
        // If the caller stops waiting (its execution was aborted), forget the request.
        let forget = Forget(self.clone(), id);
        async move {
            let _forget = forget;
            response.await.unwrap_or_else(|_| Err(closed()))
        }
        .boxed()
    }

    pub(super) fn resolve(&self, response: Response) {
        if let Some(reply) = lock(&self.0.pending).remove(&response.id) {
            let _ = reply.send(response.result);
        }
    }

    /// Fails the requests waiting for a response, and any later ones.
    pub(super) fn close_requests(&self) {
        self.0.closed.store(true, Ordering::Release);
        lock(&self.0.pending).clear();
    }

    pub(super) fn close_output(&self) {
        lock(&self.0.output).take();
    }

    /// `select` on one execution (suspend allowed), as the final result of its chain; `None`
    /// when `limit` ran out (the worker then suspends `from`).
    pub(super) fn select(
        &self,
        execution: ExecutionId,
        from: ExecutionId,
        limit: Option<Duration>,
    ) -> BoxFuture<'static, Option<ExecutionResult>> {
        let reply = self.request(AdapterRequest::Select(Select {
            execution_id: from.to_string(),
            handles: vec![Handle::execution(execution.to_string())],
            suspend: true,
            timeout_ms: limit.map(|l| u64::try_from(l.as_millis()).unwrap_or(u64::MAX)),
            cancel_remaining: false,
        }));
        async move {
            let failed = |message: String| ExecutionResult::Error {
                error: ErrorInfo::new("coflux.WaitError", message),
                retry: None,
            };
            Some(match reply.await {
                Err(e) => failed(e),
                Ok(Json::Null) if limit.is_some() => return None,
                Ok(Json::Null) => {
                    failed("the worker gave no result (the wait was suspended)".into())
                }
                Ok(json) => match serde_json::from_value::<SelectResult>(json) {
                    Err(e) => failed(format!("unexpected select result: {e}")),
                    Ok(result) => select_outcome(result).unwrap_or_else(failed),
                },
            })
        }
        .boxed()
    }

    /// The final result of `execution`: the one the worker pushed, else a `select` with no
    /// limit.
    fn select_final(
        &self,
        execution: ExecutionId,
        from: ExecutionId,
    ) -> BoxFuture<'static, ExecutionResult> {
        let child = execution.to_string();
        if let Some(result) = lock(&self.0.pushed).take(&child) {
            return async move { result }.boxed();
        }
        let select = self.select(execution, from, None);
        let link = self.clone();
        async move {
            let result = select.await.unwrap_or_else(|| ExecutionResult::Error {
                error: ErrorInfo::new("coflux.WaitError", "the wait ended without a result"),
                retry: None,
            });
            // Pushed while the select was on its way: not needed any more.
            lock(&link.0.pushed).take(&child);
            result
        }
        .boxed()
    }

    /// Keeps a child's final result the worker pushed, for the wait on it.
    pub(super) fn push_result(&self, resolved: ExecutionResolved) {
        match select_outcome(resolved.result) {
            Ok(result) => {
                lock(&self.0.pushed).insert(resolved.execution_id, resolved.parent_id, result);
            }
            // A wait on it asks the worker instead.
            Err(e) => eprintln!("coflux executor: ignoring a pushed result: {e}"),
        }
    }

    /// Forgets the pushed results of children `parent` did not wait on (it has ended).
    pub(super) fn forget_pushed(&self, parent: &str) {
        lock(&self.0.pushed).forget(parent);
    }
}

/// Children's final results pushed by the worker, by child, and the children of each parent
/// (so forgetting a parent's costs their number).
#[derive(Default)]
struct Pushed {
    results: HashMap<String, ExecutionResult>,
    by_parent: HashMap<String, Vec<String>>,
}

impl Pushed {
    fn insert(&mut self, child: String, parent: String, result: ExecutionResult) {
        self.by_parent
            .entry(parent)
            .or_default()
            .push(child.clone());
        self.results.insert(child, result);
    }

    fn take(&mut self, child: &str) -> Option<ExecutionResult> {
        self.results.remove(child)
    }

    fn forget(&mut self, parent: &str) {
        for child in self.by_parent.remove(parent).unwrap_or_default() {
            self.results.remove(&child);
        }
    }
}

/// Removes a request's entry when its future is dropped (answered or not).
struct Forget(StdioLink, u64);

impl Drop for Forget {
    fn drop(&mut self) {
        lock(&self.0.0.pending).remove(&self.1);
    }
}

impl ExecutorLink for StdioLink {
    fn submit(&self, parent: ExecutionId, request: SubmitRequest) -> Submission {
        let arguments = request
            .arguments
            .iter()
            .map(value_to_wire)
            .collect::<Result<Vec<_>, _>>();
        let reply = match arguments {
            Err(e) => async move { Err(e) }.boxed(),
            Ok(arguments) => {
                self.request(AdapterRequest::SubmitExecution(Box::new(SubmitExecution {
                    execution_id: parent.to_string(),
                    module: request.target.module.clone(),
                    target: request.target.name.clone(),
                    arguments,
                    kind: Some(request.kind),
                    group_id: None,
                    options: (&request.options).into(),
                    streams: None,
                })))
            }
        };
        let id = async move {
            let result: SubmitResult =
                serde_json::from_value(reply.await?).map_err(|e| e.to_string())?;
            result
                .execution_id
                .parse::<ExecutionId>()
                .map_err(|e| e.to_string())
        }
        .boxed()
        .shared();
        let link = self.clone();
        let child = id.clone();
        let result = async move { Ok(link.select_final(child.await?, parent).await) };
        Submission {
            id: id.boxed(),
            result: result.boxed(),
        }
    }

    fn wait(
        &self,
        execution: ExecutionId,
        from: ExecutionId,
    ) -> BoxFuture<'static, ExecutionResult> {
        self.select_final(execution, from)
    }

    /// A `select` with `timeout_ms` and `suspend`: the worker suspends the execution when it
    /// runs out (and answers `null`).
    fn wait_within(
        &self,
        execution: ExecutionId,
        from: ExecutionId,
        limit: Duration,
    ) -> BoxFuture<'static, Option<ExecutionResult>> {
        self.select(execution, from, Some(limit))
    }

    fn suspend(
        &self,
        execution: ExecutionId,
        execute_after: Option<Millis>,
    ) -> BoxFuture<'static, Result<(), String>> {
        let reply = self.request(AdapterRequest::Suspend(Suspend {
            execution_id: execution.to_string(),
            execute_after,
            stream_wait: None,
        }));
        async move { reply.await.map(drop) }.boxed()
    }

    /// A `checkpoint_update` notification (values that cannot be sent are dropped, logged).
    fn checkpoint(&self, execution: ExecutionId, set: Checkpoints, reset: Vec<String>) {
        let mut wire = BTreeMap::new();
        for (name, value) in set {
            match value_to_wire(&value) {
                Ok(value) => {
                    wire.insert(name, value);
                }
                Err(e) => tracing::warn!(%execution, checkpoint = %name, error = %e, "not sent"),
            }
        }
        let update = AdapterNotification::CheckpointUpdate(CheckpointUpdate {
            execution_id: execution.to_string(),
            set: (!wire.is_empty()).then_some(wire),
            reset: (!reset.is_empty()).then_some(reset),
        });
        self.send(update.to_line());
    }

    /// A `flush` request: answered once the writes sent before it are durable.
    fn flush(&self, execution: ExecutionId) -> BoxFuture<'static, Result<(), String>> {
        let request = AdapterRequest::Flush(ExecutionParams {
            execution_id: execution.to_string(),
            rest: BTreeMap::new(),
        });
        let reply = self.request(request);
        async move { reply.await.map(drop) }.boxed()
    }

    /// Our `stream_op` extension request: the agent passes the operation on as it is.
    fn stream(
        &self,
        op: crate::model::StreamOp,
    ) -> BoxFuture<'static, Result<crate::model::StreamReply, String>> {
        let mut rest = BTreeMap::new();
        rest.insert(
            "op".to_owned(),
            serde_json::to_value(&op).unwrap_or_default(),
        );
        let request = AdapterRequest::StreamOp(ExecutionParams {
            execution_id: op.execution().to_string(),
            rest,
        });
        let reply = self.request(request);
        async move {
            let reply = reply.await?;
            serde_json::from_value(reply).map_err(|e| format!("unexpected answer: {e}"))
        }
        .boxed()
    }

    /// `define_metric` and `metric` notifications, as the Python SDK sends them.
    fn metric(&self, execution: ExecutionId, event: MetricEvent) {
        let execution_id = execution.to_string();
        let notification = match event {
            MetricEvent::Define { key, definition } => {
                AdapterNotification::DefineMetric(DefineMetric {
                    execution_id,
                    key,
                    definition: serde_json::to_value(definition).unwrap_or_default(),
                })
            }
            MetricEvent::Point { key, value, at } => AdapterNotification::Metric(MetricParams {
                execution_id,
                key,
                value,
                at: Some(at),
            }),
        };
        self.send(notification.to_line());
    }
}

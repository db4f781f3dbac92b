//! [`RemoteHost`]: answers executor requests through the server link and the blob API.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

use coflux_core::model::{Checkpoints, ExecutionId, ExecutionResult, StreamOp, StreamReply};
use coflux_core::protocol::agent::{
    AgentRequest, Json, LogEntry, MetricEntry, ReplyBody, WireError,
};
use coflux_core::sdk::SubmitRequest;
use futures::FutureExt;
use futures::future::{LocalBoxFuture, Shared};

use super::blobs::{BlobClient, BlobError};
use super::link::Link;
use super::metrics::MetricBatcher;
use crate::executor::{AssetRecord, ExecutorHost, HostError, LogRecord, NewAsset, WaitChange};

/// A child's final result as the server pushes it (see [`ServerFrame::Resolved`]).
type Early = Shared<LocalBoxFuture<'static, Option<Json>>>;

/// The executor host of a connected agent. Children are submitted with `wait`, so the server
/// pushes each child's final result as soon as it is known and the executor's later `select`
/// on it is answered here, without another round trip.
///
/// [`ServerFrame::Resolved`]: coflux_core::protocol::agent::ServerFrame::Resolved
pub struct RemoteHost {
    link: Link,
    blobs: BlobClient,
    metrics: MetricBatcher,
    /// Pushed results of children not yet waited on, with the parent that submitted them.
    early: Rc<RefCell<EarlyResults>>,
    /// How many calls each running execution has made: a submission's number is its identity
    /// for the server (see `AgentRequest::Submit`).
    calls: Rc<RefCell<HashMap<ExecutionId, u32>>>,
}

/// Pushed results of children not yet waited on, by child, and the children of each parent
/// (so forgetting a parent's costs their number, not every running execution's).
#[derive(Default)]
struct EarlyResults {
    results: HashMap<ExecutionId, (ExecutionId, Early)>,
    /// Children submitted by each parent still running (some may be taken already).
    by_parent: HashMap<ExecutionId, Vec<ExecutionId>>,
}

impl EarlyResults {
    fn insert(&mut self, child: ExecutionId, parent: ExecutionId, result: Early) {
        self.results.insert(child, (parent, result));
        self.by_parent.entry(parent).or_default().push(child);
    }

    fn take(&mut self, child: ExecutionId) -> Option<Early> {
        self.results.remove(&child).map(|(_, e)| e)
    }

    /// Whether `child`'s pushed result is still here (not taken by a wait).
    fn holds(&self, child: ExecutionId) -> bool {
        self.results.contains_key(&child)
    }

    /// The pushed result of `child`, left for a later `take`.
    fn peek(&self, child: ExecutionId) -> Option<Early> {
        self.results.get(&child).map(|(_, e)| e.clone())
    }

    fn forget(&mut self, parent: ExecutionId) {
        for child in self.by_parent.remove(&parent).unwrap_or_default() {
            if self.results.get(&child).is_some_and(|(p, _)| *p == parent) {
                self.results.remove(&child);
            }
        }
    }
}

impl RemoteHost {
    /// A host over a link and a blob client.
    pub fn new(link: Link, blobs: BlobClient) -> Self {
        Self {
            metrics: MetricBatcher::new(link.clone()),
            link,
            blobs,
            early: Rc::default(),
            calls: Rc::default(),
        }
    }

    /// Forgets the pushed results of children that `parent` never waited on (call when it
    /// has ended).
    pub fn forget(&self, parent: ExecutionId) {
        self.early.borrow_mut().forget(parent);
        self.calls.borrow_mut().remove(&parent);
    }
}

fn host_error(e: WireError) -> HostError {
    HostError::new(e.code, e.message)
}

/// A blob client error as a host error; the server's own code when it gave one.
fn blob_error(e: BlobError) -> HostError {
    match e {
        BlobError::Api { code, message } => HostError::new(code, message),
        other => HostError::new(other.code(), other.to_string()),
    }
}

fn unexpected(body: ReplyBody) -> HostError {
    HostError::new("unexpected_reply", format!("unexpected reply {body:?}"))
}

impl ExecutorHost for RemoteHost {
    fn submit(
        &self,
        parent: ExecutionId,
        request: SubmitRequest,
    ) -> LocalBoxFuture<'static, Result<ExecutionId, HostError>> {
        let link = self.link.clone();
        let early = Rc::clone(&self.early);
        // Numbered in the order the execution made its calls.
        let call = {
            let mut calls = self.calls.borrow_mut();
            let count = calls.entry(parent).or_insert(0);
            *count += 1;
            *count
        };
        async move {
            let request = AgentRequest::Submit {
                parent,
                call,
                target: request.target,
                kind: request.kind,
                arguments: Json::encode(&request.arguments),
                options: Json::encode(&request.options),
                wait: true,
            };
            match link.request(request).await.map_err(host_error)? {
                ReplyBody::Submitted(id) => {
                    // Registered before this task yields again, so before `Resolved` can arrive.
                    let resolution = link.expect_resolution(id);
                    let future = async move { resolution.await.ok() }.boxed_local().shared();
                    early.borrow_mut().insert(id, parent, future);
                    Ok(id)
                }
                other => Err(unexpected(other)),
            }
        }
        .boxed_local()
    }

    fn wait(
        &self,
        execution: ExecutionId,
        from: ExecutionId,
    ) -> LocalBoxFuture<'static, Result<ExecutionResult, HostError>> {
        let link = self.link.clone();
        let early = self.early.borrow_mut().take(execution);
        async move {
            // The pushed result, unless it was lost or the server could not get it (then ask).
            if let Some(early) = early
                && let Some(json) = early.await
                && let Ok(result) = json.decode()
            {
                return Ok(result);
            }
            match link
                .request(AgentRequest::Wait { execution, from })
                .await
                .map_err(host_error)?
            {
                ReplyBody::Result(json) => json
                    .decode()
                    .map_err(|e| HostError::new("invalid_reply", e.to_string())),
                other => Err(unexpected(other)),
            }
        }
        .boxed_local()
    }

    fn pushed_result(
        &self,
        child: ExecutionId,
    ) -> Option<LocalBoxFuture<'static, Option<ExecutionResult>>> {
        let early = self.early.borrow().peek(child)?;
        let results = Rc::clone(&self.early);
        Some(
            async move {
                let json = early.await?;
                // A `select` that took it meanwhile answers the executor: no second copy.
                if !results.borrow().holds(child) {
                    return None;
                }
                json.decode().ok()
            }
            .boxed_local(),
        )
    }

    fn cancel(
        &self,
        execution: ExecutionId,
        from: ExecutionId,
    ) -> LocalBoxFuture<'static, Result<(), HostError>> {
        let link = self.link.clone();
        async move {
            link.request(AgentRequest::Cancel { execution, from })
                .await
                .map_err(host_error)?;
            Ok(())
        }
        .boxed_local()
    }

    fn checkpoint(
        &self,
        execution: ExecutionId,
        set: Checkpoints,
        reset: Vec<String>,
    ) -> LocalBoxFuture<'static, Result<(), HostError>> {
        let link = self.link.clone();
        async move {
            let set = Json::encode(&set);
            match link
                .request(AgentRequest::Checkpoint {
                    execution,
                    set,
                    reset,
                })
                .await
                .map_err(host_error)?
            {
                ReplyBody::Checkpointed => Ok(()),
                other => Err(unexpected(other)),
            }
        }
        .boxed_local()
    }

    fn stream(&self, op: StreamOp) -> LocalBoxFuture<'static, Result<StreamReply, HostError>> {
        let link = self.link.clone();
        async move {
            let execution = op.execution();
            let op = Json::encode(&op);
            match link
                .request(AgentRequest::Stream { execution, op })
                .await
                .map_err(host_error)?
            {
                ReplyBody::Stream(reply) => reply
                    .decode()
                    .map_err(|e| HostError::new("invalid_reply", e.to_string())),
                other => Err(unexpected(other)),
            }
        }
        .boxed_local()
    }

    fn input(
        &self,
        execution: ExecutionId,
        op: coflux_core::model::InputOp,
    ) -> LocalBoxFuture<'static, Result<coflux_core::model::InputRecord, HostError>> {
        let link = self.link.clone();
        async move {
            let op = Json::encode(&op);
            match link
                .request(AgentRequest::Input { execution, op })
                .await
                .map_err(host_error)?
            {
                ReplyBody::Input(record) => record
                    .decode()
                    .map_err(|e| HostError::new("invalid_reply", e.to_string())),
                other => Err(unexpected(other)),
            }
        }
        .boxed_local()
    }

    fn put_blob(&self, path: PathBuf) -> LocalBoxFuture<'static, Result<(String, u64), HostError>> {
        let blobs = self.blobs.clone();
        async move {
            blobs
                .put_file(&path)
                .await
                .map_err(|e| HostError::new(e.code(), e.to_string()))
        }
        .boxed_local()
    }

    fn get_blob(
        &self,
        key: String,
        target: PathBuf,
    ) -> LocalBoxFuture<'static, Result<(), HostError>> {
        let blobs = self.blobs.clone();
        async move {
            blobs
                .get_file(&key, &target)
                .await
                .map_err(|e| HostError::new(e.code(), e.to_string()))
        }
        .boxed_local()
    }

    fn put_asset(
        &self,
        asset: NewAsset,
    ) -> LocalBoxFuture<'static, Result<AssetRecord, HostError>> {
        let blobs = self.blobs.clone();
        async move { blobs.put_asset(&asset).await.map_err(blob_error) }.boxed_local()
    }

    fn get_asset(&self, id: String) -> LocalBoxFuture<'static, Result<AssetRecord, HostError>> {
        let blobs = self.blobs.clone();
        async move { blobs.get_asset(&id).await.map_err(blob_error) }.boxed_local()
    }

    fn waiting(&self, execution: ExecutionId, change: WaitChange) {
        match change {
            WaitChange::Started { spare } => self.link.waiting_started(execution, spare),
            WaitChange::Stopped => self.link.waiting_stopped(execution),
        }
    }

    fn log(&self, execution: ExecutionId, record: LogRecord) {
        self.link.logs(vec![LogEntry {
            execution,
            timestamp_ms: u64::try_from(record.timestamp_ms).unwrap_or(0),
            level: record.level,
            template: record.template,
            values: Json::encode(&record.values),
        }]);
    }

    fn metric(&self, entry: MetricEntry) {
        self.metrics.push(entry);
    }
}

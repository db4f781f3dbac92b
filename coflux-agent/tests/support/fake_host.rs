//! A tiny in-memory orchestrator for the executor pool's tests: submitted children run on the
//! same pool, waits resolve when they finish, blobs live in a temp directory (sha256 keys).
#![allow(dead_code)] // Each test binary uses a different part.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

use coflux_agent::executor::{
    AdapterCommand, AssetRecord, Assignment, Ending, ExecutorHost, ExecutorMode, ExecutorPool,
    HostError, LogRecord, NewAsset, PoolConfig, assets,
};
use coflux_core::model::SubmitRequest;
use coflux_core::model::{
    Checkpoints, ExecutionId, ExecutionResult, RunId, StepId, TargetRef, Value,
};
use coflux_core::protocol::http::AssetSummary;
use futures::FutureExt;
use futures::future::LocalBoxFuture;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

/// The fake orchestrator.
pub struct FakeHost {
    me: Weak<FakeHost>,
    pool: RefCell<Option<ExecutorPool>>,
    blobs: tempfile::TempDir,
    next_run: Cell<u64>,
    steps: RefCell<HashMap<RunId, u32>>,
    results: RefCell<HashMap<ExecutionId, watch::Sender<Option<ExecutionResult>>>>,
    /// Log records, in the order they arrived.
    pub logs: RefCell<Vec<(ExecutionId, LogRecord)>>,
    /// Submissions: parent, request, child.
    pub submissions: RefCell<Vec<(ExecutionId, SubmitRequest, ExecutionId)>>,
    /// Cancelled executions.
    pub cancelled: RefCell<Vec<ExecutionId>>,
    /// How many waits executors asked for (`select`s not answered by a pushed result).
    pub waits: Cell<usize>,
    /// Recorded assets by id.
    pub assets: RefCell<HashMap<String, AssetRecord>>,
    /// Checkpoint states by step (given to every later execution of the step).
    pub checkpoints: RefCell<HashMap<StepId, Checkpoints>>,
}

/// A pool configuration in the executor mode named by `COFLUX_EXECUTOR` (default: fork).
pub fn config(adapter: AdapterCommand, dir: &Path, concurrency: usize) -> PoolConfig {
    let mut config = PoolConfig::new(adapter, dir, concurrency);
    config.mode = executor_mode();
    config
}

/// The executor mode named by `COFLUX_EXECUTOR` (default: fork).
pub fn executor_mode() -> ExecutorMode {
    std::env::var("COFLUX_EXECUTOR")
        .ok()
        .filter(|m| !m.is_empty())
        .map_or(ExecutorMode::Fork, |m| m.parse().expect("COFLUX_EXECUTOR"))
}

impl FakeHost {
    /// A host with a pool running `adapter` in `dir`, in the executor mode named by
    /// `COFLUX_EXECUTOR` (default: fork).
    pub fn new(
        adapter: AdapterCommand,
        dir: &Path,
        concurrency: usize,
    ) -> (Rc<Self>, ExecutorPool) {
        Self::with_config(config(adapter, dir, concurrency))
    }

    /// A host with a pool of this configuration.
    pub fn with_config(config: PoolConfig) -> (Rc<Self>, ExecutorPool) {
        let host = Rc::new_cyclic(|me| Self {
            me: me.clone(),
            pool: RefCell::new(None),
            blobs: tempfile::tempdir().expect("a temp dir for blobs"),
            next_run: Cell::new(1),
            steps: RefCell::default(),
            results: RefCell::default(),
            logs: RefCell::default(),
            submissions: RefCell::default(),
            cancelled: RefCell::default(),
            waits: Cell::new(0),
            assets: RefCell::default(),
            checkpoints: RefCell::default(),
        });
        let pool = ExecutorPool::new(config, Rc::clone(&host) as Rc<dyn ExecutorHost>);
        *host.pool.borrow_mut() = Some(pool.clone());
        (host, pool)
    }

    fn pool(&self) -> ExecutorPool {
        self.pool.borrow().clone().expect("the pool is set")
    }

    /// Starts a run of `target`; gives its initial execution.
    pub fn run(
        &self,
        target: TargetRef,
        arguments: Vec<Value>,
        timeout_ms: Option<u64>,
    ) -> ExecutionId {
        let run = RunId(self.next_run.get());
        self.next_run.set(run.0 + 1);
        self.steps.borrow_mut().insert(run, 1);
        let execution = StepId { run, number: 1 }.execution(1);
        self.launch(execution, target, arguments, timeout_ms);
        execution
    }

    /// The final result of an execution.
    pub async fn result(&self, execution: ExecutionId) -> ExecutionResult {
        let mut result = self.results.borrow()[&execution].subscribe();
        let result = result
            .wait_for(Option::is_some)
            .await
            .expect("the result is kept");
        result.clone().expect("a result")
    }

    /// The log records of an execution.
    pub fn logs_of(&self, execution: ExecutionId) -> Vec<LogRecord> {
        self.logs
            .borrow()
            .iter()
            .filter(|(e, _)| *e == execution)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// The child submitted for `target`, the first one if several.
    pub fn child(&self, target: &str) -> Option<ExecutionId> {
        self.submissions
            .borrow()
            .iter()
            .find(|(_, request, _)| request.target.name == target)
            .map(|(_, _, child)| *child)
    }

    /// A stored blob's bytes.
    pub fn blob(&self, key: &str) -> Vec<u8> {
        std::fs::read(self.blobs.path().join(key)).expect("the blob exists")
    }

    fn launch(
        &self,
        execution: ExecutionId,
        target: TargetRef,
        arguments: Vec<Value>,
        timeout_ms: Option<u64>,
    ) {
        self.results
            .borrow_mut()
            .insert(execution, watch::channel(None).0);
        let host = self.me.upgrade().expect("the host is alive");
        let pool = self.pool();
        actix_rt::spawn(async move {
            let checkpoints = host
                .checkpoints
                .borrow()
                .get(&execution.step)
                .cloned()
                .unwrap_or_default();
            let assignment = Assignment {
                execution,
                target,
                arguments,
                timeout_ms,
                checkpoints,
                streams: None,
            };
            let result = match pool.execute(assignment).await {
                Ok(Ending::Result(result)) => Some(result),
                // The fake host has no scheduler: a suspension shows as the result that
                // points at the next attempt.
                Ok(Ending::Suspended(_)) => Some(ExecutionResult::Suspended {
                    successor: ExecutionId {
                        step: execution.step,
                        attempt: execution.attempt + 1,
                    },
                }),
                Err(error) => error.into_result(),
            };
            if let Some(result) = result {
                host.finish(execution, result);
            }
        });
    }

    fn finish(&self, execution: ExecutionId, result: ExecutionResult) {
        if let Some(sender) = self.results.borrow().get(&execution) {
            sender.send_if_modified(|slot| {
                let first = slot.is_none();
                if first {
                    *slot = Some(result);
                }
                first
            });
        }
    }
}

fn io_error(e: std::io::Error) -> HostError {
    HostError::new("io_error", e.to_string())
}

impl ExecutorHost for FakeHost {
    fn submit(
        &self,
        parent: ExecutionId,
        request: SubmitRequest,
    ) -> LocalBoxFuture<'static, Result<ExecutionId, HostError>> {
        let run = parent.run();
        let number = {
            let mut steps = self.steps.borrow_mut();
            let number = steps.entry(run).or_insert(1);
            *number += 1;
            *number
        };
        let child = StepId { run, number }.execution(1);
        self.submissions
            .borrow_mut()
            .push((parent, request.clone(), child));
        self.launch(
            child,
            request.target,
            request.arguments,
            request.options.timeout_ms,
        );
        async move { Ok(child) }.boxed_local()
    }

    fn wait(
        &self,
        execution: ExecutionId,
        _from: ExecutionId,
    ) -> LocalBoxFuture<'static, Result<ExecutionResult, HostError>> {
        self.waits.set(self.waits.get() + 1);
        let receiver = self.results.borrow().get(&execution).map(|s| s.subscribe());
        async move {
            let mut receiver =
                receiver.ok_or_else(|| HostError::new("not_found", "no such execution"))?;
            let result = receiver
                .wait_for(Option::is_some)
                .await
                .map_err(|_| HostError::new("gone", "the host stopped"))?;
            Ok(result.clone().expect("a result"))
        }
        .boxed_local()
    }

    fn pushed_result(
        &self,
        child: ExecutionId,
    ) -> Option<LocalBoxFuture<'static, Option<ExecutionResult>>> {
        let mut receiver = self.results.borrow().get(&child)?.subscribe();
        Some(
            async move {
                let result = receiver.wait_for(Option::is_some).await.ok()?;
                result.clone()
            }
            .boxed_local(),
        )
    }

    fn cancel(
        &self,
        execution: ExecutionId,
        _from: ExecutionId,
    ) -> LocalBoxFuture<'static, Result<(), HostError>> {
        self.cancelled.borrow_mut().push(execution);
        self.pool().abort(execution);
        self.finish(execution, ExecutionResult::Cancelled);
        async { Ok(()) }.boxed_local()
    }

    fn put_blob(&self, path: PathBuf) -> LocalBoxFuture<'static, Result<(String, u64), HostError>> {
        let dir = self.blobs.path().to_owned();
        async move {
            let bytes = tokio::fs::read(&path).await.map_err(io_error)?;
            let key = hex::encode(Sha256::digest(&bytes));
            tokio::fs::write(dir.join(&key), &bytes)
                .await
                .map_err(io_error)?;
            Ok((key, bytes.len() as u64))
        }
        .boxed_local()
    }

    fn get_blob(
        &self,
        key: String,
        target: PathBuf,
    ) -> LocalBoxFuture<'static, Result<(), HostError>> {
        let source = self.blobs.path().join(&key);
        async move {
            if let Some(parent) = target.parent() {
                tokio::fs::create_dir_all(parent).await.map_err(io_error)?;
            }
            tokio::fs::copy(&source, &target).await.map_err(io_error)?;
            Ok(())
        }
        .boxed_local()
    }

    fn put_asset(
        &self,
        asset: NewAsset,
    ) -> LocalBoxFuture<'static, Result<AssetRecord, HostError>> {
        let result = (|| {
            assets::validate_entries(asset.entries.keys().map(String::as_str))
                .map_err(|m| HostError::new("invalid_asset_path", m))?;
            for entry in asset.entries.values() {
                let size = std::fs::metadata(self.blobs.path().join(&entry.blob_key))
                    .map_err(|_| HostError::new("asset_blob_missing", entry.blob_key.clone()))?
                    .len();
                if size != entry.size {
                    return Err(HostError::new(
                        "asset_size_mismatch",
                        entry.blob_key.clone(),
                    ));
                }
            }
            let id = asset.id();
            let record = AssetRecord {
                summary: AssetSummary {
                    id: id.clone(),
                    name: asset.name.clone(),
                    count: asset.entries.len(),
                    size: asset.size(),
                },
                entries: asset.entries,
            };
            self.assets.borrow_mut().insert(id, record.clone());
            Ok(AssetRecord {
                entries: Default::default(),
                ..record
            })
        })();
        async move { result }.boxed_local()
    }

    fn get_asset(&self, id: String) -> LocalBoxFuture<'static, Result<AssetRecord, HostError>> {
        let found = self.assets.borrow().get(&id).cloned();
        async move { found.ok_or_else(|| HostError::new("asset_not_found", id)) }.boxed_local()
    }

    fn checkpoint(
        &self,
        execution: ExecutionId,
        set: Checkpoints,
        reset: Vec<String>,
    ) -> LocalBoxFuture<'static, Result<(), HostError>> {
        let mut states = self.checkpoints.borrow_mut();
        let state = states.entry(execution.step).or_default();
        for name in reset {
            state.remove(&name);
        }
        state.extend(set);
        async { Ok(()) }.boxed_local()
    }

    fn log(&self, execution: ExecutionId, record: LogRecord) {
        self.logs.borrow_mut().push((execution, record));
    }
}

/// Runs a test body on an actix system (as the agent runs).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    actix_rt::System::new().block_on(future)
}

/// An inline JSON value.
pub fn json_value(data: serde_json::Value) -> Value {
    Value::raw(data)
}

/// The value of a result, or a panic naming what it was.
pub fn value_of(result: &ExecutionResult) -> &Value {
    match result {
        ExecutionResult::Value { value } => value,
        other => panic!("expected a value, got {other:?}"),
    }
}

/// The directory of this crate.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

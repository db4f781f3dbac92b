//! Rust repositories as executor binaries: the agent runs them as it runs the Python adapter,
//! speaking the Coflux 0.12 executor protocol over stdio.
//!
//! ```ignore
//! fn main() -> std::process::ExitCode {
//!     coflux_core::sdk::executor::main(Repository::new().with(hello).with(greet))
//! }
//! ```
//!
//! - `BINARY discover [MODULE...]` prints the manifest (the targets of the given modules, or
//!   all) as one JSON line and exits; an unknown module is reported on stderr with exit code 1,
//!   as the Python adapter does for a module it cannot import.
//! - `BINARY execute` sends `ready` with `concurrent: true` (our extension: this process serves
//!   many executions, concurrently), then runs every `execute` it receives as a task with its
//!   own [`Context`], until stdin closes; it then finishes the running executions and exits.
//!   Child calls become `submit_execution` requests, awaiting one becomes a `select` on its
//!   handle. A panicking target reports a `coflux.Panic` error and the process carries on. An
//!   `abort` notification (our extension) drops the execution's future (and forgets its
//!   requests in flight).
//! - [`crate::sdk::suspend`] sends a `suspend` request with `execute_after` (epoch ms); once it
//!   is answered the execution reports nothing more: the worker ends it as suspended (and sends
//!   `abort`, which drops the future if it is still running).
//! - [`crate::sdk::progress`] and [`crate::sdk::Metric`] send `define_metric` (before a key's
//!   first point, and when its definition changes) and `metric` with an explicit `at`.
//! - [`crate::sdk::Asset`]s go through the agent as the Python SDK's do: `persist_asset`
//!   (`paths` for the files, `entries` for files uploaded first with `upload_blob` to carry
//!   extra metadata, or taken from other assets), `get_asset`, and `download_blob` into each
//!   restored file. Relative paths start in the execution's `working_dir` (see
//!   [`crate::sdk::working_dir`]).
//!
//! Values travel as JSON (over 64 KiB as temp files named `coflux_rs_*`, which the agent
//! removes). Fragments received from other executors keep their local path in place of a blob
//! key, so they pass through unchanged. The per-execution `working_dir` is not entered (the
//! process is shared): [`crate::sdk::working_dir`] gives it to the body.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{AbortHandle, Abortable, BoxFuture};
use serde_json::Value as Json;
use tokio::sync::{mpsc, oneshot};

use super::{
    Context, ExecutorLink, MetricEvent, Repository, Submission, SubmitRequest, with_assets,
};
use crate::model::{
    Checkpoints, ErrorInfo, ExecutionId, ExecutionResult, Frame, Millis, TargetRef, Value,
};
use crate::protocol::executor::{
    AdapterNotification, AdapterRequest, CheckpointUpdate, DefineMetric, Execute,
    ExecutionErrorParams, ExecutionParams, ExecutionResultParams, FromWorker, Handle, Manifest,
    MetricParams, PROTOCOL_VERSION, Ready, Response, ResponseError, Select, SelectResult,
    SelectStatus, SubmitExecution, SubmitResult, Suspend, TRANSFER_THRESHOLD, WireData, WireError,
    WireValue, WorkerNotification, parse_worker_line, reference_from_wire, reference_to_wire,
};

mod assets;

/// Runs a repository as an executor binary: call it from `main` (see the module docs).
pub fn main(repository: Repository) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("discover") => discover(&repository, &args[1..]),
        Some("execute") => execute(repository),
        _ => {
            eprintln!("usage: <binary> discover [MODULE...] | <binary> execute");
            ExitCode::from(2)
        }
    }
}

/// Prints the manifest of the targets in `modules` (and their submodules), or of all targets.
fn discover(repository: &Repository, modules: &[String]) -> ExitCode {
    let in_module =
        |module: &str, wanted: &str| module == wanted || module.starts_with(&format!("{wanted}."));
    let definitions: Vec<_> = repository
        .definitions()
        .into_iter()
        .filter(|d| modules.is_empty() || modules.iter().any(|m| in_module(&d.target.module, m)))
        .collect();
    let manifest = Manifest::from_definitions(&definitions);
    println!(
        "{}",
        serde_json::to_string(&manifest).unwrap_or_else(|_| "{\"targets\":[]}".into())
    );
    let unknown: Vec<&String> = modules
        .iter()
        .filter(|m| !definitions.iter().any(|d| in_module(&d.target.module, m)))
        .collect();
    if unknown.is_empty() {
        return ExitCode::SUCCESS;
    }
    for module in &unknown {
        eprintln!("Failed to import module '{module}': this repository has no such module");
    }
    ExitCode::from(1)
}

/// Serves executions over stdio until stdin closes.
fn execute(repository: Repository) -> ExitCode {
    // Lines are written straight from the runtime's thread (one write each: a hop through a
    // writer thread cost a thread wake-up per line), and read on it too (see `read_stdin`).
    let (lines_in, input) = mpsc::unbounded_channel::<String>();
    record_panic_locations();
    let link = StdioLink::new(Box::new(std::io::stdout()));
    actix_rt::System::new().block_on(async {
        read_stdin(lines_in);
        serve(repository, link.clone(), input).await;
    });
    link.close_output();
    ExitCode::SUCCESS
}

/// Feeds stdin's lines to `lines` until EOF. When stdin is a pipe (as the agent starts us) it
/// is read without blocking on the runtime's thread, so a line costs no thread wake-up;
/// otherwise a thread reads it.
fn read_stdin(lines: mpsc::UnboundedSender<String>) {
    use std::os::fd::AsFd;
    use tokio::io::AsyncBufReadExt;
    let pipe = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .and_then(tokio::net::unix::pipe::Receiver::from_owned_fd);
    match pipe {
        Ok(pipe) => {
            actix_rt::spawn(async move {
                let mut reader = tokio::io::BufReader::new(pipe).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if lines.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Err(_) => {
            std::thread::spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    let Ok(line) = line else { break };
                    if lines.send(line).is_err() {
                        break;
                    }
                }
            });
        }
    }
}

async fn serve(
    repository: Repository,
    link: StdioLink,
    mut input: mpsc::UnboundedReceiver<String>,
) {
    link.send(
        AdapterNotification::Ready(Ready {
            version: PROTOCOL_VERSION.into(),
            concurrent: true,
        })
        .to_line(),
    );
    let running: Arc<Mutex<HashMap<String, AbortHandle>>> = Arc::default();
    let mut tasks = Vec::new();
    let mut swept_at = 64;
    while let Some(line) = input.recv().await {
        match parse_worker_line(&line) {
            Ok(FromWorker::Response(response)) => link.resolve(response),
            Ok(FromWorker::Notification(WorkerNotification::Execute(execute))) => {
                let (handle, registration) = AbortHandle::new_pair();
                let id = execute.execution_id.clone();
                lock(&running).insert(id.clone(), handle);
                let job = run(repository.clone(), link.clone(), execute);
                let running = Arc::clone(&running);
                // Forget finished tasks once the list doubled since the last sweep (a sweep
                // per execution cost the number running, a thousand in a wide fan-out).
                if tasks.len() >= swept_at * 2 {
                    tasks.retain(|t: &tokio::task::JoinHandle<()>| !t.is_finished());
                    swept_at = tasks.len().max(64);
                }
                tasks.push(actix_rt::spawn(async move {
                    let _ = Abortable::new(job, registration).await;
                    lock(&running).remove(&id);
                }));
            }
            Ok(FromWorker::Notification(WorkerNotification::Abort(abort))) => {
                if let Some(handle) = lock(&running).remove(&abort.execution_id) {
                    handle.abort();
                }
            }
            Ok(FromWorker::Notification(other)) => {
                eprintln!(
                    "coflux executor: ignoring '{}' (not supported)",
                    other.method()
                );
            }
            Err(error) => eprintln!("coflux executor: ignoring a line from the worker: {error}"),
        }
    }
    // Stdin closed: no more responses can arrive. Fail what waits for one, finish the rest.
    link.close_requests();
    futures::future::join_all(tasks).await;
}

/// Runs one execution and reports its outcome.
async fn run(repository: Repository, link: StdioLink, execute: Execute) {
    let execution_id = execute.execution_id.clone();
    let working_dir = execute.working_dir.clone().map(PathBuf::from);
    let outcome = match prepare(&repository, execute) {
        Err(error) => Err(error),
        Ok((execution, target, arguments, checkpoints)) => {
            let context = Context::new(execution, Arc::new(link.clone()))
                .with_working_dir(working_dir)
                .with_checkpoints(checkpoints);
            let body = context.clone().scope(target.invoke(arguments));
            let outcome = AssertUnwindSafe(with_assets(Arc::new(link.clone()), body))
                .catch_unwind()
                .await;
            if context.suspension().is_some() {
                // The worker accepted the suspension and ends the execution itself (it also
                // sends `abort`, which may already have dropped this task): report nothing.
                return;
            }
            match outcome {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(failure)) => Err(failure.0),
                Err(panic) => Err(ErrorInfo {
                    frames: PANIC_LOCATION
                        .with(|l| l.borrow_mut().take())
                        .into_iter()
                        .collect(),
                    ..ErrorInfo::new("coflux.Panic", panic_message(&*panic))
                }),
            }
        }
    };
    let notification = match outcome.and_then(|v| value_to_wire(&v).map_err(encode_error)) {
        Ok(result) => AdapterNotification::ExecutionResult(ExecutionResultParams {
            execution_id,
            result: Some(result),
        }),
        Err(error) => AdapterNotification::ExecutionError(ExecutionErrorParams {
            execution_id,
            error: WireError::from_error_info(&error),
        }),
    };
    link.send(notification.to_line());
}

type Prepared = (ExecutionId, Arc<dyn super::Target>, Vec<Value>, Checkpoints);

fn prepare(repository: &Repository, execute: Execute) -> Result<Prepared, ErrorInfo> {
    let execution = execute
        .execution_id
        .parse::<ExecutionId>()
        .map_err(|e| ErrorInfo::new("coflux.InvalidExecution", e.to_string()))?;
    let target_ref = TargetRef::new(execute.module, execute.target);
    let target = repository.get(&target_ref).ok_or_else(|| {
        ErrorInfo::new(
            "coflux.TargetNotFound",
            format!("this repository has no target {target_ref}"),
        )
    })?;
    let arguments = execute
        .arguments
        .into_iter()
        .map(value_from_wire)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ErrorInfo::new("coflux.DecodeError", e))?;
    let checkpoints = execute
        .checkpoints
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| Ok((name, value_from_wire(value)?)))
        .collect::<Result<Checkpoints, String>>()
        .map_err(|e| ErrorInfo::new("coflux.DecodeError", format!("checkpoint: {e}")))?;
    Ok((execution, target, arguments, checkpoints))
}

thread_local! {
    /// Where the last panic on this thread happened (executions run on the runtime's one
    /// thread, so it is read right after the panic is caught).
    static PANIC_LOCATION: std::cell::RefCell<Option<Frame>> = const { std::cell::RefCell::new(None) };
}

/// Keeps the default panic report (on stderr, which the agent logs) and also records the
/// panic's location, which becomes the error's frame.
fn record_panic_locations() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Some(location) = info.location() {
            let frame = Frame {
                file: location.file().to_owned(),
                line: location.line(),
                name: "panic".into(),
                code: None,
            };
            PANIC_LOCATION.with(|l| *l.borrow_mut() = Some(frame));
        }
        report(info);
    }));
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".into())
}

fn encode_error(message: String) -> ErrorInfo {
    ErrorInfo::new("coflux.EncodeError", message)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A wire value from the worker as a model value: files are read (this executor decodes JSON
/// only), fragments keep their local path as their key.
fn value_from_wire(wire: WireValue) -> Result<Value, String> {
    let references = wire
        .references
        .into_iter()
        .map(|r| reference_from_wire::<std::convert::Infallible>(r).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let data = match wire.data {
        WireData::Inline { format, value } if format == "json" => value,
        WireData::File { format, path } if format == "json" => {
            let bytes = std::fs::read(&path)
                .map_err(|e| format!("could not read {}: {e}", path.display()))?;
            serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is not JSON: {e}", path.display()))?
        }
        WireData::Inline { format, .. } | WireData::File { format, .. } => {
            return Err(format!(
                "values in format '{format}' cannot be read by a Rust target"
            ));
        }
    };
    Ok(Value::Raw { data, references })
}

/// A model value as a wire value; data over [`TRANSFER_THRESHOLD`] goes to a temp file.
fn value_to_wire(value: &Value) -> Result<WireValue, String> {
    let Value::Raw { data, references } = value else {
        return Err("blob values cannot be sent from a Rust executor".into());
    };
    let references = references.iter().map(reference_to_wire).collect();
    let text = data.to_string();
    if text.len() <= TRANSFER_THRESHOLD {
        return Ok(WireValue::inline(data.clone(), references));
    }
    static SPILLED: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "coflux_rs_{}_{}",
        std::process::id(),
        SPILLED.fetch_add(1, Ordering::Relaxed)
    );
    let path: PathBuf = std::env::temp_dir().join(name);
    std::fs::write(&path, text).map_err(|e| format!("could not write {}: {e}", path.display()))?;
    Ok(WireValue::file(path, references))
}

/// The [`ExecutorLink`] over stdio: requests are written to stdout, responses come back by id
/// from the input loop.
#[derive(Clone)]
struct StdioLink(Arc<LinkInner>);

type Pending = oneshot::Sender<Result<Json, ResponseError>>;

/// The code of the error a request gets when no answer can come.
const CLOSED: &str = "closed";

struct LinkInner {
    /// Stdout (`None` once closed, or after a write failed).
    output: Mutex<Option<Box<dyn Write + Send>>>,
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    closed: AtomicBool,
}

impl StdioLink {
    fn new(output: Box<dyn Write + Send>) -> Self {
        Self(Arc::new(LinkInner {
            output: Mutex::new(Some(output)),
            pending: Mutex::default(),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
        }))
    }

    /// Writes one line (with its newline, in one write) and flushes it.
    fn send(&self, mut line: String) {
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
    fn request(&self, request: AdapterRequest) -> BoxFuture<'static, Result<Json, String>> {
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
    fn call(&self, request: AdapterRequest) -> BoxFuture<'static, Result<Json, ResponseError>> {
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

    fn resolve(&self, response: Response) {
        if let Some(reply) = lock(&self.0.pending).remove(&response.id) {
            let _ = reply.send(response.result);
        }
    }

    /// Fails the requests waiting for a response, and any later ones.
    fn close_requests(&self) {
        self.0.closed.store(true, Ordering::Release);
        lock(&self.0.pending).clear();
    }

    fn close_output(&self) {
        lock(&self.0.output).take();
    }

    /// `select` on one execution (suspend allowed), as the final result of its chain.
    fn select(
        &self,
        execution: ExecutionId,
        from: ExecutionId,
    ) -> BoxFuture<'static, ExecutionResult> {
        let reply = self.request(AdapterRequest::Select(Select {
            execution_id: from.to_string(),
            handles: vec![Handle::execution(execution.to_string())],
            suspend: true,
            timeout_ms: None,
            cancel_remaining: false,
        }));
        async move {
            let failed = |message: String| ExecutionResult::Error {
                error: ErrorInfo::new("coflux.WaitError", message),
                retry: None,
            };
            match reply.await {
                Err(e) => failed(e),
                Ok(Json::Null) => {
                    failed("the worker gave no result (the wait was suspended)".into())
                }
                Ok(json) => match serde_json::from_value::<SelectResult>(json) {
                    Err(e) => failed(format!("unexpected select result: {e}")),
                    Ok(result) => select_outcome(result).unwrap_or_else(failed),
                },
            }
        }
        .boxed()
    }
}

/// Removes a request's entry when its future is dropped (answered or not).
struct Forget(StdioLink, u64);

impl Drop for Forget {
    fn drop(&mut self) {
        lock(&self.0.0.pending).remove(&self.1);
    }
}

fn select_outcome(result: SelectResult) -> Result<ExecutionResult, String> {
    match result.status {
        SelectStatus::Ok => {
            let value = result.value.unwrap_or_else(WireValue::null);
            Ok(ExecutionResult::Value {
                value: value_from_wire(value)?,
            })
        }
        SelectStatus::Error => {
            let error = result.error.ok_or("an error result without its error")?;
            Ok(ExecutionResult::Error {
                error: error.to_error_info(),
                retry: None,
            })
        }
        other => other
            .to_result()
            .ok_or_else(|| format!("unexpected status {other:?}")),
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
        let result = async move { Ok(link.select(child.await?, parent).await) };
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
        self.select(execution, from)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn large_values_spill_to_files_and_read_back() {
        let small = Value::raw(json!([1, 2, 3]));
        let wire = value_to_wire(&small).unwrap();
        assert!(matches!(wire.data, WireData::Inline { .. }));
        assert_eq!(value_from_wire(wire).unwrap(), small);

        let big = Value::raw(json!("x".repeat(TRANSFER_THRESHOLD + 1)));
        let wire = value_to_wire(&big).unwrap();
        let WireData::File { path, .. } = &wire.data else {
            panic!("expected a file");
        };
        let path = path.clone();
        assert_eq!(value_from_wire(wire).unwrap(), big);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn select_results_map_to_execution_results() {
        let ok: SelectResult = serde_json::from_value(json!({"winner":0,"status":"ok","value":{"type":"inline","format":"json","value":6,"references":[]}})).unwrap();
        assert_eq!(
            select_outcome(ok).unwrap(),
            ExecutionResult::Value {
                value: Value::raw(json!(6))
            }
        );
        let error: SelectResult = serde_json::from_value(json!({"winner":0,"status":"error","error":{"type":"builtins.ValueError","message":"bad","traceback":"  File \"f.py\", line 2, in g\n    boom()\n"}})).unwrap();
        let ExecutionResult::Error { error, .. } = select_outcome(error).unwrap() else {
            panic!()
        };
        assert_eq!(error.error_type, "builtins.ValueError");
        assert_eq!(error.frames[0].line, 2);
        let cancelled: SelectResult =
            serde_json::from_value(json!({"winner":1,"status":"cancelled"})).unwrap();
        assert_eq!(
            select_outcome(cancelled).unwrap(),
            ExecutionResult::Cancelled
        );
    }
}

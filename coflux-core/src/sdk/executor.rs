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
//!   own [`crate::sdk::Context`], until stdin closes; it then finishes the running executions
//!   and exits. How an execution runs (panics, suspension, assets) is the driver's
//!   (`sdk::invoke`), as in the embedded worker; timeouts are the agent's.
//!   Child calls become `submit_execution` requests, awaiting one becomes a `select` on its
//!   handle (with `timeout_ms` inside a [`crate::sdk::suspense`]: when it runs out the worker
//!   suspends the execution and answers `null`). Stream operations go as `stream_op`
//!   requests, also after the result while a producer appends. A panicking target reports a `coflux.Panic` error and the process carries on. An
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

use std::collections::HashMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use futures::future::{AbortHandle, Abortable};
use tokio::sync::mpsc;

use super::invoke::{Ending, Invocation, invoke};
use super::{AssetHost, Repository};
use crate::model::{Checkpoints, ErrorInfo, ExecutionId, TargetRef};
use crate::protocol::executor::{
    AdapterNotification, Execute, ExecutionErrorParams, ExecutionResultParams, FromWorker,
    Manifest, PROTOCOL_VERSION, Ready, WireError, WorkerNotification, parse_worker_line,
};

mod assets;
mod stdio;
mod wire;

use stdio::StdioLink;
use wire::{lock, value_from_wire, value_to_wire};

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
            push_results: true,
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
                let forget = link.clone();
                tasks.push(actix_rt::spawn(async move {
                    let _ = Abortable::new(job, registration).await;
                    lock(&running).remove(&id);
                    forget.forget_pushed(&id);
                }));
            }
            Ok(FromWorker::Notification(WorkerNotification::ExecutionResolved(resolved))) => {
                link.push_result(resolved);
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

/// Runs one execution through the driver and reports how it ended.
async fn run(repository: Repository, link: StdioLink, execute: Execute) {
    let execution_id = execute.execution_id.clone();
    let report = |ending| {
        let outcome = match ending {
            Ending::Value(value) => value_to_wire(&value).map_err(encode_error),
            Ending::Error(error) => Err(error),
            // The worker accepted the suspension and ends the execution itself (it also sends
            // `abort`, which may already have dropped this task): report nothing.
            Ending::Suspended(_) => return,
            // The agent enforces timeouts (no limit is given to the driver here).
            Ending::Timeout => return,
        };
        let notification = match outcome {
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
    };
    match prepare(execute) {
        Err(error) => report(Ending::Error(error)),
        Ok(invocation) => {
            let assets: Arc<dyn AssetHost> = Arc::new(link.clone());
            let invocation = Invocation {
                assets: Some(assets),
                ..invocation
            };
            invoke(&repository, Arc::new(link.clone()), invocation, report).await;
        }
    }
}

/// The invocation an `execute` asks for (its wire values decoded).
fn prepare(execute: Execute) -> Result<Invocation, ErrorInfo> {
    let execution = execute
        .execution_id
        .parse::<ExecutionId>()
        .map_err(|e| ErrorInfo::new("coflux.InvalidExecution", e.to_string()))?;
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
    Ok(Invocation {
        execution,
        target: TargetRef::new(execute.module, execute.target),
        arguments,
        checkpoints,
        working_dir: execute.working_dir.map(PathBuf::from),
        timeout: None,
        assets: None,
    })
}

fn encode_error(message: String) -> ErrorInfo {
    ErrorInfo::new("coflux.EncodeError", message)
}

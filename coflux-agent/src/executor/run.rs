//! One execution in the pool: wait for a slot and a process, send `execute`, wait for the
//! outcome (result, error, process exit, timeout or stop), clean up.

use std::rc::Rc;
use std::time::Duration;

use coflux_core::model::{ErrorInfo, ExecutionId, ExecutionResult, StreamClosure};
use coflux_core::protocol::executor::{Abort, Execute, WireValue, WorkerNotification};
use tokio::sync::oneshot;
use tracing::Instrument;

use super::context::ExecutionContext;
use super::ending::{Ending, Suspension};
use super::error::{EXECUTOR_ERROR, PoolError};
use super::host::LogRecord;
use super::pool::{Assignment, ExecutorPool, Stop};
use super::process::{Exit, Process, Terminal};
use super::values;

/// Log level of errors (5).
const LOG_ERROR: u8 = 5;

enum Outcome {
    Suspended(Suspension),
    Reported(Terminal),
    Exited(Exit),
    TimedOut,
    Stopped(Stop),
}

impl ExecutorPool {
    /// Runs an execution and gives its result: a value, an error, a crash (the process exited
    /// without reporting; the cause is logged), or a timeout. Waits for a
    /// slot when `concurrency` executions are running.
    pub async fn execute(&self, assignment: Assignment) -> Result<Ending, PoolError> {
        let span = tracing::info_span!("execution", execution = %assignment.execution, target = %assignment.target);
        run(self, assignment).instrument(span).await
    }
}

async fn run(pool: &ExecutorPool, assignment: Assignment) -> Result<Ending, PoolError> {
    let execution = assignment.execution;
    let mut stopped = pool.admit(execution)?;
    let result = attempt(pool, assignment, &mut stopped).await;
    pool.release(execution);
    result
}

fn stop_error(stop: Stop) -> PoolError {
    match stop {
        Stop::Abort => PoolError::Aborted,
        Stop::Shutdown => PoolError::Closed,
    }
}

fn failed(error_type: &str, message: String) -> ExecutionResult {
    ExecutionResult::Error {
        error: ErrorInfo::new(error_type, message),
        retry: None,
    }
}

async fn attempt(
    pool: &ExecutorPool,
    assignment: Assignment,
    stopped: &mut oneshot::Receiver<Stop>,
) -> Result<Ending, PoolError> {
    let permit = tokio::select! {
        permit = pool.slot() => permit?,
        stop = &mut *stopped => return Err(stop_error(stop.unwrap_or(Stop::Abort))),
    };
    let process = pool.checkout().await?;
    if let Ok(stop) = stopped.try_recv() {
        pool.give_back(process);
        return Err(stop_error(stop));
    }
    pool.top_up();
    // A single-use executor changes into its working directory, so it must exist; a
    // concurrent one does not (the Rust SDK creates it on first use).
    let scratch = match pool.scratch().and_then(|s| {
        if process.is_concurrent() {
            Ok(s)
        } else {
            s.create_work().map(|()| s)
        }
    }) {
        Ok(scratch) => scratch,
        Err(e) => {
            pool.give_back(process);
            return Ok(Ending::Result(failed(
                EXECUTOR_ERROR,
                format!("could not create a working directory: {e}"),
            )));
        }
    };
    let host = pool.host();
    let mut arguments = Vec::with_capacity(assignment.arguments.len());
    for (index, argument) in assignment.arguments.iter().enumerate() {
        match values::to_wire(host, argument, &scratch.values).await {
            Ok(argument) => arguments.push(argument),
            Err(e) => {
                pool.give_back(process);
                return Ok(Ending::Result(failed(
                    EXECUTOR_ERROR,
                    format!("could not fetch argument {index}: {e}"),
                )));
            }
        }
    }

    let mut checkpoints = std::collections::BTreeMap::new();
    for (name, value) in &assignment.checkpoints {
        match values::to_wire(host, value, &scratch.values).await {
            Ok(value) => {
                checkpoints.insert(name.clone(), value);
            }
            Err(e) => {
                pool.give_back(process);
                return Ok(Ending::Result(failed(
                    EXECUTOR_ERROR,
                    format!("could not fetch checkpoint '{name}': {e}"),
                )));
            }
        }
    }

    let execution = assignment.execution;
    let context = ExecutionContext::new(
        execution,
        scratch.values.clone(),
        pool.lender(process.is_concurrent()),
    );
    let terminal = process.register(Rc::clone(&context));
    let execute = WorkerNotification::Execute(Execute {
        execution_id: execution.to_string(),
        module: assignment.target.module,
        target: assignment.target.name,
        arguments,
        working_dir: Some(scratch.work.to_string_lossy().into_owned()),
        streams: assignment
            .streams
            .and_then(|streams| serde_json::to_value(streams).ok()),
        checkpoints: (!checkpoints.is_empty()).then_some(checkpoints),
    });
    process.send(execute.to_line());
    tracing::debug!(process = process.id, pid = ?process.pid, "execution sent");

    let timeout = assignment.timeout_ms.filter(|ms| *ms > 0);
    let deadline = async move {
        match timeout {
            Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        biased;
        // First: a process told to end after suspending may report an error meanwhile.
        suspension = context.suspended() => Outcome::Suspended(suspension),
        terminal = terminal => match terminal {
            Ok(terminal) => Outcome::Reported(terminal),
            Err(_) => Outcome::Exited(process.wait_exit().await),
        },
        exit = process.wait_exit() => Outcome::Exited(exit),
        stop = &mut *stopped => Outcome::Stopped(stop.unwrap_or(Stop::Abort)),
        () = deadline => Outcome::TimedOut,
    };
    let result = match outcome {
        Outcome::Suspended(suspension) => {
            tracing::info!(?suspension, "execution suspended");
            stop(&process, execution);
            Ok(Ending::Suspended(suspension))
        }
        Outcome::Reported(Terminal::Result(value)) => {
            let value = value.unwrap_or_else(WireValue::null);
            Ok(Ending::Result(
                match values::from_wire(host, value, &context.scratch).await {
                    Ok(value) => ExecutionResult::Value { value },
                    Err(e) => failed(EXECUTOR_ERROR, format!("could not store the result: {e}")),
                },
            ))
        }
        Outcome::Reported(Terminal::Error(error)) => Ok(Ending::Result(ExecutionResult::Error {
            error: error.to_error_info(),
            retry: None,
        })),
        Outcome::Exited(exit) => {
            tracing::warn!(status = %exit.status, "executor exited without a result");
            // The result kind carries no text: the cause goes to the execution's log.
            let mut message = format!(
                "the executor exited ({}) without reporting a result",
                exit.status
            );
            if !exit.stderr.is_empty() {
                message.push_str(&format!("; its last output on stderr:\n{}", exit.stderr));
            }
            host.log(execution, LogRecord::text(LOG_ERROR, message));
            Ok(Ending::Result(ExecutionResult::Crashed { retry: None }))
        }
        Outcome::TimedOut => {
            tracing::info!(timeout_ms = ?timeout, "execution timed out");
            stop(&process, execution);
            Ok(Ending::Result(ExecutionResult::Timeout { retry: None }))
        }
        Outcome::Stopped(reason) => {
            tracing::info!(?reason, "execution stopped");
            stop(&process, execution);
            Err(stop_error(reason))
        }
    };
    // Its checkpoint writes land before how it ended (the next attempt starts from them).
    if result.is_ok()
        && let Err(e) = context.checkpoints.flush().await
    {
        tracing::warn!(%execution, error = %e, "checkpoint writes lost");
    }
    // A producer that returned goes on appending to its streams after its result: its
    // process (and slot) stay until they are closed.
    let streaming = context.streams.producing()
        && matches!(result, Ok(Ending::Result(ExecutionResult::Value { .. })));
    if !streaming {
        context.streams.stop();
        process.unregister(execution);
    }
    if process.is_concurrent() {
        // A shared process: the slot is free at once; an execution still feeding its streams
        // stays registered (its stream operations are answered) until they are closed.
        drop((scratch, permit));
        pool.settle();
        if streaming {
            let host = Rc::clone(host);
            actix_rt::spawn(async move {
                tokio::select! {
                    () = context.streams.drained() => {}
                    _ = process.wait_exit() => {
                        context.streams.end_direct(&host, StreamClosure::Crashed).await;
                    }
                }
                context.streams.stop();
                process.unregister(execution);
            });
        }
    } else {
        // One execution per process: it exits by itself after its result. Its slot and its
        // directory are held until it has.
        let grace = pool.config().exit_grace;
        let settle = pool.clone();
        let host = Rc::clone(host);
        actix_rt::spawn(async move {
            if streaming {
                tokio::select! {
                    biased;
                    suspension = context.suspended() => {
                        // Suspended from a generator body: its checkpoint writes land first,
                        // then its streams wait for the attempt that continues them.
                        if let Err(e) = context.checkpoints.flush().await {
                            tracing::warn!(%execution, error = %e, "checkpoint writes lost");
                        }
                        context.streams.pause(&host, suspension.execute_after).await;
                        process.kill();
                    }
                    () = context.streams.drained() => {}
                    _ = process.wait_exit() => {
                        // Streams still open when the process has gone end as crashed.
                        context.streams.end(StreamClosure::Crashed);
                    }
                }
                context.streams.stop();
                process.unregister(execution);
            }
            process.reap(grace).await;
            drop((scratch, permit));
            settle.settle();
        });
    }
    pool.top_up();
    result
}

/// Ends an execution early: a single-use process is killed, a concurrent one told to abort it.
fn stop(process: &Process, execution: ExecutionId) {
    if process.is_concurrent() {
        let abort = WorkerNotification::Abort(Abort {
            execution_id: execution.to_string(),
        });
        process.send(abort.to_line());
    } else {
        process.kill();
    }
}

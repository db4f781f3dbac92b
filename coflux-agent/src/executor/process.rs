//! One executor process: its stdio tasks, and the routing of what it writes (results to the
//! waiting execution, requests to handlers running concurrently, logs and metrics to the host).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use coflux_core::model::ExecutionId;
use coflux_core::protocol::executor::{
    AdapterNotification, AdapterRequest, ExecutionResolved, FromAdapter, LineError,
    PROTOCOL_VERSION, Ready, Response, ResponseError, WireError, WireValue, WorkerNotification,
    parse_adapter_line,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;

use super::context::ExecutionContext;
use super::error::PoolError;
use super::host::{ExecutorHost, LogRecord};
use super::launch::Launched;
use super::{logs, metrics, requests, select};

/// How many stderr lines are kept for crash reports.
const STDERR_TAIL: usize = 20;
/// Lines queued for an executor's stdin are written together up to about this many bytes.
const STDIN_BATCH_BYTES: usize = 64 * 1024;

/// What ends an execution, as the executor reported it.
#[derive(Debug)]
pub(crate) enum Terminal {
    /// `execution_result` (`None`: null).
    Result(Option<WireValue>),
    /// `execution_error`.
    Error(WireError),
}

struct Slot {
    terminal: Option<oneshot::Sender<Terminal>>,
    context: Rc<ExecutionContext>,
}

/// How a process ended.
#[derive(Debug, Clone)]
pub(crate) struct Exit {
    /// Its exit status, as text.
    pub(crate) status: String,
    /// Its last stderr lines.
    pub(crate) stderr: String,
}

#[derive(Default)]
struct State {
    ready: Option<oneshot::Sender<Ready>>,
    concurrent: bool,
    /// It takes `execution_resolved` notifications (see [`Process::push_result`]).
    push_results: bool,
    executions: HashMap<String, Slot>,
    stderr_tail: VecDeque<String>,
}

/// A running executor process.
pub(crate) struct Process {
    /// The pool's number for it.
    pub(crate) id: u64,
    /// Its OS process id.
    pub(crate) pid: Option<u32>,
    stdin: RefCell<Option<mpsc::UnboundedSender<String>>>,
    kill: RefCell<Option<oneshot::Sender<()>>>,
    exit: watch::Receiver<Option<Exit>>,
    state: RefCell<State>,
    host: Rc<dyn ExecutorHost>,
}

impl Process {
    /// Takes over a started executor process (named `command` in errors) and waits for its
    /// `ready`.
    pub(crate) async fn start(
        id: u64,
        launched: Launched,
        command: &str,
        host: Rc<dyn ExecutorHost>,
        ready_timeout: Duration,
    ) -> Result<Rc<Self>, PoolError> {
        let Launched {
            stdin,
            stdout,
            stderr,
            pid,
            mut handle,
        } = launched;
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stdin_tx, stdin_rx) = mpsc::unbounded_channel();
        let (kill_tx, kill_rx) = oneshot::channel();
        let (exit_tx, exit_rx) = watch::channel(None);
        let process = Rc::new(Self {
            id,
            pid,
            stdin: RefCell::new(Some(stdin_tx)),
            kill: RefCell::new(Some(kill_tx)),
            exit: exit_rx,
            state: RefCell::new(State {
                ready: Some(ready_tx),
                ..State::default()
            }),
            host,
        });
        tracing::debug!(process = id, pid = ?process.pid, %command, "executor started");
        actix_rt::spawn(write_stdin(stdin, stdin_rx));
        let (stdout_done, stdout_done_rx) = oneshot::channel::<()>();
        let (stderr_done, stderr_done_rx) = oneshot::channel::<()>();
        let reader = Rc::clone(&process);
        actix_rt::spawn(async move {
            read_lines(stdout, |line| reader.on_line(line)).await;
            let _ = stdout_done.send(());
        });
        let reader = Rc::clone(&process);
        actix_rt::spawn(async move {
            read_lines(stderr, |line| reader.on_stderr(line)).await;
            let _ = stderr_done.send(());
        });
        let watcher = Rc::downgrade(&process);
        actix_rt::spawn(async move {
            let status = tokio::select! {
                status = handle.wait() => status,
                _ = kill_rx => {
                    handle.start_kill();
                    handle.wait().await
                }
            };
            // Let the readers finish, so every line is handled before the exit is seen.
            let readers = futures::future::join(stdout_done_rx, stderr_done_rx);
            let _ = tokio::time::timeout(Duration::from_secs(1), readers).await;
            let stderr = watcher
                .upgrade()
                .map(|p| p.stderr_tail())
                .unwrap_or_default();
            let exit = Exit { status, stderr };
            tracing::debug!(process = id, status = %exit.status, "executor exited");
            exit_tx.send_replace(Some(exit));
        });

        let wait_exit = process.wait_exit();
        let ready = tokio::time::timeout(ready_timeout, async {
            tokio::select! {
                ready = ready_rx => ready.ok(),
                _ = wait_exit => None,
            }
        });
        match ready.await {
            Ok(Some(ready)) => {
                if ready.version != PROTOCOL_VERSION {
                    tracing::warn!(process = id, version = %ready.version, expected = PROTOCOL_VERSION, "executor speaks another protocol version; carrying on");
                }
                Ok(process)
            }
            Ok(None) => {
                let exit = process.wait_exit().await;
                Err(PoolError::Spawn {
                    command: command.to_owned(),
                    message: format!(
                        "exited ({}) before it was ready:\n{}",
                        exit.status, exit.stderr
                    ),
                })
            }
            Err(_) => {
                process.kill();
                Err(PoolError::Spawn {
                    command: command.to_owned(),
                    message: format!("not ready after {ready_timeout:?}"),
                })
            }
        }
    }

    /// Whether it announced `concurrent: true` (serves many executions at once).
    pub(crate) fn is_concurrent(&self) -> bool {
        self.state.borrow().concurrent
    }

    /// Whether it has exited.
    pub(crate) fn has_exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// Resolves once it has exited (and its output has been handled).
    pub(crate) async fn wait_exit(&self) -> Exit {
        let mut exit = self.exit.clone();
        match exit.wait_for(Option::is_some).await {
            Ok(exit) => exit.clone().unwrap_or_else(unknown_exit),
            Err(_) => unknown_exit(),
        }
    }

    /// Writes a line to its stdin (false if stdin is closed).
    pub(crate) fn send(&self, line: String) -> bool {
        match self.stdin.borrow().as_ref() {
            Some(stdin) => stdin.send(line).is_ok(),
            None => false,
        }
    }

    /// Closes its stdin: an idle executor exits, a concurrent one finishes its executions and
    /// exits.
    pub(crate) fn close_stdin(&self) {
        self.stdin.borrow_mut().take();
    }

    /// Kills it.
    pub(crate) fn kill(&self) {
        if let Some(kill) = self.kill.borrow_mut().take() {
            let _ = kill.send(());
        }
    }

    /// Waits up to `grace` for it to exit, then kills it.
    pub(crate) async fn reap(&self, grace: Duration) {
        if tokio::time::timeout(grace, self.wait_exit()).await.is_err() {
            tracing::warn!(
                process = self.id,
                "executor did not exit in {grace:?}; killing it"
            );
            self.kill();
            self.wait_exit().await;
        }
    }

    /// Routes its messages about `context`'s execution to it; the receiver gets the result.
    pub(crate) fn register(&self, context: Rc<ExecutionContext>) -> oneshot::Receiver<Terminal> {
        let (terminal, receiver) = oneshot::channel();
        let slot = Slot {
            terminal: Some(terminal),
            context: Rc::clone(&context),
        };
        let key = context.execution.to_string();
        let writer = self.stdin.borrow().as_ref().map(|s| s.downgrade());
        context.streams.attach(writer);
        self.state.borrow_mut().executions.insert(key, slot);
        receiver
    }

    /// Stops routing messages about `execution`; later ones are ignored.
    pub(crate) fn unregister(&self, execution: ExecutionId) {
        let slot = self
            .state
            .borrow_mut()
            .executions
            .remove(&execution.to_string());
        if let Some(slot) = slot {
            slot.context.finish();
        }
    }

    fn stderr_tail(&self) -> String {
        let state = self.state.borrow();
        state
            .stderr_tail
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn context(&self, execution_id: &str) -> Option<Rc<ExecutionContext>> {
        let state = self.state.borrow();
        state
            .executions
            .get(execution_id)
            .map(|s| Rc::clone(&s.context))
    }

    /// The execution that output without an execution id belongs to: the only one running.
    fn sole_execution(&self) -> Option<ExecutionId> {
        let state = self.state.borrow();
        match state.executions.values().collect::<Vec<_>>()[..] {
            [slot] => Some(slot.context.execution),
            _ => None,
        }
    }

    fn on_stderr(&self, line: String) {
        tracing::info!(process = self.id, pid = ?self.pid, "executor stderr: {line}");
        {
            let mut state = self.state.borrow_mut();
            if state.stderr_tail.len() == STDERR_TAIL {
                state.stderr_tail.pop_front();
            }
            state.stderr_tail.push_back(line.clone());
        }
        if let Some(execution) = self.sole_execution() {
            self.host.log(execution, LogRecord::text(3, line));
        }
    }

    fn on_line(self: &Rc<Self>, line: String) {
        match parse_adapter_line(&line) {
            Ok(FromAdapter::Notification(notification)) => self.on_notification(notification),
            Ok(FromAdapter::Request { id, request }) => self.on_request(id, request),
            Err(LineError::NotJson) => {
                tracing::debug!(process = self.id, "executor stdout: {line}");
                if let Some(execution) = self.sole_execution() {
                    self.host.log(execution, LogRecord::text(1, line));
                }
            }
            Err(error) => {
                tracing::warn!(process = self.id, %error, "unhandled executor message");
                if let Some(response) = error.response() {
                    self.send(response.to_line());
                }
            }
        }
    }

    fn on_notification(&self, notification: AdapterNotification) {
        let context = notification.execution_id().and_then(|id| self.context(id));
        let execution = context.as_ref().map(|c| c.execution);
        match notification {
            AdapterNotification::Ready(ready) => {
                let mut state = self.state.borrow_mut();
                state.concurrent = ready.concurrent;
                state.push_results = ready.push_results;
                if let Some(sender) = state.ready.take() {
                    let _ = sender.send(ready);
                }
            }
            AdapterNotification::ExecutionResult(p) => {
                self.terminate(&p.execution_id, Terminal::Result(p.result))
            }
            AdapterNotification::ExecutionError(p) => {
                self.terminate(&p.execution_id, Terminal::Error(p.error))
            }
            AdapterNotification::Log(params) => match context {
                Some(context) => logs::forward(&self.host, &context, params),
                None => {
                    tracing::debug!(process = self.id, execution = %params.execution_id, "log of an execution not running here; dropped")
                }
            },
            AdapterNotification::RegisterGroup(p) => {
                tracing::debug!(execution = ?execution, group = p.group_id, name = ?p.name, "group registered");
                if let (Some(context), Some(name)) = (&context, p.name) {
                    context.register_group(p.group_id, name);
                }
            }
            AdapterNotification::DefineMetric(p) => match context {
                Some(context) => metrics::define(&self.host, &context.metrics, p),
                None => {
                    tracing::debug!(execution = %p.execution_id, "metric of an execution not running here; dropped")
                }
            },
            AdapterNotification::Metric(p) => match context {
                Some(context) => metrics::record(&self.host, &context.metrics, p),
                None => {
                    tracing::debug!(execution = %p.execution_id, "metric of an execution not running here; dropped")
                }
            },
            AdapterNotification::CheckpointUpdate(p) => match context {
                Some(context) => context.checkpoints.update(&self.host, p),
                None => {
                    tracing::warn!(execution = %p.execution_id, "checkpoint of an execution not running here; dropped")
                }
            },
            AdapterNotification::StreamAppend(p) => match context {
                Some(context) => context.streams.append(p),
                None => {
                    tracing::debug!(execution = %p.execution_id, "stream item of an execution not running here; dropped")
                }
            },
            AdapterNotification::StreamClose(p) => match context {
                Some(context) => context.streams.close(p),
                None => {
                    tracing::debug!(execution = %p.execution_id, "stream close of an execution not running here; dropped")
                }
            },
            AdapterNotification::StreamSubscribe(p) => match context {
                Some(context) => context.streams.subscribe(&self.host, p),
                None => {
                    tracing::debug!(execution = %p.execution_id, "subscription of an execution not running here; dropped")
                }
            },
            AdapterNotification::StreamAck(p) => {
                if let Some(context) = context {
                    context.streams.ack(&self.host, p)
                }
            }
            AdapterNotification::StreamUnsubscribe(p) => {
                if let Some(context) = context {
                    context.streams.unsubscribe(&self.host, p)
                }
            }
        }
    }

    fn terminate(&self, execution_id: &str, terminal: Terminal) {
        let sender = self
            .state
            .borrow_mut()
            .executions
            .get_mut(execution_id)
            .and_then(|slot| slot.terminal.take());
        match sender {
            Some(sender) => {
                let _ = sender.send(terminal);
            }
            None => {
                tracing::debug!(process = self.id, execution = %execution_id, "outcome of an execution not awaited here; ignored")
            }
        }
    }

    fn on_request(self: &Rc<Self>, id: u64, request: AdapterRequest) {
        let Some(context) = self.context(request.execution_id()) else {
            let error = ResponseError::new(
                "unknown_execution",
                format!("execution '{}' is not running here", request.execution_id()),
            );
            self.send(
                Response {
                    id,
                    result: Err(error),
                }
                .to_line(),
            );
            return;
        };
        let process = Rc::clone(self);
        let host = Rc::clone(&self.host);
        let pushes = self.state.borrow().push_results
            && matches!(request, AdapterRequest::SubmitExecution(_));
        let span = tracing::debug_span!("request", execution = %context.execution, id, method = request.method());
        let task = async move {
            tokio::select! {
                result = requests::handle(&host, &context, request) => {
                    let child = match &result {
                        Ok(answer) if pushes => submitted_child(answer),
                        _ => None,
                    };
                    process.send(Response { id, result }.to_line());
                    if let Some(child) = child {
                        process.push_result(context, child);
                    }
                }
                _ = context.finished() => {}
            }
        };
        actix_rt::spawn(task.instrument(span));
    }

    /// Tells the process `child`'s final result as soon as the host has it (for a process that
    /// asked for pushed results): its wait on the child then needs no `select` round trip. The
    /// result stays with the host for a `select` that was already on its way.
    fn push_result(self: &Rc<Self>, context: Rc<ExecutionContext>, child: ExecutionId) {
        let process = Rc::clone(self);
        let host = Rc::clone(&self.host);
        actix_rt::spawn(async move {
            tokio::select! {
                answer = select::pushed_answer(&host, &context, child) => {
                    if let Some(result) = answer {
                        let resolved = ExecutionResolved {
                            execution_id: child.to_string(),
                            parent_id: context.execution.to_string(),
                            result,
                        };
                        process.send(WorkerNotification::ExecutionResolved(resolved).to_line());
                    }
                }
                _ = context.finished() => {}
            }
        });
    }
}

/// The child a `submit_execution` answer names.
fn submitted_child(answer: &serde_json::Value) -> Option<ExecutionId> {
    answer.get("execution_id")?.as_str()?.parse().ok()
}

fn unknown_exit() -> Exit {
    Exit {
        status: "unknown".into(),
        stderr: String::new(),
    }
}

async fn write_stdin(
    mut stdin: std::pin::Pin<Box<dyn tokio::io::AsyncWrite>>,
    mut lines: mpsc::UnboundedReceiver<String>,
) {
    let mut batch = Vec::new();
    while let Some(line) = lines.recv().await {
        // Let the tasks woken with this one queue their lines too: then they go out in one
        // write, and the executor wakes once for all of them (a wide fan-out queues many).
        tokio::task::yield_now().await;
        batch.clear();
        batch.extend_from_slice(line.as_bytes());
        batch.push(b'\n');
        while batch.len() < STDIN_BATCH_BYTES
            && let Ok(line) = lines.try_recv()
        {
            batch.extend_from_slice(line.as_bytes());
            batch.push(b'\n');
        }
        if stdin.write_all(&batch).await.is_err() || stdin.flush().await.is_err() {
            break;
        }
        if batch.capacity() > 4 * STDIN_BATCH_BYTES {
            // A large value went through: do not keep its room.
            batch = Vec::new();
        }
    }
}

/// Calls `on_line` for each line (lossily decoded) until EOF.
async fn read_lines(stream: impl AsyncRead + Unpin, mut on_line: impl FnMut(String)) {
    let mut reader = BufReader::new(stream);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buffer);
                let line = line.trim_end_matches(['\n', '\r']);
                if !line.is_empty() {
                    on_line(line.to_owned());
                }
            }
        }
    }
}

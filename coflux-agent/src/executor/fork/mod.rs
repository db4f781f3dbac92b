//! The fork server ("zygote") of Python executors.
//!
//! Starting `python -m coflux execute` costs a Python start and `import coflux` plus the
//! repository's modules (~50 ms of CPU each on a small machine), and the pool needs one
//! process per execution. The fork server is our own small Python program (`zygote.py`,
//! shipped inside the agent and written to a private directory at start) that imports them
//! once, then forks one child per executor process. A child connects back to the agent's
//! Unix socket twice (its stdin/stdout, then its stderr) and runs the package's own executor
//! (`coflux.executor.run_executor()`, what `python -m coflux execute` runs), so it speaks the
//! unchanged executor protocol. The fork server reaps its children and reports their wait statuses, and kills
//! them when asked; its children die with it.
//!
//! Not forkable (the pool spawns instead, with a warning): adapters that are not
//! `... -m coflux`, and modules that start a thread or open a socket at import (a forked
//! child would inherit a copy of neither the thread nor a usable connection).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};

mod slot;

pub(crate) use slot::ForkSlot;

use super::adapter::AdapterCommand;
use super::launch::{Forked, Handle, Launched, describe};

/// The fork server's program.
const ZYGOTE: &str = include_str!("zygote.py");

/// How long a child may take to connect back before the fork counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why there is no fork server.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ForkError {
    /// The adapter is not `<python> -m coflux`.
    #[error("the adapter is not '<python> -m coflux'")]
    Unsupported,
    /// The repository's modules cannot be forked safely.
    #[error("{0}")]
    Unsafe(String),
    /// The fork server did not start.
    #[error("the fork server did not start: {0}")]
    Start(String),
}

type PidReply = Result<(u32, watch::Receiver<Option<i32>>), String>;

#[derive(Default)]
struct Pending {
    pid: Option<oneshot::Sender<PidReply>>,
    stdio: Option<oneshot::Sender<UnixStream>>,
    stderr: Option<oneshot::Sender<UnixStream>>,
}

/// What the fork server's tasks share.
#[derive(Default)]
struct Shared {
    pending: RefCell<HashMap<u64, Pending>>,
    children: RefCell<HashMap<u32, watch::Sender<Option<i32>>>>,
    ready: RefCell<Option<oneshot::Sender<String>>>,
}

/// A running fork server (see the module docs). Lives on the agent's thread.
pub(crate) struct ForkServer {
    control: mpsc::UnboundedSender<String>,
    shared: Rc<Shared>,
    dead: watch::Receiver<bool>,
    kill: RefCell<Option<oneshot::Sender<()>>>,
    next: Cell<u64>,
    /// When it was started.
    pub(crate) started: Instant,
    /// Its process id.
    pub(crate) pid: Option<u32>,
    /// Holds the program and the socket.
    _dir: tempfile::TempDir,
}

/// The Python launcher of a `<python...> -m coflux` adapter.
fn python_prefix(adapter: &AdapterCommand) -> Option<&[String]> {
    match adapter.0.as_slice() {
        [prefix @ .., m, coflux] if !prefix.is_empty() && m == "-m" && coflux == "coflux" => {
            Some(prefix)
        }
        _ => None,
    }
}

/// Whether `adapter` can run behind a fork server.
pub(crate) fn supported(adapter: &AdapterCommand) -> bool {
    python_prefix(adapter).is_some()
}

impl ForkServer {
    /// Starts a fork server in `dir` that imports `modules`, and waits until it is ready.
    pub(crate) async fn start(
        adapter: &AdapterCommand,
        dir: &Path,
        modules: &[String],
        ready_timeout: Duration,
    ) -> Result<Rc<Self>, ForkError> {
        let prefix = python_prefix(adapter).ok_or(ForkError::Unsupported)?;
        let start = |e: std::io::Error| ForkError::Start(e.to_string());
        let private = tempfile::Builder::new()
            .prefix("coflux-fork-")
            .tempdir()
            .map_err(start)?;
        let script = private.path().join("zygote.py");
        std::fs::write(&script, ZYGOTE).map_err(start)?;
        let socket = private.path().join("s");
        let listener = UnixListener::bind(&socket).map_err(start)?;
        let mut command = tokio::process::Command::new(&prefix[0]);
        command
            .args(&prefix[1..])
            .arg(&script)
            .arg(&socket)
            .args(modules)
            .current_dir(dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(start)?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(ForkError::Start("no piped stdio".into()));
        };
        let pid = child.id();
        let shared = Rc::new(Shared::default());
        let (ready_tx, ready_rx) = oneshot::channel();
        *shared.ready.borrow_mut() = Some(ready_tx);
        let (control, mut lines) = mpsc::unbounded_channel::<String>();
        let (dead_tx, dead) = watch::channel(false);
        let (kill_tx, kill_rx) = oneshot::channel::<()>();

        actix_rt::spawn(async move {
            while let Some(mut line) = lines.recv().await {
                line.push('\n');
                if stdin.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
        let reader = Rc::clone(&shared);
        let control_for_reader = control.downgrade();
        actix_rt::spawn(async move {
            let mut out = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = out.next_line().await {
                reader.on_line(&line, &control_for_reader);
            }
        });
        actix_rt::spawn(async move {
            let mut err = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = err.next_line().await {
                tracing::info!(pid = ?pid, "fork server stderr: {line}");
            }
        });
        actix_rt::spawn(accept(listener, Rc::clone(&shared), dead.clone()));
        actix_rt::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = kill_rx => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            tracing::debug!(pid = ?pid, status = %describe(status), "fork server exited");
            dead_tx.send_replace(true);
        });

        let server = Rc::new(Self {
            control,
            shared,
            dead,
            kill: RefCell::new(Some(kill_tx)),
            next: Cell::new(1),
            started: Instant::now(),
            pid,
            _dir: private,
        });
        let mut dead = server.dead.clone();
        let ready = tokio::time::timeout(ready_timeout, async {
            tokio::select! {
                ready = ready_rx => ready.ok(),
                _ = dead.wait_for(|d| *d) => None,
            }
        })
        .await;
        let ready = match ready {
            Ok(Some(ready)) => ready,
            Ok(None) => return Err(ForkError::Start("it exited before it was ready".into())),
            Err(_) => {
                server.shutdown();
                return Err(ForkError::Start(format!(
                    "not ready after {ready_timeout:?}"
                )));
            }
        };
        let ready: serde_json::Value = serde_json::from_str(&ready)
            .map_err(|e| ForkError::Start(format!("invalid ready line: {e}")))?;
        if let Some(reason) = ready["unsafe"].as_str() {
            server.shutdown();
            return Err(ForkError::Unsafe(reason.to_owned()));
        }
        tracing::debug!(pid = ?server.pid, failed = %ready["failed"], "fork server ready");
        Ok(server)
    }

    /// Whether it has exited.
    pub(crate) fn is_dead(&self) -> bool {
        *self.dead.borrow()
    }

    /// Kills it (its children die with it).
    pub(crate) fn shutdown(&self) {
        if let Some(kill) = self.kill.borrow_mut().take() {
            let _ = kill.send(());
        }
    }

    /// Resolves once it has exited.
    pub(crate) async fn wait_dead(&self) {
        let mut dead = self.dead.clone();
        let _ = dead.wait_for(|d| *d).await;
    }

    /// Forks a child and waits until its stdio is connected.
    pub(crate) async fn fork(&self) -> Result<Launched, String> {
        let token = self.next.get();
        self.next.set(token + 1);
        let (pid_tx, pid_rx) = oneshot::channel();
        let (stdio_tx, stdio_rx) = oneshot::channel();
        let (stderr_tx, stderr_rx) = oneshot::channel();
        self.shared.pending.borrow_mut().insert(
            token,
            Pending {
                pid: Some(pid_tx),
                stdio: Some(stdio_tx),
                stderr: Some(stderr_tx),
            },
        );
        if self.control.send(format!("fork {token:016x}")).is_err() {
            self.shared.pending.borrow_mut().remove(&token);
            return Err("the fork server is gone".into());
        }
        let mut dead = self.dead.clone();
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let all = async {
                let (pid, exit) = pid_rx.await.map_err(|_| "no answer".to_owned())??;
                let stdio = stdio_rx.await.map_err(|_| "no stdio".to_owned())?;
                let stderr = stderr_rx.await.map_err(|_| "no stderr".to_owned())?;
                Ok::<_, String>((pid, exit, stdio, stderr))
            };
            tokio::select! {
                all = all => all,
                _ = dead.wait_for(|d| *d) => Err("the fork server exited".to_owned()),
            }
        })
        .await;
        self.shared.pending.borrow_mut().remove(&token);
        let (pid, exit, stdio, stderr) = connected
            .map_err(|_| format!("the child did not connect in {CONNECT_TIMEOUT:?}"))??;
        let (stdout, stdin) = stdio.into_split();
        let (stderr, _) = stderr.into_split();
        Ok(Launched {
            stdin: Box::pin(stdin),
            stdout: Box::pin(stdout),
            stderr: Box::pin(stderr),
            pid: Some(pid),
            handle: Handle::Forked(Forked {
                pid,
                exit,
                dead: self.dead.clone(),
                control: self.control.clone(),
            }),
        })
    }
}

impl Shared {
    fn on_line(&self, line: &str, control: &mpsc::WeakUnboundedSender<String>) {
        let mut words = line.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("ready"), _, _) => {
                let json = line.trim_start_matches("ready ").to_owned();
                if let Some(ready) = self.ready.borrow_mut().take() {
                    let _ = ready.send(json);
                }
            }
            (Some("forked"), Some(token), Some(pid)) => {
                let (Some(token), Ok(pid)) = (parse_token(token), pid.parse::<u32>()) else {
                    return tracing::warn!("fork server: bad line {line:?}");
                };
                let (exit_tx, exit_rx) = watch::channel(None);
                self.children.borrow_mut().insert(pid, exit_tx);
                let waiter = self
                    .pending
                    .borrow_mut()
                    .get_mut(&token)
                    .and_then(|p| p.pid.take());
                let delivered = waiter.is_some_and(|w| w.send(Ok((pid, exit_rx))).is_ok());
                if !delivered && let Some(control) = control.upgrade() {
                    // Nobody waits for it any more (the fork timed out).
                    let _ = control.send(format!("kill {pid}"));
                }
            }
            (Some("failed"), Some(token), message) => {
                let waiter = parse_token(token).and_then(|token| {
                    self.pending
                        .borrow_mut()
                        .get_mut(&token)
                        .and_then(|p| p.pid.take())
                });
                if let Some(waiter) = waiter {
                    let _ = waiter.send(Err(format!("fork failed: {}", message.unwrap_or(""))));
                }
            }
            (Some("exited"), Some(pid), Some(status)) => {
                let (Ok(pid), Ok(status)) = (pid.parse::<u32>(), status.parse::<i32>()) else {
                    return tracing::warn!("fork server: bad line {line:?}");
                };
                if let Some(exit) = self.children.borrow_mut().remove(&pid) {
                    exit.send_replace(Some(status));
                }
            }
            _ => tracing::warn!("fork server: unexpected line {line:?}"),
        }
    }

    fn connected(&self, token: u64, kind: u8, stream: UnixStream) {
        let mut pending = self.pending.borrow_mut();
        let Some(pending) = pending.get_mut(&token) else {
            return tracing::debug!(token, "a forked child connected too late; dropped");
        };
        let slot = match kind {
            b'o' => pending.stdio.take(),
            b'e' => pending.stderr.take(),
            _ => None,
        };
        if let Some(slot) = slot {
            let _ = slot.send(stream);
        }
    }
}

fn parse_token(token: &str) -> Option<u64> {
    u64::from_str_radix(token, 16).ok()
}

/// Accepts the children's connections until the fork server has exited, routing each by the
/// hello it starts with (16 hex digits of token, `o` or `e`, newline).
async fn accept(listener: UnixListener, shared: Rc<Shared>, mut dead: watch::Receiver<bool>) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "fork server socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = dead.wait_for(|d| *d) => return,
        };
        let shared = Rc::clone(&shared);
        actix_rt::spawn(async move {
            let mut stream = stream;
            let mut hello = [0u8; 18];
            let read = tokio::time::timeout(CONNECT_TIMEOUT, stream.read_exact(&mut hello)).await;
            if !matches!(read, Ok(Ok(_))) || hello[17] != b'\n' {
                return tracing::warn!("fork server socket: a connection without a hello");
            }
            let token = std::str::from_utf8(&hello[..16]).ok().and_then(parse_token);
            match token {
                Some(token) => shared.connected(token, hello[16], stream),
                None => tracing::warn!("fork server socket: a malformed hello"),
            }
        });
    }
}

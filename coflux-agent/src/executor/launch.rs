//! How an executor process comes to be: spawned (`<adapter> execute`) or forked from the fork
//! server ([`super::fork`]). Either way the pool gets its stdio and a handle to wait on or
//! kill it.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::pin::Pin;
use std::process::ExitStatus;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};

use super::adapter::AdapterCommand;
use super::error::PoolError;

/// Which executors the pool starts (`coflux-agent --executor`, `COFLUX_EXECUTOR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecutorMode {
    /// Fork each Python executor from a warm fork server that has imported `coflux` and the
    /// repository's modules once; spawn where that is not possible (other adapters, modules
    /// that start threads or open sockets at import).
    #[default]
    Fork,
    /// Spawn a new process per executor (`<adapter> execute`).
    Spawn,
}

impl std::str::FromStr for ExecutorMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fork" => Ok(Self::Fork),
            "spawn" => Ok(Self::Spawn),
            other => Err(format!(
                "unknown executor mode '{other}' (expected fork or spawn)"
            )),
        }
    }
}

impl std::fmt::Display for ExecutorMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Fork => "fork",
            Self::Spawn => "spawn",
        })
    }
}

/// A started executor process: its stdio and a handle on it.
pub(crate) struct Launched {
    pub(crate) stdin: Pin<Box<dyn AsyncWrite>>,
    pub(crate) stdout: Pin<Box<dyn AsyncRead>>,
    pub(crate) stderr: Pin<Box<dyn AsyncRead>>,
    pub(crate) pid: Option<u32>,
    pub(crate) handle: Handle,
}

/// Waits on or kills an executor process.
pub(crate) enum Handle {
    /// A child process of the agent.
    Spawned(tokio::process::Child),
    /// A child of the fork server.
    Forked(Forked),
}

impl Handle {
    /// Resolves when the process has exited; gives its status as text.
    pub(crate) async fn wait(&mut self) -> String {
        match self {
            Self::Spawned(child) => describe(child.wait().await),
            Self::Forked(forked) => forked.wait().await,
        }
    }

    /// Kills the process (without waiting).
    pub(crate) fn start_kill(&mut self) {
        match self {
            Self::Spawned(child) => {
                let _ = child.start_kill();
            }
            Self::Forked(forked) => forked.kill(),
        }
    }
}

/// An exit status as text (e.g. `exit status: 3`, `signal: 9 (SIGKILL)`).
pub(crate) fn describe(status: std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(e) => format!("unknown ({e})"),
    }
}

/// Starts `<adapter> execute` in `dir`.
pub(crate) fn spawn(adapter: &AdapterCommand, dir: &Path) -> Result<Launched, PoolError> {
    let mut command = adapter
        .command(dir, &["execute"])
        .ok_or(PoolError::NoAdapter)?;
    let mut child = command.spawn().map_err(|e| PoolError::Spawn {
        command: adapter.to_string(),
        message: e.to_string(),
    })?;
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(PoolError::Spawn {
            command: adapter.to_string(),
            message: "the process has no piped stdio".into(),
        });
    };
    Ok(Launched {
        stdin: Box::pin(stdin),
        stdout: Box::pin(stdout),
        stderr: Box::pin(stderr),
        pid: child.id(),
        handle: Handle::Spawned(child),
    })
}

/// A child of the fork server.
pub(crate) struct Forked {
    pub(super) pid: u32,
    /// Its exit status, once the fork server reports it.
    pub(super) exit: watch::Receiver<Option<i32>>,
    /// Whether the fork server has gone.
    pub(super) dead: watch::Receiver<bool>,
    /// Commands to the fork server (`kill PID`).
    pub(super) control: mpsc::UnboundedSender<String>,
}

impl Forked {
    /// Resolves when the child has exited (or the fork server, which takes its children
    /// along); gives its status as text, as a spawned process's would read.
    pub(crate) async fn wait(&mut self) -> String {
        tokio::select! {
            biased;
            status = self.exit.wait_for(Option::is_some) => match status.ok().and_then(|s| *s) {
                Some(status) => std::process::ExitStatus::from_raw(status).to_string(),
                None => "unknown (the fork server exited)".into(),
            },
            _ = self.dead.wait_for(|d| *d) => "unknown (the fork server exited)".into(),
        }
    }

    /// Asks the fork server to kill it.
    pub(crate) fn kill(&self) {
        let _ = self.control.send(format!("kill {}", self.pid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        assert_eq!("fork".parse(), Ok(ExecutorMode::Fork));
        assert_eq!("spawn".parse(), Ok(ExecutorMode::Spawn));
        assert!(
            "thread"
                .parse::<ExecutorMode>()
                .unwrap_err()
                .contains("fork or spawn")
        );
        assert_eq!(ExecutorMode::Spawn.to_string(), "spawn");
        assert_eq!(ExecutorMode::default(), ExecutorMode::Fork);
    }
}

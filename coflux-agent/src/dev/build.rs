//! [`BuildCommand`]: runs a repository's build (for Rust repositories, e.g.
//! `cargo build --release -p my-repo`) before the agent re-discovers its targets, keeping the
//! last lines of its output to show when it fails.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::io::{BufRead, BufReader, Read};
use tokio::process::Command;

/// Output lines kept by default.
pub const DEFAULT_TAIL_LINES: usize = 50;

/// How long to wait for the end of the output once the command has exited.
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// The longest output line kept, in bytes (longer ones are cut).
const MAX_LINE_BYTES: usize = 4096;

/// A shell command that builds a repository.
#[derive(Debug, Clone)]
pub struct BuildCommand {
    /// The command line, run with `sh -c` (`cmd /C` on Windows).
    pub command: String,
    /// The working directory (the current one if `None`).
    pub cwd: Option<PathBuf>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// How many of the last output lines (stdout and stderr together) to keep.
    pub tail_lines: usize,
    /// Kill the build after this long (`None`: no limit).
    pub timeout: Option<Duration>,
}

/// A build that succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSuccess {
    /// How long it took.
    pub duration: Duration,
    /// The last lines of its output.
    pub tail: Vec<String>,
}

/// Why a build did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The command line is empty.
    #[error("the build command is empty")]
    EmptyCommand,
    /// The shell could not be started.
    #[error("cannot start build command '{command}': {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The error from the operating system.
        #[source]
        source: std::io::Error,
    },
    /// The command exited unsuccessfully.
    #[error("build command '{command}' failed ({}):\n{}", fmt_status(*.status), .tail.join("\n"))]
    Failed {
        /// The command line.
        command: String,
        /// Its exit code (`None` if killed by a signal).
        status: Option<i32>,
        /// The last lines of its output.
        tail: Vec<String>,
    },
    /// The command ran longer than its timeout and was killed.
    #[error("build command '{command}' timed out after {after:?}:\n{}", .tail.join("\n"))]
    TimedOut {
        /// The command line.
        command: String,
        /// The timeout.
        after: Duration,
        /// The last lines of its output.
        tail: Vec<String>,
    },
    /// Waiting for the command failed.
    #[error("build command '{command}' could not be waited for: {source}")]
    Wait {
        /// The command line.
        command: String,
        /// The error from the operating system.
        #[source]
        source: std::io::Error,
    },
}

fn fmt_status(status: Option<i32>) -> String {
    match status {
        Some(code) => format!("exit code {code}"),
        None => "killed by a signal".into(),
    }
}

impl BuildError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::EmptyCommand => "build_command_empty",
            Self::Spawn { .. } => "build_spawn_failed",
            Self::Failed { .. } => "build_failed",
            Self::TimedOut { .. } => "build_timed_out",
            Self::Wait { .. } => "build_wait_failed",
        }
    }

    /// The last output lines, if the command ran.
    pub fn tail(&self) -> &[String] {
        match self {
            Self::Failed { tail, .. } | Self::TimedOut { tail, .. } => tail,
            _ => &[],
        }
    }
}

type Tail = Arc<Mutex<VecDeque<String>>>;

impl BuildCommand {
    /// A command run in `cwd` (or the current directory), keeping [`DEFAULT_TAIL_LINES`] lines,
    /// without a timeout.
    pub fn new(command: impl Into<String>, cwd: Option<PathBuf>) -> Self {
        Self {
            command: command.into(),
            cwd,
            env: Vec::new(),
            tail_lines: DEFAULT_TAIL_LINES,
            timeout: None,
        }
    }

    /// Runs the command to completion (killing it on timeout, or if the returned future is
    /// dropped).
    pub async fn run(&self) -> Result<BuildSuccess, BuildError> {
        if self.command.trim().is_empty() {
            return Err(BuildError::EmptyCommand);
        }
        let started = Instant::now();
        let mut command = shell(&self.command);
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        // One pipe for stdout and stderr, so the tail keeps the order the lines were written in.
        let (reader, writer) = std::io::pipe().map_err(|source| BuildError::Spawn {
            command: self.command.clone(),
            source,
        })?;
        let stderr = writer.try_clone().map_err(|source| BuildError::Spawn {
            command: self.command.clone(),
            source,
        })?;
        command
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(stderr)
            .kill_on_drop(true);
        tracing::info!(command = %self.command, cwd = ?self.cwd, "building");
        let spawned = command.spawn();
        // Close our copies of the pipe's write end, so the reader sees the end of the output.
        drop(command);
        let mut child = spawned.map_err(|source| BuildError::Spawn {
            command: self.command.clone(),
            source,
        })?;
        let tail: Tail = Arc::new(Mutex::new(VecDeque::with_capacity(self.tail_lines)));
        let collector = {
            let tail = Arc::clone(&tail);
            let keep = self.tail_lines;
            tokio::task::spawn_blocking(move || collect(reader, &tail, keep))
        };
        let waited = match self.timeout {
            Some(limit) => match tokio::time::timeout(limit, child.wait()).await {
                Ok(status) => Some(status),
                Err(_) => {
                    if let Err(error) = child.kill().await {
                        tracing::warn!(command = %self.command, %error, "cannot kill the timed-out build");
                    }
                    None
                }
            },
            None => Some(child.wait().await),
        };
        // The output ends when the command and its children exit; a child left running in the
        // background may keep it open, so do not wait for that long.
        if tokio::time::timeout(OUTPUT_GRACE, collector).await.is_err() {
            tracing::debug!(command = %self.command, "build output still open after exit; not waiting for it");
        }
        let tail: Vec<String> = tail
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .drain(..)
            .collect();
        let duration = started.elapsed();
        match waited {
            None => {
                tracing::warn!(command = %self.command, ?duration, "build timed out");
                Err(BuildError::TimedOut {
                    command: self.command.clone(),
                    after: self.timeout.unwrap_or_default(),
                    tail,
                })
            }
            Some(Err(source)) => Err(BuildError::Wait {
                command: self.command.clone(),
                source,
            }),
            Some(Ok(status)) if status.success() => {
                tracing::info!(command = %self.command, ?duration, "build succeeded");
                Ok(BuildSuccess { duration, tail })
            }
            Some(Ok(status)) => {
                tracing::warn!(command = %self.command, code = ?status.code(), ?duration, "build failed");
                Err(BuildError::Failed {
                    command: self.command.clone(),
                    status: status.code(),
                    tail,
                })
            }
        }
    }
}

#[cfg(unix)]
fn shell(command: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(command);
    c
}

#[cfg(not(unix))]
fn shell(command: &str) -> Command {
    let mut c = Command::new("cmd");
    c.arg("/C").arg(command);
    c
}

/// Reads lines (lossily decoded, cut at [`MAX_LINE_BYTES`]) into the shared tail.
fn collect(stream: impl Read, tail: &Mutex<VecDeque<String>>, keep: usize) {
    let mut reader = BufReader::new(stream);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let end = buffer.len().min(MAX_LINE_BYTES);
                let line = String::from_utf8_lossy(&buffer[..end])
                    .trim_end_matches(['\n', '\r'])
                    .to_owned();
                tracing::trace!(target: "coflux_agent::dev::build", "{line}");
                if keep == 0 {
                    continue;
                }
                let mut tail = tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if tail.len() == keep {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_successful_build_reports_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let build = BuildCommand::new("echo built; pwd", Some(dir.path().to_owned()));
        let ok = build.run().await.unwrap();
        assert_eq!(ok.tail[0], "built");
        let cwd = PathBuf::from(&ok.tail[1]).canonicalize().unwrap();
        assert_eq!(cwd, dir.path().canonicalize().unwrap());
    }

    #[tokio::test]
    async fn a_failed_build_carries_the_last_lines_of_its_output() {
        let mut build = BuildCommand::new(
            "for i in $(seq 1 120); do echo \"line $i\"; done; echo 'error[E0425]: oops' >&2; exit 3",
            None,
        );
        build.env.push(("UNUSED_VAR".into(), "1".into()));
        let err = build.run().await.unwrap_err();
        assert_eq!(err.code(), "build_failed");
        let tail = err.tail();
        assert_eq!(tail.len(), DEFAULT_TAIL_LINES);
        assert_eq!(tail.last().unwrap(), "error[E0425]: oops");
        assert_eq!(tail[0], "line 72");
        assert!(matches!(
            err,
            BuildError::Failed {
                status: Some(3),
                ..
            }
        ));
        assert!(err.to_string().contains("exit code 3"));
    }

    #[tokio::test]
    async fn a_slow_build_is_killed_at_its_timeout() {
        let mut build = BuildCommand::new("echo started; exec sleep 30", None);
        build.timeout = Some(Duration::from_millis(200));
        let started = Instant::now();
        let err = build.run().await.unwrap_err();
        assert_eq!(err.code(), "build_timed_out");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(err.tail(), ["started".to_owned()]);
    }

    #[tokio::test]
    async fn empty_and_unstartable_commands_are_errors() {
        assert_eq!(
            BuildCommand::new("  ", None)
                .run()
                .await
                .unwrap_err()
                .code(),
            "build_command_empty"
        );
        let missing = BuildCommand::new("true", Some(PathBuf::from("/nonexistent/dir")));
        assert_eq!(
            missing.run().await.unwrap_err().code(),
            "build_spawn_failed"
        );
        let unknown = BuildCommand::new("no-such-command-xyz", None);
        let err = unknown.run().await.unwrap_err();
        assert!(
            matches!(
                err,
                BuildError::Failed {
                    status: Some(127),
                    ..
                }
            ),
            "{err}"
        );
    }
}

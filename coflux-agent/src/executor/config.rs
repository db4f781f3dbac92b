//! [`PoolConfig`]: how the executor pool runs executors, with its defaults.

use std::path::PathBuf;
use std::time::Duration;

use super::adapter::AdapterCommand;
use super::launch::ExecutorMode;

/// How the pool runs executors.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The adapter command (`execute` is appended).
    pub adapter: AdapterCommand,
    /// The directory executors run in (the project; Python imports modules relative to it).
    pub working_dir: PathBuf,
    /// At most this many executions run at once.
    pub concurrency: usize,
    /// How many executions may wait for others without holding a slot (default: 16 per
    /// slot). A waiting execution lends its slot, so a parent blocked on its children never
    /// starves them (a cached recursive `fib(25)` completes with a concurrency of 4); the bound
    /// caps the processes that waiting executions keep alive (single-use executors only: a
    /// concurrent executor's waiting executions lend without bound).
    pub max_waiting: usize,
    /// How long a new process may take to send `ready`.
    pub ready_timeout: Duration,
    /// How long a process may take to exit after its result (or after stdin closes) before
    /// it is killed.
    pub exit_grace: Duration,
    /// Fork Python executors from a fork server, or spawn them (default: fork).
    pub mode: ExecutorMode,
    /// The modules the fork server imports before it forks (those of the repository's
    /// targets; others are imported by each execution, as when spawned).
    pub modules: Vec<String>,
}

impl PoolConfig {
    /// A configuration with the default timeouts (30 s to be ready, 5 s to exit).
    pub fn new(
        adapter: AdapterCommand,
        working_dir: impl Into<PathBuf>,
        concurrency: usize,
    ) -> Self {
        Self {
            adapter,
            working_dir: working_dir.into(),
            concurrency: concurrency.max(1),
            max_waiting: concurrency.max(1) * 16,
            ready_timeout: Duration::from_secs(30),
            exit_grace: Duration::from_secs(5),
            mode: ExecutorMode::default(),
            modules: Vec::new(),
        }
    }

    /// How many idle single-use executors are kept ready: `min(concurrency, 4)`.
    pub fn warm_target(&self) -> usize {
        self.concurrency.min(4)
    }
}

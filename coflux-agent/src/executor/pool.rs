//! [`ExecutorPool`]: executor processes kept warm and handed executions.
//!
//! Python executors serve one execution each (warm means "started and ready"); an executor
//! that announces `concurrent: true` (a Rust repository) is kept and given every execution.
//! Until the first process says which it is, processes are started one at a time.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};
use std::sync::Arc;

use coflux_core::model::{Checkpoints, ExecutionId, StreamDefaults, TargetRef, Value};
use tokio::sync::{Semaphore, oneshot, watch};

use super::config::PoolConfig;
use super::context::SlotLender;
use super::error::PoolError;
use super::fork::ForkSlot;
use super::host::ExecutorHost;
use super::launch;
use super::process::Process;
use super::scratch::{Scratch, ScratchPool};

/// An execution for the pool to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// The execution.
    pub execution: ExecutionId,
    /// Its target.
    pub target: TargetRef,
    /// Its arguments.
    pub arguments: Vec<Value>,
    /// Its timeout, if any (0 means none).
    pub timeout_ms: Option<u64>,
    /// Its step's checkpoint state (`cf.Checkpoint`).
    pub checkpoints: Checkpoints,
    /// The call site's stream settings (`with_streams(...)`), if any.
    pub streams: Option<StreamDefaults>,
}

/// A snapshot of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Processes started so far.
    pub spawned: u64,
    /// Of those, the ones forked from the fork server.
    pub forked: u64,
    /// Processes alive now (idle, busy or exiting).
    pub processes: usize,
    /// Idle, ready processes.
    pub idle: usize,
    /// Executions accepted and not finished (including those waiting for a slot).
    pub running: usize,
}

/// Why an execution is to stop before it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// [`ExecutorPool::abort`].
    Abort,
    /// [`ExecutorPool::shutdown`].
    Shutdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Unknown,
    SingleUse,
    Concurrent,
}

struct State {
    kind: Kind,
    idle: VecDeque<Rc<Process>>,
    shared: Option<Rc<Process>>,
    processes: HashMap<u64, Rc<Process>>,
    running: HashMap<ExecutionId, Option<oneshot::Sender<Stop>>>,
    warming: usize,
    spawned: u64,
    forked: u64,
    closed: bool,
}

pub(crate) struct Inner {
    pub(crate) config: PoolConfig,
    pub(crate) host: Rc<dyn ExecutorHost>,
    slots: Arc<Semaphore>,
    /// Slots lent by executions waiting for others.
    lent: Rc<Cell<usize>>,
    /// Slots to take back as soon as they are free (lent slots reclaimed while none was).
    debt: Rc<Cell<usize>>,
    state: RefCell<State>,
    next_process: Cell<u64>,
    spawn_lock: tokio::sync::Mutex<()>,
    running_count: watch::Sender<usize>,
    /// Processes alive or starting.
    live_count: watch::Sender<usize>,
    /// Executions' private directories, recycled when left empty.
    scratch: Rc<ScratchPool>,
    /// The fork server of Python executors, if used.
    fork: ForkSlot,
}

/// Runs executions in executor processes (see the module docs). Cheap to clone; lives on the
/// agent's thread.
#[derive(Clone)]
pub struct ExecutorPool(Rc<Inner>);

impl ExecutorPool {
    /// A pool with no processes yet (see [`ExecutorPool::start`]).
    pub fn new(config: PoolConfig, host: Rc<dyn ExecutorHost>) -> Self {
        let slots = Arc::new(Semaphore::new(config.concurrency));
        let fork = ForkSlot::new(&config);
        Self(Rc::new(Inner {
            fork,
            config,
            host,
            slots,
            lent: Rc::default(),
            debt: Rc::default(),
            state: RefCell::new(State {
                kind: Kind::Unknown,
                idle: VecDeque::new(),
                shared: None,
                processes: HashMap::new(),
                running: HashMap::new(),
                warming: 0,
                spawned: 0,
                forked: 0,
                closed: false,
            }),
            next_process: Cell::new(1),
            spawn_lock: tokio::sync::Mutex::new(()),
            running_count: watch::channel(0).0,
            live_count: watch::channel(0).0,
            scratch: Rc::default(),
        }))
    }

    /// Starts the first process (which tells whether the adapter is single-use or concurrent),
    /// then warms up to [`PoolConfig::warm_target`] single-use ones in the background.
    pub async fn start(&self) -> Result<(), PoolError> {
        let process = self.checkout().await?;
        if !process.is_concurrent() {
            self.0.state.borrow_mut().idle.push_front(process);
        }
        self.top_up();
        Ok(())
    }

    /// Stops an execution: a single-use process is killed; a concurrent one is sent an
    /// `abort` notification and whatever it reports later is ignored. The execution's
    /// [`ExecutorPool::execute`] gives [`PoolError::Aborted`]. False if it is not running.
    pub fn abort(&self, execution: ExecutionId) -> bool {
        let stop = self
            .0
            .state
            .borrow_mut()
            .running
            .get_mut(&execution)
            .and_then(Option::take);
        stop.is_some_and(|stop| stop.send(Stop::Abort).is_ok())
    }

    /// Stops taking executions and warming processes, waits for the running executions to
    /// finish, then closes every process's stdin and waits for them to exit (killing those
    /// that take longer than [`PoolConfig::exit_grace`]).
    pub async fn drain(&self) {
        let idle = {
            let mut state = self.0.state.borrow_mut();
            state.closed = true;
            std::mem::take(&mut state.idle)
        };
        for process in idle {
            process.close_stdin();
        }
        let _ = self.0.running_count.subscribe().wait_for(|n| *n == 0).await;
        self.close_all(false).await;
        self.0.scratch.clear();
    }

    /// Closes (or kills) every process, waits for them to exit, then for those still
    /// starting (which close themselves when they are ready).
    async fn close_all(&self, kill: bool) {
        let processes: Vec<_> = self.0.state.borrow().processes.values().cloned().collect();
        let grace = self.0.config.exit_grace;
        let exits = processes.iter().map(|process| {
            if kill {
                process.kill();
            } else {
                process.close_stdin();
            }
            process.reap(grace)
        });
        futures::future::join_all(exits).await;
        let mut live = self.0.live_count.subscribe();
        if tokio::time::timeout(grace, live.wait_for(|n| *n == 0))
            .await
            .is_err()
        {
            let late: Vec<_> = self.0.state.borrow().processes.values().cloned().collect();
            for process in &late {
                process.kill();
            }
            let _ = live.wait_for(|n| *n == 0).await;
        }
        self.0.fork.close(grace).await;
    }

    fn update_live(&self, state: &State) {
        self.0
            .live_count
            .send_replace(state.processes.len() + state.warming);
    }

    /// Stops now: running executions end with [`PoolError::Closed`] and every process is
    /// killed.
    pub async fn shutdown(&self) {
        let stops: Vec<_> = {
            let mut state = self.0.state.borrow_mut();
            state.closed = true;
            state.idle.clear();
            state
                .running
                .values_mut()
                .filter_map(Option::take)
                .collect()
        };
        self.0.slots.close();
        for stop in stops {
            let _ = stop.send(Stop::Shutdown);
        }
        self.close_all(true).await;
        self.0.scratch.clear();
    }

    /// A snapshot of the pool.
    pub fn stats(&self) -> PoolStats {
        let state = self.0.state.borrow();
        PoolStats {
            spawned: state.spawned,
            forked: state.forked,
            processes: state.processes.len(),
            idle: state.idle.len(),
            running: state.running.len(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.0.config
    }

    pub(crate) fn host(&self) -> &Rc<dyn ExecutorHost> {
        &self.0.host
    }

    /// Registers a new execution; the receiver says if it is to stop.
    pub(crate) fn admit(
        &self,
        execution: ExecutionId,
    ) -> Result<oneshot::Receiver<Stop>, PoolError> {
        let mut state = self.0.state.borrow_mut();
        if state.closed {
            return Err(PoolError::Closed);
        }
        if state.running.contains_key(&execution) {
            return Err(PoolError::Duplicate(execution));
        }
        let (stop, stopped) = oneshot::channel();
        state.running.insert(execution, Some(stop));
        self.0.running_count.send_replace(state.running.len());
        Ok(stopped)
    }

    /// Forgets a finished execution.
    pub(crate) fn release(&self, execution: ExecutionId) {
        let mut state = self.0.state.borrow_mut();
        state.running.remove(&execution);
        self.0.running_count.send_replace(state.running.len());
    }

    /// Private directories for an execution (see [`ScratchPool`]).
    pub(crate) fn scratch(&self) -> std::io::Result<Scratch> {
        self.0.scratch.take()
    }

    /// Lends the slot of an execution that starts waiting for others (see [`SlotLender`]).
    /// The bound on lent slots, [`PoolConfig::max_waiting`], caps the processes that waiting
    /// executions keep alive, so it applies to single-use (Python) executors only: a waiting
    /// execution of a concurrent (Rust) executor is a future in a shared process, and a bound
    /// there would only let waiting parents fill every slot their children need.
    pub(crate) fn lender(&self, concurrent: bool) -> SlotLender {
        SlotLender {
            slots: Arc::clone(&self.0.slots),
            lent: Rc::clone(&self.0.lent),
            debt: Rc::clone(&self.0.debt),
            max_lent: if concurrent {
                usize::MAX
            } else {
                self.0.config.max_waiting
            },
        }
    }

    /// Takes back slots that waiting executions lent and could not reclaim at once.
    pub(crate) fn settle(&self) {
        self.lender(false).settle();
    }

    /// Waits for one of the `concurrency` slots.
    pub(crate) async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, PoolError> {
        Arc::clone(&self.0.slots)
            .acquire_owned()
            .await
            .map_err(|_| PoolError::Closed)
    }

    /// A ready process for one more execution: the concurrent one, an idle one, or a new one.
    pub(crate) async fn checkout(&self) -> Result<Rc<Process>, PoolError> {
        let mut locked = None;
        loop {
            {
                let mut state = self.0.state.borrow_mut();
                if let Some(shared) = state.shared.as_ref().filter(|p| !p.has_exited()) {
                    return Ok(Rc::clone(shared));
                }
                while let Some(process) = state.idle.pop_front() {
                    if !process.has_exited() {
                        return Ok(process);
                    }
                }
                // Single-use processes start in parallel. Otherwise start one at a time: until
                // a process has said what it is, or when the concurrent one has gone, the
                // next one serves everyone waiting here.
                if state.kind == Kind::SingleUse || locked.is_some() {
                    break;
                }
            }
            locked = Some(self.0.spawn_lock.lock().await);
        }
        self.spawn_process().await
    }

    /// Gives an unused process back (e.g. when an execution stopped before it was sent).
    pub(crate) fn give_back(&self, process: Rc<Process>) {
        let mut state = self.0.state.borrow_mut();
        if process.is_concurrent() {
            return;
        }
        if state.closed {
            process.close_stdin();
        } else {
            state.idle.push_front(process);
        }
    }

    /// Starts single-use processes in the background until [`PoolConfig::warm_target`] are
    /// idle or starting (never more than `concurrency + warm_target` processes in all).
    pub(crate) fn top_up(&self) {
        let wanted = {
            let state = self.0.state.borrow();
            if state.closed || state.kind != Kind::SingleUse {
                return;
            }
            let warm = self.0.config.warm_target();
            let need = warm.saturating_sub(state.idle.len() + state.warming);
            let room = (self.0.config.concurrency + warm)
                .saturating_sub(state.processes.len() + state.warming);
            need.min(room)
        };
        for _ in 0..wanted {
            {
                let mut state = self.0.state.borrow_mut();
                state.warming += 1;
                self.update_live(&state);
            }
            let pool = self.clone();
            actix_rt::spawn(async move {
                let spawned = pool.spawn_process().await;
                {
                    let mut state = pool.0.state.borrow_mut();
                    state.warming -= 1;
                    pool.update_live(&state);
                }
                match spawned {
                    Ok(process) => pool.give_back(process),
                    Err(error) => tracing::warn!(%error, "could not warm an executor"),
                }
            });
        }
    }

    async fn spawn_process(&self) -> Result<Rc<Process>, PoolError> {
        let id = self.0.next_process.get();
        self.0.next_process.set(id + 1);
        let config = &self.0.config;
        let host = Rc::clone(&self.0.host);
        let forked = match self.0.fork.server(config).await {
            Some(server) => server.fork().await.map_err(|error| {
                tracing::warn!(%error, "could not fork an executor; spawning one");
            }),
            None => Err(()),
        };
        let is_forked = forked.is_ok();
        let launched = match forked {
            Ok(launched) => launched,
            Err(()) => launch::spawn(&config.adapter, &config.working_dir)?,
        };
        let command = if is_forked {
            format!("{} (forked)", config.adapter)
        } else {
            config.adapter.to_string()
        };
        let process = Process::start(id, launched, &command, host, config.ready_timeout).await?;
        {
            let mut state = self.0.state.borrow_mut();
            state.spawned += 1;
            state.forked += u64::from(is_forked);
            state.processes.insert(id, Rc::clone(&process));
            self.update_live(&state);
            if process.is_concurrent() {
                state.kind = Kind::Concurrent;
                state.shared = Some(Rc::clone(&process));
            } else {
                state.kind = Kind::SingleUse;
            }
        }
        let pool: Weak<Inner> = Rc::downgrade(&self.0);
        let watched = Rc::clone(&process);
        actix_rt::spawn(async move {
            watched.wait_exit().await;
            if let Some(pool) = pool.upgrade() {
                let pool = ExecutorPool(pool);
                let mut state = pool.0.state.borrow_mut();
                state.processes.remove(&watched.id);
                state.idle.retain(|p| p.id != watched.id);
                if state.shared.as_ref().is_some_and(|p| p.id == watched.id) {
                    state.shared = None;
                }
                pool.update_live(&state);
            }
        });
        Ok(process)
    }
}

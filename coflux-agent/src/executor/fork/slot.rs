//! [`ForkSlot`]: the pool's fork server, started on first use, restarted when it dies, given
//! up on (the pool spawns instead) when it cannot be used.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use super::{ForkError, ForkServer, supported};
use crate::executor::config::PoolConfig;
use crate::executor::launch::ExecutorMode;

/// A fork server that dies sooner than this after its start counts as a quick death.
const QUICK_DEATH: Duration = Duration::from_secs(10);
/// After this many quick deaths in a row the pool spawns instead.
const MAX_QUICK_DEATHS: u32 = 3;

enum State {
    /// Not used (spawn mode, another adapter, or the pool is closed).
    Off,
    /// To be started on first use.
    Idle,
    Running(Rc<ForkServer>),
}

/// The pool's fork server, if it uses one.
pub(crate) struct ForkSlot {
    state: RefCell<State>,
    starting: tokio::sync::Mutex<()>,
    quick_deaths: Cell<u32>,
}

impl ForkSlot {
    /// A slot for the pool's configuration: off in spawn mode or for an adapter that is not
    /// `<python> -m coflux`.
    pub(crate) fn new(config: &PoolConfig) -> Self {
        let on = config.mode == ExecutorMode::Fork && supported(&config.adapter);
        if config.mode == ExecutorMode::Fork && !on {
            tracing::debug!(adapter = %config.adapter, "not a Python adapter: executors are spawned");
        }
        Self {
            state: RefCell::new(if on { State::Idle } else { State::Off }),
            starting: tokio::sync::Mutex::new(()),
            quick_deaths: Cell::new(0),
        }
    }

    /// The running fork server, started (or restarted) if need be; `None` when executors are
    /// to be spawned.
    pub(crate) async fn server(&self, config: &PoolConfig) -> Option<Rc<ForkServer>> {
        loop {
            let dead = match &*self.state.borrow() {
                State::Off => return None,
                State::Running(server) if !server.is_dead() => return Some(Rc::clone(server)),
                State::Running(server) => Some(server.started.elapsed() < QUICK_DEATH),
                State::Idle => None,
            };
            if let Some(quick) = dead {
                let deaths = if quick {
                    self.quick_deaths.get() + 1
                } else {
                    0
                };
                self.quick_deaths.set(deaths);
                if deaths >= MAX_QUICK_DEATHS {
                    tracing::warn!(
                        "the fork server keeps exiting; spawning Python executors from now on"
                    );
                    *self.state.borrow_mut() = State::Off;
                    return None;
                }
                tracing::warn!("the fork server exited; starting a new one");
                *self.state.borrow_mut() = State::Idle;
            }
            let _starting = self.starting.lock().await;
            if !matches!(*self.state.borrow(), State::Idle) {
                continue;
            }
            let started = ForkServer::start(
                &config.adapter,
                &config.working_dir,
                &config.modules,
                config.ready_timeout,
            )
            .await;
            let mut state = self.state.borrow_mut();
            if !matches!(*state, State::Idle) {
                // Closed meanwhile.
                if let Ok(server) = started {
                    server.shutdown();
                }
                return None;
            }
            match started {
                Ok(server) => {
                    tracing::info!(pid = ?server.pid, modules = ?config.modules, "fork server ready: Python executors are forked");
                    *state = State::Running(server);
                }
                Err(ForkError::Unsafe(reason)) => {
                    tracing::warn!(%reason, "executors cannot be forked safely; spawning them instead");
                    *state = State::Off;
                }
                Err(error) => {
                    tracing::warn!(%error, "no fork server; spawning Python executors instead");
                    *state = State::Off;
                }
            }
        }
    }

    /// Stops using the fork server: kills it and waits (up to `grace`) for it to exit.
    pub(crate) async fn close(&self, grace: Duration) {
        let previous = std::mem::replace(&mut *self.state.borrow_mut(), State::Off);
        if let State::Running(server) = previous {
            server.shutdown();
            let _ = tokio::time::timeout(grace, server.wait_dead()).await;
        }
    }
}

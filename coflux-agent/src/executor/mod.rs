//! Executor processes: launch, discovery, the warm pool and the executor protocol.
//!
//! Target code runs in child processes speaking the Coflux 0.12 executor protocol
//! ([`coflux_core::protocol::executor`]): the Python adapter (`python -m coflux`), one
//! execution per process, or a Rust repository binary built with
//! [`coflux_core::sdk::executor::main`], which serves many executions at once. Python
//! executors are forked from a warm fork server by default ([`ExecutorMode`], `fork`).
//!
//! - [`AdapterCommand`]: which command to run (explicit, or detected like the Coflux CLI);
//! - [`discover`]: the targets a project declares;
//! - [`ExecutorPool`]: runs [`Assignment`]s and gives their [`ExecutionResult`]s, answering
//!   the executors' requests through an [`ExecutorHost`] that the agent runtime implements.
//!
//! Aborting: a single-use (Python) process is killed. A concurrent (Rust) process is shared,
//! so it is sent an `abort` notification instead (our extension; it drops the execution's
//! future) and anything it reports for that execution afterwards is ignored.
//!
//! Assets are persisted and fetched through the host ([`assets`]). Checkpoints arrive with
//! `execute` and their writes go to the host, throttled ([`checkpoints`]); `flush` waits for
//! them. Streams go to the host in order, with demand and subscriptions in between
//! ([`streams`]); a producer's process stays until its streams are closed. Inputs are asked
//! for and waited on through the host ([`inputs`]): a wait on one stays in its process and
//! lends its slot. A `select` with `suspend: true, timeout_ms: 0` answers `null`.
//! Groups are accepted and traced; metrics go to the host ([`ExecutorHost::metric`]), throttled
//! per key as their definition asks (the latest point of a burst is kept).
//!
//! [`ExecutionResult`]: coflux_core::model::ExecutionResult

mod adapter;
pub mod assets;
mod checkpoints;
mod config;
mod context;
mod discovery;
mod ending;
mod error;
mod fork;
mod host;
mod inputs;
mod launch;
mod logs;
mod metrics;
mod pool;
mod process;
mod requests;
mod run;
mod scratch;
mod select;
mod streams;
mod values;

pub use adapter::AdapterCommand;
pub use config::PoolConfig;
pub use discovery::{DiscoveryError, discover};
pub use ending::{Ending, Suspension};
pub use error::{EXECUTOR_ERROR, PoolError};
pub use host::{AssetEntry, AssetRecord, ExecutorHost, HostError, LogRecord, NewAsset, WaitChange};
pub use launch::ExecutorMode;
pub use pool::{Assignment, ExecutorPool, PoolStats};

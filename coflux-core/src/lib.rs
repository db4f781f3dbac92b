//! Coflux-rs core: the orchestrator as a library.
//!
//! - [`model`]: plain data (ids, environments, targets, values, results, runs);
//! - [`store`]: per-project SQLite, group-committed, recovered on open;
//! - [`orchestration`]: the actors (supervisor → project → environments, runs) and the pure
//!   state machines they wrap;
//! - [`protocol`]: wire types between agents and the server, and between agents and executor
//!   processes;
//! - [`sdk`]: Rust workflows and tasks;
//! - [`api`]: the embedding surface (open a data directory, submit, inspect, re-run);
//! - [`tuning`]: how long threads poll for work before they sleep.

#![warn(missing_docs)]

pub mod api;
pub mod model;
pub mod orchestration;
pub mod protocol;
pub mod sdk;
pub mod store;
pub mod tuning;

pub use api::{Coflux, Config, Error, Project, RunHandle, SubmitOptions, Worker, WorkerOptions};
pub use tuning::Tuning;

//! The actix actors hosting the state machines: a [`Supervisor`] starts projects on a shared
//! pool of arbiters; each project runs a project actor, one actor per environment and one per
//! active run, all on one arbiter. Every outbox goes through the project's group-commit writer, which
//! sends its messages only once its writes are durable.
//!
//! Supervision is explicit (actix does not restart an actor whose handler panicked): the
//! [`Router`] checks that an actor is alive before delivering to it and re-creates a dead run
//! from the database, a dead environment from its workers' registrations.

mod hosts;
mod link;
mod release;
mod router;
mod supervisor;
#[cfg(test)]
mod unload_tests;

pub use crate::tuning::{Doorbell, spinning_arbiter};
pub use hosts::Deliver;
pub use router::{EnvironmentActor, ProjectActor, Router, RunActor, WorkerRegistration};
pub use supervisor::{
    LoadedProjects, OpenProject, OpenProjectError, ProjectHandle, Supervisor, SupervisorConfig,
};

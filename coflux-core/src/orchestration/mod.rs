//! Orchestration: pure state machines (project, environment, run) that decide, and the actix
//! actors that host them. `store` records what they decide; nothing here knows HTTP or
//! processes.

pub mod actors;
pub mod cache;
pub mod environment;
pub mod error;
pub mod messages;
pub mod project;
pub mod registration;
pub mod run;

pub use error::OrchestrationError;

#[cfg(test)]
mod calls_tests;
#[cfg(test)]
mod checkpoint_tests;
#[cfg(test)]
mod harness;
#[cfg(test)]
mod input_tests;
#[cfg(test)]
mod semantics_tests;
#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod view_tests;

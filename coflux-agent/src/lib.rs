//! Coflux-rs agent: hosts repositories of targets through the executor protocol and executes
//! what the server assigns; also the `coflux` command-line client.

pub mod cli;
pub mod cmd;
pub mod dev;
mod devloop;
pub mod executor;
pub mod net;
pub mod repository;
pub mod runtime;

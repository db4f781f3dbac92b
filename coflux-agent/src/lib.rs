//! Coflux-rs agent: hosts repositories of targets through the executor protocol and executes
//! what the server assigns; also the `coflux` command-line client.

pub mod cli;
pub mod dev;
pub mod executor;
pub mod cmd;
mod devloop;
pub mod runtime;

//! Wire types for everything that crosses a process boundary:
//!
//! - [`executor`]: the executor protocol of Coflux 0.12 (JSON lines over stdio) between an
//!   agent and the processes that run target code (the real Python `coflux` adapter, or a Rust
//!   repository built with our SDK);
//! - [`agent`]: binary frames between agents and the server over WebSocket, encoded by
//!   [`codec`].

pub mod agent;
pub mod codec;
pub mod executor;

#[cfg(test)]
mod fuzz_tests;

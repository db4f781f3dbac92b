//! Wire types for everything that crosses a process boundary:
//!
//! - [`executor`]: the executor protocol of Coflux 0.12 (JSON lines over stdio) between an
//!   agent and the processes that run target code (the real Python `coflux` adapter, or a Rust
//!   repository built with our SDK);
//! - [`agent`]: binary frames between agents and the server over WebSocket, encoded by
//!   [`codec`];
//! - [`http`]: the request and response bodies of the server's JSON API.

pub mod agent;
pub mod codec;
pub mod executor;
pub mod http;

#[cfg(test)]
mod fuzz_tests;

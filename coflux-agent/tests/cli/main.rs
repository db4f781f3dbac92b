//! The `coflux` CLI and `coflux-agent` binaries against a real server on 127.0.0.1.

#[path = "../support/server.rs"]
mod support;

mod agent;
mod config;
mod environments;
mod flows;
mod queue;
mod submit;
mod views;

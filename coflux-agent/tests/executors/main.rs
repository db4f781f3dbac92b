//! The agent's executor pool against a fake host: Rust repositories and the real Python
//! adapter, spawned and forked.

#[path = "../support/fake_host.rs"]
mod fake_host;
#[path = "../support/python.rs"]
mod python;

mod fork;
mod python_adapter;
mod rust_repository;

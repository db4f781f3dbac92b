//! End-to-end tests: embedded programs, and real server, agent and CLI processes on 127.0.0.1,
//! with Rust repositories and the real `coflux==0.12.0` Python package. One test binary, one
//! module per area (the chaos suite is the other binary: `tests/chaos/main.rs`).

mod assets;
mod durability;
mod embedded;
mod embedded_assets;
mod embedded_checkpoints;
mod embedded_driver;
mod embedded_registration;
mod embedded_semantics;
mod embedded_streams;
mod inputs;
mod large_values;
mod metrics;
mod parity;
mod projects_scale;
mod registration;
mod remote;
mod rust_assets;
mod rust_semantics;
mod semantics;
mod streams;
mod supervision;

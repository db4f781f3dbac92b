//! A Rust repository served as an executor binary: the agent runs it as it runs the Python
//! adapter (`coflux-example-repo discover examples.repo`, `coflux-example-repo execute`), and
//! one process serves many executions at once.
//!
//! ```text
//! cargo build -p coflux-examples --bin coflux-example-repo
//! target/debug/coflux-example-repo discover
//! ```

use std::process::ExitCode;

/// mimalloc: per task, glibc's malloc cost more CPU than the work (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    coflux_core::sdk::executor::main(coflux_examples::repository())
}

//! The example repository (module `examples.repo`): the targets that the remote examples, the
//! end-to-end tests and the remote benchmark run. `coflux-example-repo` serves it as an executor
//! binary; `cargo run --release --example local` runs it under a local server and agent.
//!
//! With `COFLUX_EXAMPLE_SEMANTICS` set in its environment, the repository also hosts
//! [`semantics`] (module `examples.semantics`): targets that suspend, recur, defer, wait for
//! handles and call workflows, for the end-to-end tests (kept out of the default listing so the
//! local example shows the same repository). Likewise `COFLUX_EXAMPLE_ASSETS` adds [`assets`]
//! (module `examples.assets`): targets persisting and restoring assets.

use std::fmt;

use coflux_core::sdk::{Failure, Repository, current_execution, task, workflow};

pub mod assets;
pub mod semantics;

/// Squares a number; results are cached across runs.
#[task(module = "examples.repo", cache)]
async fn square(x: u64) -> Result<u64, Failure> {
    Ok(x * x)
}

/// Sums the squares of 1..=n, computing them in parallel.
#[workflow(module = "examples.repo")]
async fn sum_of_squares(n: u64) -> Result<u64, Failure> {
    let handles: Vec<_> = (1..=n).map(|i| square.submit(i)).collect();
    let mut total = 0;
    for handle in handles {
        total += handle.result().await?;
    }
    Ok(total)
}

/// Dividing by zero, as a typed error.
#[derive(Debug)]
pub struct DivisionByZero {
    numerator: i64,
}

impl fmt::Display for DivisionByZero {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot divide {} by zero", self.numerator)
    }
}

impl std::error::Error for DivisionByZero {}

/// Divides, failing with [`DivisionByZero`] (its Rust type name is the error's type).
#[task(module = "examples.repo")]
async fn divide(a: i64, b: i64) -> Result<i64, DivisionByZero> {
    if b == 0 {
        return Err(DivisionByZero { numerator: a });
    }
    Ok(a / b)
}

/// Fails on its first attempt; its retry policy recovers.
#[task(
    module = "examples.repo",
    retries(limit = 2, backoff_min_ms = 10, backoff_max_ms = 100)
)]
async fn flaky(x: u64) -> Result<u64, Failure> {
    match current_execution().map_or(1, |e| e.attempt) {
        1 => Err(Failure::new(
            "examples.repo.Flaky",
            "first attempts always fail",
        )),
        _ => Ok(x),
    }
}

/// Does nothing (for benchmarks: the cost of one task).
#[task(module = "examples.repo")]
async fn noop() -> Result<(), Failure> {
    Ok(())
}

/// Calls `noop` n times, one after the other (for benchmarks: the cost of a round trip).
#[workflow(module = "examples.repo")]
async fn chain(n: u64) -> Result<u64, Failure> {
    for _ in 0..n {
        noop.call().await?;
    }
    Ok(n)
}

/// Fibonacci numbers, recursively, each one a cached task.
#[task(module = "examples.repo", cache)]
async fn fib(n: u64) -> Result<u64, Failure> {
    if n < 2 {
        return Ok(n);
    }
    let (a, b) = (fib.submit(n - 1), fib.submit(n - 2));
    Ok(a.result().await? + b.result().await?)
}

/// The id of the process that ran it (shows that one process serves many executions).
#[task(module = "examples.repo")]
async fn pid() -> Result<u32, Failure> {
    Ok(std::process::id())
}

/// Panics: the execution fails with `coflux.Panic`, and the process carries on.
#[task(module = "examples.repo")]
async fn explode(message: String) -> Result<(), Failure> {
    panic!("{message}");
}

/// Runs `n` `noop` tasks at once and waits for all of them (for benchmarks: fan-out).
#[workflow(module = "examples.repo")]
async fn fanout(n: u64) -> Result<u64, Failure> {
    let handles: Vec<_> = (0..n).map(|_| noop.submit()).collect();
    for handle in handles {
        handle.result().await?;
    }
    Ok(n)
}

/// Every target of the example repository (and [`semantics::repository`]'s when
/// `COFLUX_EXAMPLE_SEMANTICS` is set, [`assets::repository`]'s when `COFLUX_EXAMPLE_ASSETS` is).
pub fn repository() -> Repository {
    let mut repository = Repository::new();
    if std::env::var_os("COFLUX_EXAMPLE_SEMANTICS").is_some() {
        repository = repository.merge(semantics::repository());
    }
    if std::env::var_os("COFLUX_EXAMPLE_ASSETS").is_some() {
        repository = repository.merge(assets::repository());
    }
    repository
        .with(square)
        .with(sum_of_squares)
        .with(divide)
        .with(flaky)
        .with(noop)
        .with(chain)
        .with(fanout)
        .with(fib)
        .with(pid)
        .with(explode)
}

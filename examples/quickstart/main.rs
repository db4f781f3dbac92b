//! Quickstart: an embedded orchestrator in one process.
//!
//! Runs four workflows in the `production` environment of the project `quickstart`, with data
//! kept in `./.coflux` (set `COFLUX_DATA_DIR` to change it): a hello workflow calling a task, a
//! fan-out over a cached task, and a workflow whose task fails once and is retried. It prints
//! each run's result and its steps. Run it twice: the second time the cached squares are cache
//! hits, recorded from the first run.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```

use std::time::{Duration, Instant};

use coflux_core::Coflux;
use coflux_core::sdk::{Failure, Repository, current_execution, task, workflow};

/// Builds a greeting.
#[task]
async fn greet(name: String) -> Result<String, Failure> {
    Ok(format!("Hello, {name}!"))
}

/// Greets someone, through a task.
#[workflow]
async fn hello(name: String) -> Result<String, Failure> {
    Ok(greet.call(name).await?)
}

/// Squares a number slowly; results are cached across runs.
#[task(cache)]
async fn square(n: u64) -> Result<u64, Failure> {
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    Ok(n * n)
}

/// Sums squares, computing them in parallel (fan-out, then fan-in).
#[workflow]
async fn sum_of_squares(n: u64) -> Result<u64, Failure> {
    let handles: Vec<_> = (1..=n).map(|i| square.submit(i)).collect();
    let mut total = 0;
    for handle in handles {
        total += handle.result().await?;
    }
    Ok(total)
}

/// Fetches a page; the first attempt always fails, and the retry policy recovers.
#[task(retries(limit = 2, backoff_min_ms = 100, backoff_max_ms = 500))]
async fn flaky_fetch(url: String) -> Result<String, Failure> {
    let attempt = current_execution().map_or(1, |e| e.attempt);
    if attempt == 1 {
        return Err(Failure::new(
            "quickstart.ConnectionReset",
            format!("connection reset while fetching {url}"),
        ));
    }
    Ok(format!("<html>{url}, attempt {attempt}</html>"))
}

/// Fetches a page through the flaky task.
#[workflow]
async fn fetch(url: String) -> Result<String, Failure> {
    Ok(flaky_fetch.call(url).await?)
}

#[actix_rt::main]
async fn main() -> anyhow::Result<()> {
    let data_dir = std::env::var("COFLUX_DATA_DIR").unwrap_or_else(|_| ".coflux".into());
    let coflux = Coflux::open(&data_dir).await?;
    let project = coflux.project("quickstart").await?;
    project.ensure_environment("production", None).await?;
    let repository = Repository::new()
        .with(hello)
        .with(greet)
        .with(sum_of_squares)
        .with(square)
        .with(fetch)
        .with(flaky_fetch);
    let worker = project.serve("production", repository).await?;
    println!("data in {data_dir}/ (project 'quickstart', environment 'production')\n");

    let started = Instant::now();
    let run = project.submit("production", &hello, ("world",)).await?;
    let greeting: String = run.result().await?;
    println!("hello(\"world\") = {greeting:?}");
    print!("{}", run.inspect().await?);

    let run = project.submit("production", &sum_of_squares, (5,)).await?;
    let total: u64 = run.result().await?;
    println!("\nsum_of_squares(5) = {total}");
    let view = run.inspect().await?;
    let hits = view
        .steps_named("square")
        .filter(|s| {
            s.executions.iter().any(|e| {
                matches!(
                    e.result,
                    Some(coflux_core::model::ExecutionResult::Cached { .. })
                )
            })
        })
        .count();
    print!("{view}");
    println!(
        "({hits} of 5 squares were cache hits{})",
        if hits == 0 {
            "; run the example again to see them reused"
        } else {
            ""
        }
    );

    let run = project
        .submit("production", &fetch, ("https://example.com",))
        .await?;
    let page: String = run.result().await?;
    println!("\nfetch(\"https://example.com\") = {page:?}");
    print!("{}", run.inspect().await?);

    println!("\nall runs finished in {:.0?}", started.elapsed());
    worker.stop();
    Ok(())
}

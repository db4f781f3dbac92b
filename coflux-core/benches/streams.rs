//! Stream benchmark (embedded, durable SQLite store): the cost of one stream item, as a ratio
//! to the cost of one sequential child call measured in the same command.
//!
//! ```text
//! cargo bench -p coflux-core --bench streams
//! ```
//!
//! - `stream_items_ms`: a task registering a stream and appending 2,000 items (each a separate
//!   durable commit), which its caller then reads back whole (median of 3);
//! - `paced_items_ms`: the same with a producer paced by its consumer (`stream_with`, a buffer
//!   of 64 items): what the demand round trips and acknowledgements add;
//! - `seq_calls_ms`: a workflow calling a trivial task 2,000 times in sequence (median of 3):
//!   the baseline.
//!
//! The last line of stdout is a JSON object with the times, the per-item and per-call costs
//! and the ratios (item/call, paced/unbounded).

use std::time::Instant;

use coflux_core::Coflux;
use coflux_core::sdk::{
    Failure, Repository, Stream, StreamOptions, stream, stream_with, task, workflow,
};
use futures::TryStreamExt;

const N: u64 = 2_000;
const REPETITIONS: usize = 3;

#[task]
async fn numbers(n: u64) -> Result<Stream<u64>, Failure> {
    Ok(stream(futures::stream::iter(0..n)).await?)
}

#[workflow]
async fn read_all(n: u64) -> Result<u64, Failure> {
    let items: Vec<u64> = numbers.call(n).await?.items().try_collect().await?;
    Ok(items.len() as u64)
}

#[task]
async fn paced_numbers(n: u64) -> Result<Stream<u64>, Failure> {
    let items = futures::stream::iter(0..n);
    Ok(stream_with(items, StreamOptions::buffer(64)).await?)
}

#[workflow]
async fn read_all_paced(n: u64) -> Result<u64, Failure> {
    let items: Vec<u64> = paced_numbers.call(n).await?.items().try_collect().await?;
    Ok(items.len() as u64)
}

#[task]
async fn inc(x: u64) -> Result<u64, Failure> {
    Ok(x + 1)
}

#[workflow]
async fn chain(n: u64) -> Result<u64, Failure> {
    let mut x = 0;
    for _ in 0..n {
        x = inc.call(x).await?;
    }
    Ok(x)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

async fn measure(dir: &std::path::Path) -> anyhow::Result<(f64, f64, f64)> {
    let coflux = Coflux::open(dir).await?;
    let project = coflux.project("bench").await?;
    project.ensure_environment("bench", None).await?;
    let repository = Repository::new()
        .with(numbers)
        .with(read_all)
        .with(paced_numbers)
        .with(read_all_paced)
        .with(inc)
        .with(chain);
    let _worker = project.serve("bench", repository).await?;
    let mut streams = Vec::new();
    let mut calls = Vec::new();
    let mut paced = Vec::new();
    for _ in 0..REPETITIONS {
        let started = Instant::now();
        let run = project.submit("bench", &read_all, (N,)).await?;
        anyhow::ensure!(run.result::<u64>().await? == N, "items lost");
        streams.push(started.elapsed().as_secs_f64() * 1e3);
        let started = Instant::now();
        let run = project.submit("bench", &read_all_paced, (N,)).await?;
        anyhow::ensure!(run.result::<u64>().await? == N, "paced items lost");
        paced.push(started.elapsed().as_secs_f64() * 1e3);
        let started = Instant::now();
        let run = project.submit("bench", &chain, (N,)).await?;
        anyhow::ensure!(run.result::<u64>().await? == N, "calls lost");
        calls.push(started.elapsed().as_secs_f64() * 1e3);
    }
    Ok((median(streams), median(calls), median(paced)))
}

fn main() -> anyhow::Result<()> {
    let base = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&base)?;
    let dir = tempfile::Builder::new()
        .prefix("coflux-bench-streams-")
        .tempdir_in(&base)?;
    let (stream_ms, calls_ms, paced_ms) = actix_rt::System::new().block_on(measure(dir.path()))?;
    let item_us = stream_ms * 1e3 / N as f64;
    let call_us = calls_ms * 1e3 / N as f64;
    println!("stream_items_ms {stream_ms:.1} ({item_us:.1} µs per item, written and read)");
    println!("seq_calls_ms    {calls_ms:.1} ({call_us:.1} µs per sequential call)");
    println!("paced_items_ms  {paced_ms:.1} (buffer 64)");
    println!("ratio item/call {:.2}", item_us / call_us);
    println!("ratio paced/unbounded {:.2}", paced_ms / stream_ms);
    println!(
        "{}",
        serde_json::json!({"stream_items_ms": stream_ms, "seq_calls_ms": calls_ms,
            "paced_items_ms": paced_ms, "item_us": item_us, "call_us": call_us,
            "ratio": item_us / call_us, "paced_ratio": paced_ms / stream_ms})
    );
    Ok(())
}

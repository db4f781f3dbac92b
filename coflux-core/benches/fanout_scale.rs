//! Embedded fan-out scaling benchmark: whether a wide fan-out's cost is linear in its width.
//!
//! ```text
//! cargo bench -p coflux-core --bench fanout_scale                # 1,000 / 10,000 / 20,000
//! cargo bench -p coflux-core --bench fanout_scale -- 1000 50000  # other widths
//! ```
//!
//! A workflow submits `n` trivial tasks, then awaits them one by one, in one process over a
//! durable SQLite store (a fresh temporary directory). Each width runs once with the in-process
//! worker's default (unbounded) concurrency and once with a concurrency of 1,000 (as the
//! `coflux-server` benches' agent; in-process tasks end about as fast as they are submitted, so
//! the environment's queue stays short, unlike behind a remote agent). The last line of stdout
//! is one JSON object with `fanout_<n>_ms` and `ratio_<n>_<first>` (time over the first width's;
//! 10.0 for 10,000 vs 1,000 when linear), and the same with a `c1000_` prefix.
//! Compare ratios of one command: wall times are noisy on a busy machine.

use std::time::{Duration, Instant};

use anyhow::bail;
use coflux_core::sdk::{Failure, Repository, task, workflow};
use coflux_core::{Coflux, Config, WorkerOptions};
use serde_json::{Map, Value as Json, json};

const ENVIRONMENT: &str = "bench";

/// Adds one.
#[task]
async fn inc(x: u64) -> Result<u64, Failure> {
    Ok(x + 1)
}

/// Submits `inc(0..n)` all at once, then awaits every result and sums them.
#[workflow]
async fn fanout(n: u64) -> Result<u64, Failure> {
    let handles: Vec<_> = (0..n).map(|i| inc.submit(i)).collect();
    let mut total = 0;
    for handle in handles {
        total += handle.result().await?;
    }
    Ok(total)
}

/// Runs each width in a project of its own, served by a worker with `concurrency` (if given);
/// returns the times in ms.
async fn widths(
    coflux: &Coflux,
    label: &str,
    concurrency: Option<usize>,
    widths: &[u64],
) -> anyhow::Result<Vec<f64>> {
    let project = coflux.project(label).await?;
    project.ensure_environment(ENVIRONMENT, None).await?;
    let mut options = WorkerOptions::default();
    if let Some(c) = concurrency {
        options.concurrency = c;
    }
    let repository = Repository::new().with(inc).with(fanout);
    let worker = project.serve_with(ENVIRONMENT, repository, options).await?;
    // A 100-task warm-up first.
    let mut times = Vec::new();
    for &n in std::iter::once(&100).chain(widths) {
        let started = Instant::now();
        let run = project.submit(ENVIRONMENT, &fanout, (n,)).await?;
        let value: u64 = run.result().await?;
        let elapsed = started.elapsed();
        if value != n * (n + 1) / 2 {
            bail!("fanout({n}) returned {value}");
        }
        eprintln!("{label} fanout({n}): {:.1} ms", ms(elapsed));
        times.push(ms(elapsed));
    }
    worker.stop();
    Ok(times[1..].to_vec())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn short(n: u64) -> String {
    if n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

fn main() -> anyhow::Result<()> {
    let mut sizes: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if sizes.is_empty() {
        sizes = vec![1_000, 10_000, 20_000];
    }
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    actix_rt::System::new().block_on(async move {
        let coflux = Coflux::open_with(Config::new(dir.path())).await?;
        let mut figures = Map::new();
        for (prefix, concurrency) in [("", None), ("c1000_", Some(1_000))] {
            let label = if prefix.is_empty() {
                "unbounded"
            } else {
                "c1000"
            };
            let times = widths(&coflux, label, concurrency, &sizes).await?;
            for (n, t) in sizes.iter().zip(&times) {
                figures.insert(format!("{prefix}fanout_{n}_ms"), json!(t.round()));
                if *n != sizes[0] {
                    let ratio = (t / times[0] * 100.0).round() / 100.0;
                    let key = format!("{prefix}ratio_{}_{}", short(*n), short(sizes[0]));
                    figures.insert(key, json!(ratio));
                }
            }
        }
        println!("{}", Json::Object(figures));
        anyhow::Ok(())
    })
}

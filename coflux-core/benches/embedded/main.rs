//! Embedded-mode benchmark: the whole orchestrator in this process, over a durable SQLite store.
//!
//! ```text
//! cargo bench -p coflux-core --bench embedded             # Durability::Normal (default)
//! cargo bench -p coflux-core --bench embedded -- --full   # Durability::Full (fsync per commit)
//! ```
//!
//! The data directory is a fresh temporary directory under Cargo's `CARGO_TARGET_TMPDIR` (inside
//! `target/`, so on the same disk as the working tree, not on a tmpfs); it is removed at the end.
//! Each scenario uses its own project (hence its own SQLite file), served by one in-process
//! worker. Every task is trivial (`inc(x) = x + 1`), so the figures measure the orchestrator:
//! message passing, state machines and commits.
//!
//! Figures (times are from `submit` to the run's decoded result):
//!
//! - `seq_1000_ms`: a workflow calling `inc` 1,000 times, each call awaiting the previous one
//!   (median of 3, after a 100-call warm-up run);
//! - `fanout_10000_ms`: a workflow submitting 10,000 `inc` tasks, then awaiting them all
//!   (median of 3, after a 1,000-task warm-up run); `fanout_tasks_per_s` is 10,000 / that time;
//! - `latency_p50_ms` / `latency_p99_ms`: a workflow calling one `inc`, submitted 1,000 times one
//!   after the other (after 100 warm-ups);
//! - `peak_rss_mb`: the process's peak resident set size (`VmHWM`) at the end, in MiB;
//! - `sqlite_commits_per_s`: the store's `raw_commit_benchmark` (2,000 one-row transactions
//!   with the same durability, on the same disk): the physical reference for the figures above.
//!
//! A human-readable table (with the targets `seq_1000_ms ≤ 100`, `fanout_tasks_per_s ≥ 20,000`,
//! `latency_p50_ms ≤ 0.5`) and ratios against the raw commit time come first; the last line of
//! stdout is one JSON object with the figures. Progress (with each run's time and the resident
//! memory) goes to stderr. A pathologically slow scenario is cut short so that the bench always
//! finishes: after 25 s its remaining repetitions are skipped, and a run with no result after
//! 60 s is reported with 60 s as its time (a bound, flagged as such and never counted as met).

mod measure;
mod report;
mod scenarios;
mod system;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use coflux_core::store::Durability;
use coflux_core::store::sqlite::raw_commit_benchmark;

use crate::scenarios::{Figures, scenarios};
use crate::system::{filesystem_of, log_memory, memory_mb};

const ENVIRONMENT: &str = "bench";
const SEQ_CALLS: u64 = 1_000;
const SEQ_WARMUP_CALLS: u64 = 100;
const FANOUT_TASKS: u64 = 10_000;
const FANOUT_WARMUP_TASKS: u64 = 1_000;
const REPETITIONS: usize = 3;
const LATENCY_SAMPLES: usize = 1_000;
const LATENCY_WARMUPS: usize = 100;
const RAW_COMMITS: u32 = 2_000;
/// A single run taking longer than this is reported as this long (and flagged).
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// Once a scenario has spent this long, its remaining repetitions are skipped.
const SCENARIO_BUDGET: Duration = Duration::from_secs(25);

fn main() -> anyhow::Result<()> {
    let full = std::env::args().skip(1).any(|a| a == "--full");
    let durability = if full {
        Durability::Full
    } else {
        Durability::Normal
    };

    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&base)?;
    let dir = tempfile::Builder::new()
        .prefix("coflux-bench-")
        .tempdir_in(&base)?;
    let fs = filesystem_of(dir.path());
    match &fs {
        Some((fs_type, mount)) => {
            eprintln!("data in {} ({fs_type} on {mount})", dir.path().display());
            if fs_type == "tmpfs" || fs_type == "ramfs" {
                eprintln!("warning: the data directory is on {fs_type}, not on a disk");
            }
        }
        None => eprintln!("data in {}", dir.path().display()),
    }
    eprintln!("durability: {durability:?}");

    let mut figures = Figures::default();

    eprintln!("sqlite: {RAW_COMMITS} raw commits");
    figures.sqlite_commits_per_s =
        raw_commit_benchmark(&dir.path().join("raw.sqlite"), durability, RAW_COMMITS)?;
    eprintln!("  {:.0} commits/s", figures.sqlite_commits_per_s);

    log_memory("the raw commits");
    let data_dir = dir.path().join("data");
    let started = Instant::now();
    actix_rt::System::new().block_on(scenarios(data_dir, durability, &mut figures))?;
    eprintln!("scenarios took {:.1} s", started.elapsed().as_secs_f64());
    figures.peak_rss_mb = memory_mb("VmHWM");

    report::print(&figures, durability, fs.as_ref());
    Ok(())
}

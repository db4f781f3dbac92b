//! The workloads (trivial tasks and workflows) and the three timed scenarios run on them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use coflux_core::sdk::{Failure, Repository, task, workflow};
use coflux_core::store::Durability;
use coflux_core::{Coflux, Config, Project};

use crate::measure::{Cut, measure, ms, percentile, timed_run};
use crate::system::{log_memory, log_thread_cpu, thread_cpu};
use crate::{
    ENVIRONMENT, FANOUT_TASKS, FANOUT_WARMUP_TASKS, LATENCY_SAMPLES, LATENCY_WARMUPS, REPETITIONS,
    SCENARIO_BUDGET, SEQ_CALLS, SEQ_WARMUP_CALLS,
};

/// Adds one.
#[task]
async fn inc(x: u64) -> Result<u64, Failure> {
    Ok(x + 1)
}

/// Calls `inc` `n` times in sequence, each call on the previous result.
#[workflow]
async fn chain(n: u64) -> Result<u64, Failure> {
    let mut x = 0;
    for _ in 0..n {
        x = inc.call(x).await?;
    }
    Ok(x)
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

/// Calls `inc` once.
#[workflow]
async fn single(x: u64) -> Result<u64, Failure> {
    Ok(inc.call(x).await?)
}

/// The figures measured (and whether each scenario ran in full).
#[derive(Default)]
pub(crate) struct Figures {
    pub(crate) seq_1000_ms: f64,
    pub(crate) fanout_10000_ms: f64,
    pub(crate) fanout_tasks_per_s: f64,
    pub(crate) latency_p50_ms: f64,
    pub(crate) latency_p99_ms: f64,
    pub(crate) peak_rss_mb: f64,
    pub(crate) sqlite_commits_per_s: f64,
    pub(crate) seq_cut: Cut,
    pub(crate) fanout_cut: Cut,
    pub(crate) latency_cut: Cut,
}

pub(crate) async fn open_project(
    coflux: &Coflux,
    name: &str,
) -> anyhow::Result<(Project, coflux_core::Worker)> {
    let project = coflux.project(name).await?;
    project.ensure_environment(ENVIRONMENT, None).await?;
    let repository = Repository::new()
        .with(inc)
        .with(chain)
        .with(fanout)
        .with(single);
    let worker = project.serve(ENVIRONMENT, repository).await?;
    Ok((project, worker))
}

pub(crate) async fn scenarios(
    data_dir: PathBuf,
    durability: Durability,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let mut config = Config::new(&data_dir);
    config.durability = durability;
    // `COFLUX_BENCH_SPIN_US=N` overrides the writer's spin (for experiments).
    if let Some(us) = std::env::var("COFLUX_BENCH_SPIN_US")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        config.tuning.writer_spin = Duration::from_micros(us);
    }
    // `COFLUX_BENCH_WORKER_SPIN_US=N` overrides the worker's spin (for experiments).
    if let Some(us) = std::env::var("COFLUX_BENCH_WORKER_SPIN_US")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        config.tuning.worker_spin = Duration::from_micros(us);
    }
    let coflux = Coflux::open_with(config).await?;
    // `COFLUX_BENCH_ONLY=seq,latency` runs only those scenarios (for profiling).
    let only = std::env::var("COFLUX_BENCH_ONLY").ok();
    let wanted = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|s| s == name))
    };

    // 1. Sequential calls.
    if wanted("seq") {
        let cpu = thread_cpu();
        let (project, worker) = open_project(&coflux, "seq").await?;
        eprintln!(
            "seq: warm-up ({SEQ_WARMUP_CALLS} calls), then {REPETITIONS} × {SEQ_CALLS} calls"
        );
        let (seq, seq_cut) = measure(
            "seq",
            &project,
            &chain,
            (SEQ_WARMUP_CALLS, SEQ_WARMUP_CALLS),
            (SEQ_CALLS, SEQ_CALLS),
        )
        .await?;
        figures.seq_1000_ms = seq;
        figures.seq_cut = seq_cut;
        log_thread_cpu(
            "seq",
            &cpu,
            (SEQ_WARMUP_CALLS + REPETITIONS as u64 * SEQ_CALLS) as f64,
            "task",
        );
        worker.stop();
        log_memory("seq");
    }

    // 2. Fan-out.
    if wanted("fanout") {
        let cpu = thread_cpu();
        let (project, worker) = open_project(&coflux, "fanout").await?;
        let sum = |n: u64| n * (n + 1) / 2;
        eprintln!(
            "fanout: warm-up ({FANOUT_WARMUP_TASKS} tasks), then {REPETITIONS} × {FANOUT_TASKS} tasks"
        );
        let (fan, fanout_cut) = measure(
            "fanout",
            &project,
            &fanout,
            (FANOUT_WARMUP_TASKS, sum(FANOUT_WARMUP_TASKS)),
            (FANOUT_TASKS, sum(FANOUT_TASKS)),
        )
        .await?;
        figures.fanout_10000_ms = fan;
        figures.fanout_tasks_per_s = FANOUT_TASKS as f64 / (fan / 1e3);
        figures.fanout_cut = fanout_cut;
        log_thread_cpu(
            "fanout",
            &cpu,
            (FANOUT_WARMUP_TASKS + REPETITIONS as u64 * FANOUT_TASKS) as f64,
            "task",
        );
        worker.stop();
        log_memory("fanout");
    }

    // 3. Latency of a one-task workflow.
    if wanted("latency") {
        let cpu = thread_cpu();
        let (project, worker) = open_project(&coflux, "latency").await?;
        eprintln!("latency: {LATENCY_WARMUPS} warm-ups, {LATENCY_SAMPLES} samples");
        let started = Instant::now();
        let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
        for i in 0..(LATENCY_WARMUPS + LATENCY_SAMPLES) as u64 {
            let t = timed_run(&project, &single, i, i + 1).await?;
            let over_budget = started.elapsed() > SCENARIO_BUDGET;
            if i >= LATENCY_WARMUPS as u64 || t.timed_out || over_budget {
                samples.push(ms(t.elapsed));
            }
            if t.timed_out || over_budget {
                eprintln!("  latency: stopped after {} samples", samples.len());
                figures.latency_cut = if t.timed_out {
                    Cut::Timeout
                } else {
                    Cut::Budget
                };
                break;
            }
        }
        samples.sort_by(f64::total_cmp);
        figures.latency_p50_ms = percentile(&samples, 50.0);
        figures.latency_p99_ms = percentile(&samples, 99.0);
        eprintln!(
            "  min {:.3} ms, p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            samples.first().copied().unwrap_or(f64::NAN),
            figures.latency_p50_ms,
            percentile(&samples, 90.0),
            figures.latency_p99_ms,
            samples.last().copied().unwrap_or(f64::NAN),
        );
        log_thread_cpu(
            "latency",
            &cpu,
            (LATENCY_WARMUPS + LATENCY_SAMPLES) as f64,
            "run",
        );
        worker.stop();
        log_memory("latency");
    }
    Ok(())
}

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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use coflux_core::sdk::{Failure, Repository, task, workflow};
use coflux_core::store::Durability;
use coflux_core::store::sqlite::raw_commit_benchmark;
use coflux_core::{Coflux, Config, Project};

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

/// One timed run.
struct Timed {
    elapsed: Duration,
    timed_out: bool,
}

/// Submits `workflow(argument)`, waits for its result (at most [`RUN_TIMEOUT`]) and checks it.
async fn timed_run(
    project: &Project,
    workflow: &impl coflux_core::sdk::Target,
    argument: u64,
    expected: u64,
) -> anyhow::Result<Timed> {
    let started = Instant::now();
    let run = project.submit(ENVIRONMENT, workflow, (argument,)).await?;
    match actix_rt::time::timeout(RUN_TIMEOUT, run.result::<u64>()).await {
        Ok(result) => {
            let elapsed = started.elapsed();
            let value = result.with_context(|| format!("run {}", run.run))?;
            if value != expected {
                bail!("run {} returned {value}, expected {expected}", run.run);
            }
            Ok(Timed {
                elapsed,
                timed_out: false,
            })
        }
        Err(_) => {
            eprintln!(
                "  run {} gave no result within {RUN_TIMEOUT:?}; reporting the timeout as its time",
                run.run
            );
            Ok(Timed {
                elapsed: RUN_TIMEOUT,
                timed_out: true,
            })
        }
    }
}

/// Whether a scenario ran in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Cut {
    /// Every repetition ran.
    #[default]
    No,
    /// Some repetitions were skipped for time; the figure is still a real measurement.
    Budget,
    /// A run timed out: its figure is the timeout, a bound rather than a measurement.
    Timeout,
}

impl Cut {
    /// A note for the report, if the scenario did not run in full.
    fn note(self, metric: &str) -> Option<String> {
        match self {
            Cut::No => None,
            Cut::Budget => Some(format!(
                "{metric}: fewer samples than planned (over the {SCENARIO_BUDGET:?} budget)"
            )),
            Cut::Timeout => Some(format!(
                "{metric}: a run gave no result within {RUN_TIMEOUT:?}; the figure is a bound"
            )),
        }
    }
}

/// Runs `workflow` once with the `warm_up` (argument, expected result), then up to
/// [`REPETITIONS`] times with `measured`, and returns the median time in ms and whether the
/// scenario was cut short. If the warm-up times out, the timeout is reported as the time.
async fn measure(
    label: &str,
    project: &Project,
    workflow: &impl coflux_core::sdk::Target,
    warm_up: (u64, u64),
    (argument, expected): (u64, u64),
) -> anyhow::Result<(f64, Cut)> {
    let warm = timed_run(project, workflow, warm_up.0, warm_up.1).await?;
    eprintln!("  {label} warm-up: {:.1} ms", ms(warm.elapsed));
    if warm.timed_out {
        return Ok((ms(warm.elapsed), Cut::Timeout));
    }
    let started = Instant::now();
    let before = project.writer_stats();
    let mut times = Vec::new();
    let mut cut = Cut::No;
    for i in 0..REPETITIONS {
        let t = timed_run(project, workflow, argument, expected).await?;
        eprintln!(
            "  {label} #{}: {:.1} ms (rss {:.1} MiB)",
            i + 1,
            ms(t.elapsed),
            memory_mb("VmRSS")
        );
        times.push(ms(t.elapsed));
        if t.timed_out {
            cut = Cut::Timeout;
            break;
        }
        if i + 1 < REPETITIONS && started.elapsed() > SCENARIO_BUDGET {
            eprintln!("  {label}: over the {SCENARIO_BUDGET:?} budget, skipping the rest");
            cut = Cut::Budget;
            break;
        }
    }
    let after = project.writer_stats();
    let commits = after.commits - before.commits;
    eprintln!(
        "  {label}: {commits} commits for {} runs ({:.1} batches per commit), writer busy {:.1} µs per commit",
        times.len(),
        (after.batches - before.batches) as f64 / commits.max(1) as f64,
        (after.busy_ns - before.busy_ns) as f64 / 1e3 / commits.max(1) as f64
    );
    Ok((median(&mut times), cut))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The `p`-th percentile (nearest rank) of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

/// A memory figure of this process from `/proc/self/status` (`VmHWM`, `VmRSS`…), in MiB.
fn memory_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Logs the current and peak resident set sizes to stderr.
fn log_memory(after: &str) {
    eprintln!(
        "  memory after {after}: rss {:.1} MiB, peak {:.1} MiB",
        memory_mb("VmRSS"),
        memory_mb("VmHWM")
    );
}

/// CPU time (user + system, in ms) and name of each live thread of this process, by thread id.
fn thread_cpu() -> BTreeMap<u32, (String, f64)> {
    let mut threads = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return threads;
    };
    for task in tasks.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // "tid (comm) state ppid …": utime and stime are fields 14 and 15, in clock ticks
        // (100 per second on Linux).
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_owned();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
        if let (Some(user), Some(system)) = (ticks(11), ticks(12)) {
            threads.insert(tid, (name, (user + system) * 10.0));
        }
    }
    threads
}

/// Logs, to stderr, the CPU time each thread spent since `before`, per unit of work. Arbiter
/// threads started since `before` are labelled by creation order (project, then worker).
fn log_thread_cpu(label: &str, before: &BTreeMap<u32, (String, f64)>, units: f64, unit: &str) {
    let main = std::process::id();
    let mut new_arbiters = 0;
    let mut total = 0.0;
    let mut lines = Vec::new();
    for (tid, (name, cpu)) in thread_cpu() {
        let spent = cpu - before.get(&tid).map_or(0.0, |(_, c)| *c);
        let role = if tid == main {
            "main thread (submits, awaits)".to_owned()
        } else if name.starts_with("actix-rt") && !before.contains_key(&tid) {
            new_arbiters += 1;
            match new_arbiters {
                1 => "project arbiter (actors)".to_owned(),
                2 => "worker arbiter (task bodies)".to_owned(),
                _ => format!("arbiter {name}"),
            }
        } else {
            name
        };
        total += spent;
        if spent > 0.0 {
            lines.push(format!(
                "    {role:<32} {spent:>7.0} ms  {:>7.1} µs/{unit}",
                spent * 1e3 / units
            ));
        }
    }
    eprintln!(
        "  {label} CPU by thread (10 ms resolution): {total:.0} ms, {:.1} µs/{unit}",
        total * 1e3 / units
    );
    for line in lines {
        eprintln!("{line}");
    }
}

/// The filesystem type and mount point holding `path` (from `/proc/self/mountinfo`).
fn filesystem_of(path: &Path) -> Option<(String, String)> {
    let path = path.canonicalize().ok()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split_whitespace().nth(4)?;
            let fs_type = right.split_whitespace().next()?;
            path.starts_with(mount_point)
                .then(|| (mount_point.to_owned(), fs_type.to_owned()))
        })
        .max_by_key(|(mount_point, _)| mount_point.len())
        .map(|(m, t)| (t, m))
}

#[derive(Default)]
struct Figures {
    seq_1000_ms: f64,
    fanout_10000_ms: f64,
    fanout_tasks_per_s: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    peak_rss_mb: f64,
    sqlite_commits_per_s: f64,
    seq_cut: Cut,
    fanout_cut: Cut,
    latency_cut: Cut,
}

async fn open_project(
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

async fn scenarios(
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

fn check(ok: bool) -> &'static str {
    if ok { "✓" } else { "✗" }
}

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

    let f = &figures;
    let raw_commit_us = 1e6 / f.sqlite_commits_per_s;
    let seq_task_us = f.seq_1000_ms * 1e3 / SEQ_CALLS as f64;
    let fanout_task_us = f.fanout_10000_ms * 1e3 / FANOUT_TASKS as f64;
    let latency_us = f.latency_p50_ms * 1e3;

    println!(
        "Coflux embedded benchmark — durability {durability:?}, store on {}",
        fs.as_ref()
            .map_or_else(|| "?".to_owned(), |(t, m)| format!("{t} ({m})"))
    );
    println!();
    println!("{:<22} {:>12}  {:<14} met", "metric", "value", "target");
    println!("{}", "-".repeat(54));
    let rows: [(&str, String, String, &str); 7] = [
        (
            "seq_1000_ms",
            format!("{:.1}", f.seq_1000_ms),
            "≤ 100".into(),
            check(f.seq_cut != Cut::Timeout && f.seq_1000_ms <= 100.0),
        ),
        (
            "fanout_10000_ms",
            format!("{:.1}", f.fanout_10000_ms),
            "—".into(),
            "",
        ),
        (
            "fanout_tasks_per_s",
            format!("{:.0}", f.fanout_tasks_per_s),
            "≥ 20,000".into(),
            check(f.fanout_cut != Cut::Timeout && f.fanout_tasks_per_s >= 20_000.0),
        ),
        (
            "latency_p50_ms",
            format!("{:.3}", f.latency_p50_ms),
            "≤ 0.5".into(),
            check(f.latency_cut != Cut::Timeout && f.latency_p50_ms <= 0.5),
        ),
        (
            "latency_p99_ms",
            format!("{:.3}", f.latency_p99_ms),
            "—".into(),
            "",
        ),
        (
            "peak_rss_mb",
            format!("{:.1}", f.peak_rss_mb),
            "—".into(),
            "",
        ),
        (
            "sqlite_commits_per_s",
            format!("{:.0}", f.sqlite_commits_per_s),
            "(reference)".into(),
            "",
        ),
    ];
    for (name, value, target, mark) in &rows {
        println!("{name:<22} {value:>12}  {target:<14} {mark}");
    }
    println!();
    println!("Relative to one raw SQLite commit ({raw_commit_us:.1} µs):");
    println!(
        "  seq:     {seq_task_us:.1} µs per sequential task = {:.1} raw commits",
        seq_task_us / raw_commit_us
    );
    println!(
        "  fan-out: {fanout_task_us:.1} µs per task = {:.2} raw commits",
        fanout_task_us / raw_commit_us
    );
    println!(
        "  latency: {latency_us:.1} µs per 1-task run (p50) = {:.1} raw commits",
        latency_us / raw_commit_us
    );
    let notes = [
        f.seq_cut.note("seq_1000"),
        f.fanout_cut.note("fanout_10000"),
        f.latency_cut.note("latency"),
    ];
    for note in notes.iter().flatten() {
        println!("note: {note}");
    }
    println!();

    let json = serde_json::json!({
        "seq_1000_ms": round(f.seq_1000_ms, 1),
        "fanout_10000_ms": round(f.fanout_10000_ms, 1),
        "fanout_tasks_per_s": round(f.fanout_tasks_per_s, 0),
        "latency_p50_ms": round(f.latency_p50_ms, 3),
        "latency_p99_ms": round(f.latency_p99_ms, 3),
        "peak_rss_mb": round(f.peak_rss_mb, 1),
        "sqlite_commits_per_s": round(f.sqlite_commits_per_s, 0),
    });
    println!("{json}");
    Ok(())
}

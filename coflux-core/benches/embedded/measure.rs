//! Timing runs: one timed run, a repeated scenario with its median, and the statistics helpers.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use coflux_core::Project;

use crate::system::memory_mb;
use crate::{ENVIRONMENT, REPETITIONS, RUN_TIMEOUT, SCENARIO_BUDGET};

/// One timed run.
pub(crate) struct Timed {
    pub(crate) elapsed: Duration,
    pub(crate) timed_out: bool,
}

/// Submits `workflow(argument)`, waits for its result (at most [`RUN_TIMEOUT`]) and checks it.
pub(crate) async fn timed_run(
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
pub(crate) enum Cut {
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
    pub(crate) fn note(self, metric: &str) -> Option<String> {
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
pub(crate) async fn measure(
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

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub(crate) fn median(values: &mut [f64]) -> f64 {
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
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub(crate) fn round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

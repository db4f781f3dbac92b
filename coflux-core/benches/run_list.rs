//! Runs-list benchmark: one page of `Project::query_runs` (the query behind
//! `GET /api/projects/{p}/runs` and the UI's runs table) against the way the UI read a page
//! before it (the newest 5,000 summaries, then each run's full view until the page is full).
//!
//! ```text
//! cargo bench -p coflux-core --bench run_list
//! ```
//!
//! A project holds [`RUNS`] finished runs of a one-step workflow, one in [`ERROR_EVERY`]
//! failing. Figures (medians of [`SAMPLES`] pages of 50 runs, in ms):
//!
//! - `page_ms` / `inspect_page_ms`: the newest page, no filter;
//! - `error_page_ms` / `inspect_error_page_ms`: the newest page of failed runs (status filter,
//!   so about 50 × [`ERROR_EVERY`] runs are examined);
//! - `page_ratio`, `error_page_ratio`: the old way's time over the query's (for the status
//!   filter the old way also stopped after 500 views, so its page held about 25 runs:
//!   `inspect_error_page_rows`).
//!
//! The last line of stdout is one JSON object with the figures.

use std::time::{Duration, Instant};

use coflux_core::api::RunQuery;
use coflux_core::sdk::{Failure, Repository, workflow};
use coflux_core::store::run_list::RunStatus;
use coflux_core::{Coflux, Config, Project};

const RUNS: u64 = 5_000;
const ERROR_EVERY: u64 = 20;
const PAGE: usize = 50;
const SAMPLES: usize = 9;
/// What the UI read before the query: the newest summaries it filtered a page from, and the
/// most runs it inspected for one page.
const OLD_SCAN: usize = 5_000;
const OLD_MAX_INSPECTED: usize = 500;

/// Returns `n`, or fails when `n` is a multiple of [`ERROR_EVERY`].
#[workflow]
async fn job(n: u64) -> Result<u64, Failure> {
    if n.is_multiple_of(ERROR_EVERY) {
        return Err(Failure::new("bench.Fail", "planned failure"));
    }
    Ok(n)
}

/// A page the old way: summaries, then one full view per run until `PAGE` rows match.
async fn inspect_page(project: &Project, status: Option<&str>) -> anyhow::Result<usize> {
    let mut rows = 0;
    let summaries = project.list_runs(OLD_SCAN).await?;
    for summary in summaries.into_iter().take(OLD_MAX_INSPECTED) {
        if rows == PAGE {
            break;
        }
        let view = project.inspect_run(summary.id, None).await?;
        let root = view.steps.first().and_then(|s| s.executions.last());
        let failed = root
            .and_then(|e| e.result.as_ref())
            .is_some_and(|r| matches!(r, coflux_core::model::ExecutionResult::Error { .. }));
        if status.is_none() || failed {
            rows += 1;
        }
    }
    Ok(rows)
}

/// The median time of a page (ms), and how many runs the page held.
async fn median_ms<F, Fut>(mut f: F) -> anyhow::Result<(f64, usize)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<usize>>,
{
    let mut times = Vec::with_capacity(SAMPLES);
    let mut rows = 0;
    for _ in 0..SAMPLES {
        let started = Instant::now();
        rows = f().await?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok((times[SAMPLES / 2].as_secs_f64() * 1000.0, rows))
}

async fn run() -> anyhow::Result<()> {
    let base = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&base)?;
    let dir = tempfile::Builder::new()
        .prefix("coflux-bench-runs-")
        .tempdir_in(&base)?;
    let coflux = Coflux::open_with(Config::new(dir.path())).await?;
    let project = coflux.project("bench").await?;
    project.ensure_environment("bench", None).await?;
    let _worker = project.serve("bench", Repository::new().with(job)).await?;

    let started = Instant::now();
    for chunk in (1..=RUNS).collect::<Vec<_>>().chunks(500) {
        let mut handles = Vec::new();
        for n in chunk {
            handles.push(project.submit("bench", &job, (*n,)).await?);
        }
        for handle in handles {
            let _ = handle.raw_result().await?;
        }
    }
    eprintln!("{RUNS} runs in {:.1} s", started.elapsed().as_secs_f64());
    // Let the last results settle before reading.
    actix_rt::time::sleep(Duration::from_millis(200)).await;

    let query = |status: Option<RunStatus>| RunQuery {
        status,
        limit: PAGE,
        ..RunQuery::default()
    };
    let error = RunStatus::parse("error");
    let (page_ms, page_rows) =
        median_ms(|| async { Ok(project.query_runs(query(None)).await?.runs.len()) }).await?;
    let (error_page_ms, error_rows) =
        median_ms(|| async { Ok(project.query_runs(query(error)).await?.runs.len()) }).await?;
    anyhow::ensure!(page_rows == PAGE && error_rows == PAGE, "short query pages");
    let (inspect_page_ms, _) = median_ms(|| inspect_page(&project, None)).await?;
    let (inspect_error_page_ms, inspect_error_rows) =
        median_ms(|| inspect_page(&project, Some("error"))).await?;

    println!("page of {PAGE} among {RUNS} runs (median of {SAMPLES}):");
    println!("  no filter:    query {page_ms:8.2} ms   old way {inspect_page_ms:8.2} ms");
    println!(
        "  status=error: query {error_page_ms:8.2} ms   old way {inspect_error_page_ms:8.2} ms \
         (its page held {inspect_error_rows} runs: it stops after {OLD_MAX_INSPECTED} views)"
    );
    let figures = serde_json::json!({
        "runs": RUNS,
        "page_ms": page_ms,
        "inspect_page_ms": inspect_page_ms,
        "page_ratio": inspect_page_ms / page_ms,
        "error_page_ms": error_page_ms,
        "inspect_error_page_ms": inspect_error_page_ms,
        "inspect_error_page_rows": inspect_error_rows,
        "error_page_ratio": inspect_error_page_ms / error_page_ms,
    });
    println!("{figures}");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    actix_rt::System::new().block_on(run())
}

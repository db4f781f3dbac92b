//! The live latency of a run page: a real HTTP server, a client of the run's live stream, and a
//! run calling [`LIVE_STEPS`] short tasks one after another (each step is created, runs and
//! ends: a change the page must show). For each step, the time from its creation and from its
//! end (as recorded by the orchestrator, before the commit) to the first `fragment` event
//! drawing it so, on the client's clock (the same machine's wall clock).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{HttpServer, web};
use anyhow::{Context as _, bail};
use coflux_core::sdk::{Failure, Repository, task, workflow};
use coflux_server::{AppState, ServerConfig, create_app};
use futures::StreamExt;

/// Steps of the measured run (3 targets: no fan-out groups, every step drawn).
pub const LIVE_STEPS: u32 = 150;

/// Sleeps a while (varied, so changes do not line up with the stream's clock).
async fn pause(i: u32) -> u32 {
    actix_rt::time::sleep(Duration::from_millis(u64::from(10 + (i * 7) % 25))).await;
    i
}

/// One short task.
#[task(module = "live")]
async fn tick_a(i: u32) -> Result<u32, Failure> {
    Ok(pause(i).await)
}

/// One short task.
#[task(module = "live")]
async fn tick_b(i: u32) -> Result<u32, Failure> {
    Ok(pause(i).await)
}

/// One short task.
#[task(module = "live")]
async fn tick_c(i: u32) -> Result<u32, Failure> {
    Ok(pause(i).await)
}

/// Calls `n` ticks one after another.
#[workflow(module = "live")]
async fn ticks(n: u32) -> Result<u32, Failure> {
    for i in 0..n {
        match i % 3 {
            0 => tick_a.call(i).await?,
            1 => tick_b.call(i).await?,
            _ => tick_c.call(i).await?,
        };
    }
    Ok(n)
}

/// The measured latencies.
pub struct Latency {
    pub samples: usize,
    pub fragments: usize,
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The (step, status) pairs of a fragment's graph nodes.
fn nodes(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in html.split("class=\"node st-").skip(1) {
        let status: String = part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        let tag = &part[..part.find('>').unwrap_or(part.len())];
        if let Some(at) = tag.find("data-step=\"") {
            let rest = &tag[at + 11..];
            out.push((rest[..rest.find('"').unwrap_or(0)].to_string(), status));
        }
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs the measurement on its own server and project.
pub fn measure() -> anyhow::Result<Latency> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    actix_rt::System::new().block_on(async move {
        let state = web::Data::new(AppState::open(&ServerConfig::new(dir.path())).await?);
        let project = state.coflux.project("live").await?;
        project.ensure_environment("production", None).await?;
        let repository = || {
            Repository::new()
                .with(ticks)
                .with(tick_a)
                .with(tick_b)
                .with(tick_c)
        };
        let worker = project.serve("production", repository()).await?;
        let s = state.clone();
        let server = HttpServer::new(move || create_app(s.clone()))
            .workers(1)
            .bind(("127.0.0.1", 0))?;
        let base = format!("http://{}", server.addrs()[0]);
        actix_rt::spawn(server.run());

        let run = project.submit("production", &ticks, (LIVE_STEPS,)).await?;
        let url = format!(
            "{base}/projects/live/runs/{}/events?environment=production",
            run.run
        );
        let mut response = awc::Client::builder()
            .timeout(Duration::from_secs(120))
            .finish()
            .get(&url)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
        if !response.status().is_success() {
            bail!("{url}: {}", response.status());
        }
        // Changes from before the client connected do not count.
        let connected = now_ms();
        // When the client first saw each step drawn, and drawn finished.
        let mut seen: HashMap<String, i64> = HashMap::new();
        let mut done: HashMap<String, i64> = HashMap::new();
        let mut fragments = 0;
        let mut buffer = String::new();
        'stream: while let Some(chunk) = response.next().await {
            let at = now_ms();
            buffer.push_str(std::str::from_utf8(&chunk?)?);
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                if frame.contains("event: done") {
                    break 'stream;
                }
                if !frame.contains("event: fragment") {
                    continue;
                }
                fragments += 1;
                for (step, status) in nodes(&frame) {
                    seen.entry(step.clone()).or_insert(at);
                    if !matches!(status.as_str(), "queued" | "running") {
                        done.entry(step).or_insert(at);
                    }
                }
            }
        }
        let n: u32 = run.result().await.context("the measured run")?;
        if n != LIVE_STEPS {
            bail!("the run returned {n}");
        }
        let view = project.inspect_run(run.run, None).await?;
        worker.stop();
        let mut latencies = Vec::new();
        for step in view.steps.iter().filter(|s| s.id.number > 1) {
            let id = step.id.to_string();
            let execution = step.executions.last().context("an execution")?;
            let created = seen.get(&id).with_context(|| format!("{id} never shown"))?;
            let finished = done
                .get(&id)
                .with_context(|| format!("{id} never shown done"))?;
            let end = execution.finished_at.context("a finished step")?;
            for (shown, changed) in [(created, execution.created_at), (finished, end)] {
                if changed >= connected {
                    latencies.push((shown - changed) as f64);
                }
            }
        }
        latencies.sort_by(f64::total_cmp);
        Ok(Latency {
            samples: latencies.len(),
            fragments,
            p50: percentile(&latencies, 0.5),
            p95: percentile(&latencies, 0.95),
            max: *latencies.last().context("no samples")?,
        })
    })
}

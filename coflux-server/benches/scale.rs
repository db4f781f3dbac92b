//! Scale benchmark: many projects on one server, and one large run.
//!
//! ```text
//! cargo bench -p coflux-server --bench scale              # 10,000 projects, 100,000 steps
//! cargo bench -p coflux-server --bench scale -- --quick   # 1,000 projects, 10,000 steps (CI)
//! cargo bench -p coflux-server --bench scale -- --projects 2000 --steps 0
//! ```
//!
//! Projects: a `coflux-server` with `--project-idle-timeout 2s`; every project is created and
//! then read once through the API (32 requests in flight), then left idle until unloaded.
//! Figures: the server's threads (`/proc/<pid>/status`) with every project loaded
//! (`projects_loaded_threads`) and once they are idle (`projects_10000_threads`), its resident
//! memory and open files then (`projects_10000_rss_mb`, `projects_idle_open_files`: unloaded
//! projects keep no database open), and the time of the first request to an unloaded
//! project (`cold_project_p50_ms`/`_p99_ms`, 200 projects, one after the other).
//!
//! Large run: a fresh server and one Rust agent (`--concurrency 1000`) run
//! `examples.repo/fanout(n)` (n trivial tasks submitted at once, then awaited): submit → result
//! (`run_100k_steps_s`, with the CPU time of the server and of the agent and its adapter
//! meanwhile: `run_server_cpu_s`, `run_agent_cpu_s`), the server's peak resident memory
//! (`run_100k_peak_rss_mb`; the agent's and its adapter's: `run_agent_peak_rss_mb`) and the
//! first page (100 steps) of the run through the API, asked right after its result
//! (`inspect_100k_ms`).
//!
//! The keys are the same in every mode (`projects` and `steps` say what was measured); the last
//! line of stdout is one JSON object. `COFLUX_BIN_DIR=<dir>` runs binaries copied there.

use std::time::{Duration, Instant};

use coflux_tests::{Server, free_port, get, http, rust_agent};
use serde_json::{Map, Value as Json, json};

/// Requests in flight while touching projects.
const IN_FLIGHT: usize = 32;
/// The idle timeout of the projects phase.
const IDLE: &str = "2s";

fn status_field(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn threads(pid: u32) -> f64 {
    status_field(pid, "Threads:")
}

fn mb(pid: u32, field: &str) -> f64 {
    status_field(pid, field) / 1024.0
}

/// The CPU time (user + system) of a process, in seconds, from `/proc/<pid>/stat`.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(close) = stat.rfind(')') else {
        return f64::NAN;
    };
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

/// How many files the process has open (an unloaded project keeps none).
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Sends `POST /api/projects` then `GET …/environments` for each name, `IN_FLIGHT` at once.
async fn touch_all(url: &str, names: &[String]) {
    for chunk in names.chunks(IN_FLIGHT) {
        let requests = chunk.iter().map(|name| async move {
            let client = http();
            let created = client
                .post(format!("{url}/api/projects"))
                .send_json(&json!({ "name": name }))
                .await;
            assert!(
                created.is_ok_and(|r| r.status().is_success()),
                "creating {name}"
            );
            let read = client
                .get(format!("{url}/api/projects/{name}/environments"))
                .send()
                .await;
            assert!(
                read.is_ok_and(|r| r.status().is_success()),
                "reading {name}"
            );
        });
        futures::future::join_all(requests).await;
    }
}

async fn projects_phase(count: usize, figures: &mut Map<String, Json>) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_on(dir.path(), free_port(), &["--project-idle-timeout", IDLE]).await;
    let pid = server.proc.pid();
    let names: Vec<String> = (0..count).map(|i| format!("p{i}")).collect();
    let started = Instant::now();
    let mut peak_threads = threads(pid);
    for part in names.chunks(1_000) {
        touch_all(&server.url, part).await;
        peak_threads = peak_threads.max(threads(pid));
    }
    let touch_s = started.elapsed().as_secs_f64();
    eprintln!(
        "{count} projects touched in {touch_s:.1} s; {peak_threads} threads at most, rss {:.1} MiB",
        mb(pid, "VmRSS:")
    );
    // Idle: every project unloads after the timeout (give it twice that, plus the sweep).
    actix_rt::time::sleep(Duration::from_secs(5)).await;
    let idle_threads = threads(pid);
    let idle_rss = mb(pid, "VmRSS:");
    let idle_files = open_files(pid);
    eprintln!("idle: {idle_threads} threads, {idle_files} open files, rss {idle_rss:.1} MiB");

    let mut cold = Vec::new();
    for name in names.iter().step_by((count / 200).max(1)).take(200) {
        let started = Instant::now();
        let body = get(&server.url, &format!("/api/projects/{name}/environments")).await;
        cold.push(started.elapsed().as_secs_f64() * 1e3);
        assert!(body["environments"].is_array(), "{body}");
    }
    cold.sort_by(f64::total_cmp);
    eprintln!(
        "cold project: p50 {:.2} ms, p99 {:.2} ms",
        percentile(&cold, 0.5),
        percentile(&cold, 0.99)
    );
    figures.insert("projects".into(), json!(count));
    figures.insert("projects_touch_s".into(), json!(round1(touch_s)));
    figures.insert("projects_loaded_threads".into(), json!(peak_threads));
    figures.insert("projects_10000_threads".into(), json!(idle_threads));
    figures.insert("projects_10000_rss_mb".into(), json!(round1(idle_rss)));
    figures.insert("projects_idle_open_files".into(), json!(idle_files));
    figures.insert(
        "projects_peak_rss_mb".into(),
        json!(round1(mb(pid, "VmHWM:"))),
    );
    figures.insert(
        "cold_project_p50_ms".into(),
        json!((percentile(&cold, 0.5) * 100.0).round() / 100.0),
    );
    figures.insert(
        "cold_project_p99_ms".into(),
        json!((percentile(&cold, 0.99) * 100.0).round() / 100.0),
    );
}

async fn run_phase(steps: u64, figures: &mut Map<String, Json>) {
    const P: &str = "big";
    const ENV: &str = "rust";
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let pid = server.proc.pid();
    server.setup(P, ENV, None).await;
    let agent = rust_agent(&server, P, ENV, &["--register", "--concurrency", "1000"]);
    server.wait_registered(P, ENV, "fanout").await;
    // The agent's adapter (the example repository) is its child process.
    let adapter = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", agent.pid()))
        .ok()
        .and_then(|c| c.split_whitespace().next()?.parse::<u32>().ok());
    let agent_cpu = || cpu_s(agent.pid()) + adapter.map_or(0.0, cpu_s);
    let (server_before, agent_before) = (cpu_s(pid), agent_cpu());
    let started = Instant::now();
    let run = server
        .submit(P, ENV, "examples.repo", "fanout", json!([steps]))
        .await;
    let result = server.result(P, &run, 3_600).await;
    let run_s = started.elapsed().as_secs_f64();
    assert_eq!(result["status"], "value", "fanout({steps}): {result}");
    let peak = mb(pid, "VmHWM:");
    let agent_peak = mb(agent.pid(), "VmHWM:") + adapter.map_or(0.0, |a| mb(a, "VmHWM:"));
    let server_cpu = cpu_s(pid) - server_before;
    let agent_cpu = agent_cpu() - agent_before;
    eprintln!(
        "fanout({steps}): {run_s:.2} s, server peak rss {peak:.1} MiB, CPU: server \
         {server_cpu:.1} s, agent (with its adapter) {agent_cpu:.1} s"
    );

    let started = Instant::now();
    let page = get(
        &server.url,
        &format!("/api/projects/{P}/runs/{run}?limit=100"),
    )
    .await;
    let inspect_ms = started.elapsed().as_secs_f64() * 1e3;
    let shown = page["steps"].as_array().map_or(0, Vec::len);
    eprintln!("first page of the run: {inspect_ms:.1} ms ({shown} steps)");
    assert!(shown > 0, "{page}");
    figures.insert("steps".into(), json!(steps));
    figures.insert(
        "run_100k_steps_s".into(),
        json!((run_s * 100.0).round() / 100.0),
    );
    figures.insert("run_100k_peak_rss_mb".into(), json!(round1(peak)));
    figures.insert("run_agent_peak_rss_mb".into(), json!(round1(agent_peak)));
    figures.insert("run_server_cpu_s".into(), json!(round1(server_cpu)));
    figures.insert("run_agent_cpu_s".into(), json!(round1(agent_cpu)));
    figures.insert("inspect_100k_ms".into(), json!(round1(inspect_ms)));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1)?.parse::<u64>().ok())
    };
    let projects = value("--projects").unwrap_or(if quick { 1_000 } else { 10_000 });
    let steps = value("--steps").unwrap_or(if quick { 10_000 } else { 100_000 });
    actix_rt::System::new().block_on(async move {
        let mut figures = Map::new();
        figures.insert("quick".into(), json!(quick));
        if projects > 0 {
            projects_phase(
                usize::try_from(projects).unwrap_or(usize::MAX),
                &mut figures,
            )
            .await;
        }
        if steps > 0 {
            run_phase(steps, &mut figures).await;
        }
        println!("{}", Json::Object(figures));
    });
}

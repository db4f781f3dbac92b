//! Fan-out scaling benchmark: whether a wide fan-out's cost is linear in its width, through the
//! server path (a `coflux-server` process and one `coflux-agent` hosting the Rust example
//! repository, as in the `remote` bench).
//!
//! ```text
//! cargo bench -p coflux-server --bench fanout_scale                 # 1,000 / 10,000 / 20,000
//! cargo bench -p coflux-server --bench fanout_scale -- 1000 5000    # other widths
//! ```
//!
//! Each width runs `examples.repo/fanout(n)` (after a 100-task warm-up; the median of three
//! runs up to 10,000 tasks, one run above): one workflow submits `n` `noop` tasks, then awaits
//! them one by one; the agent runs 1,000 at once. Per run it prints the wall time and the CPU
//! time (user + system, from `/proc`) of the server and of the agent (with its adapter); the
//! last line is one JSON object with `fanout_<n>_ms`, `server_cpu_<n>_ms`, `agent_cpu_<n>_ms`,
//! `ratio_<n>_<first>` (time of `n` over time of the first width: 10.0 for 10,000 vs 1,000 when
//! linear), `inspect_<n>_ms` (reading the widest run through the API) and `server_peak_rss_mb`.
//! Wall times are noisy on a busy machine: compare the ratios of one command.
//! `COFLUX_BIN_DIR=<dir>` runs binaries copied there (e.g. an older build) instead of building
//! the workspace's.

use std::time::{Duration, Instant};

use coflux_tests::{Server, rust_agent};
use serde_json::{Map, Value as Json, json};

const P: &str = "scale";
const ENV: &str = "rust";

/// The process's CPU time (user + system) in ms, from `/proc/<pid>/stat`.
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(close) = stat.rfind(')') else {
        return f64::NAN;
    };
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) * 10.0,
        _ => f64::NAN,
    }
}

/// The CPU time (ms) of process `pid` and of its direct children (the agent's adapter).
fn tree_cpu_ms(pid: u32) -> f64 {
    let children: f64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| parent_of(*p) == Some(pid))
        .map(cpu_ms)
        .sum();
    cpu_ms(pid) + children
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn rss_mb(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Runs `fanout(n)` once; returns its wall time and the server's and the agent's (with its
/// adapter) CPU time meanwhile.
async fn fanout(server: &Server, agent: u32, n: u64) -> (String, Duration, f64, f64) {
    let cpu = cpu_ms(server.proc.pid());
    let agent_cpu = tree_cpu_ms(agent);
    let started = Instant::now();
    let run = server
        .submit(P, ENV, "examples.repo", "fanout", json!([n]))
        .await;
    let result = server.result(P, &run, 3_600).await;
    let elapsed = started.elapsed();
    assert_eq!(result["status"], "value", "fanout({n}): {result}");
    (
        run,
        elapsed,
        cpu_ms(server.proc.pid()) - cpu,
        tree_cpu_ms(agent) - agent_cpu,
    )
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn main() {
    let mut widths: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if widths.is_empty() {
        widths = vec![1_000, 10_000, 20_000];
    }
    actix_rt::System::new().block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(dir.path()).await;
        server.setup(P, ENV, None).await;
        let agent_proc = rust_agent(&server, P, ENV, &["--register", "--concurrency", "1000"]);
        server.wait_registered(P, ENV, "fanout").await;
        let agent = agent_proc.pid();
        fanout(&server, agent, 100).await;
        let mut figures = Map::new();
        let first = widths[0];
        let mut first_ms = f64::NAN;
        for &n in &widths {
            // The median of three runs up to 10,000 tasks (a short run is the noisiest).
            let mut runs = Vec::new();
            for _ in 0..if n <= 10_000 { 3 } else { 1 } {
                let (run, elapsed, cpu, agent_cpu) = fanout(&server, agent, n).await;
                let ms = elapsed.as_secs_f64() * 1e3;
                eprintln!(
                    "fanout({n}): {ms:.1} ms, server CPU {cpu:.0} ms ({:.1} µs/task), agent \
                     CPU {agent_cpu:.0} ms, server rss {:.1} MiB",
                    cpu * 1e3 / n as f64,
                    rss_mb(server.proc.pid(), "VmRSS:")
                );
                runs.push((ms, run, cpu, agent_cpu));
            }
            runs.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (ms, run, cpu, agent_cpu) = runs.swap_remove(runs.len() / 2);
            if n == first {
                first_ms = ms;
            }
            figures.insert(format!("fanout_{n}_ms"), json!(round1(ms)));
            figures.insert(format!("server_cpu_{n}_ms"), json!(round1(cpu)));
            figures.insert(format!("agent_cpu_{n}_ms"), json!(round1(agent_cpu)));
            if n == *widths.iter().max().unwrap_or(&n) {
                let started = Instant::now();
                let view = server.inspect(P, &run).await;
                let inspect = started.elapsed().as_secs_f64() * 1e3;
                let steps = view["steps"].as_array().map_or(0, Vec::len);
                eprintln!("inspect of fanout({n}): {inspect:.1} ms ({steps} steps)");
                figures.insert(format!("inspect_{n}_ms"), json!(round1(inspect)));
            }
            if n != first {
                let ratio = (ms / first_ms * 100.0).round() / 100.0;
                figures.insert(format!("ratio_{}_{}", short(n), short(first)), json!(ratio));
            }
        }
        figures.insert(
            "server_peak_rss_mb".into(),
            json!(round1(rss_mb(server.proc.pid(), "VmHWM:"))),
        );
        println!("{}", Json::Object(figures));
    });
}

/// `10000` → `10k`, `1500` → `1500`.
fn short(n: u64) -> String {
    if n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

//! Remote benchmark: a `coflux-server` process and separate `coflux-agent` processes, one
//! hosting the Rust example repository (`coflux-example-repo`) and one hosting Python code
//! through the real `coflux` 0.12.0 package; trivial tasks, default (durable) store.
//!
//! `cargo bench -p coflux-server --bench remote` prints a table, then one JSON line with
//! `seq_1000_ms`, `fanout_1000_ms`, `latency_p50_ms`, `latency_p99_ms`, `server_idle_rss_mb`,
//! `server_peak_rss_mb`, `py_seq_100_ms`, `py_fanout_100_ms`, `py_latency_p50_ms`.
//! Latency is submit → result of a workflow that does nothing (`chain(0)`), over HTTP.
//! `seq_1000_ms` and `fanout_1000_ms` are the median of three runs (each run is printed), as in
//! the embedded benchmark: one run of a few hundred milliseconds moves by ±20 % on a noisy VM.
//! `-- --quick` runs fewer latency samples (for CI); `-- --rust-only` skips the Python part;
//! `-- --database-url postgres://…` runs the server with its project state in PostgreSQL
//! (same JSON keys). `-- --compare-durability` then also runs the Rust scenarios on a server
//! with `--durability full` (`full_*` keys) and, with `--database-url`, on SQLite
//! (`sqlite_*` keys), with their ratios to the first server's figures.
//! The Python agent starts its executors as `COFLUX_EXECUTOR` says (default: forked from a
//! warm fork server); `-- --compare-executors` also runs the Python scenarios with a second
//! agent that spawns a process per executor, and adds `py_spawn_*` keys and the
//! spawn / fork ratios.

use std::time::{Duration, Instant};

use coflux_tests::{Server, python_agent_for, rust_agent};
use serde_json::{Value as Json, json};

/// The project of the server measured now: `bench`, or on PostgreSQL one of its own per run
/// and server (the database outlives them).
fn project() -> String {
    PROJECT
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_else(|| "bench".to_owned())
}

static PROJECT: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Names the project of the next server (`tag` tells the servers of one run apart).
fn set_project(postgres: bool, tag: &str) {
    *PROJECT.lock().unwrap() = Some(match postgres {
        false => "bench".to_owned(),
        true => format!("bench-{}{tag}", std::process::id()),
    });
}

/// `-- --compare-durability`: the Rust scenarios again on a server with `--durability full`
/// (and, with `--database-url`, on SQLite), in the same run, as `full_*` (and `sqlite_*`) keys.
fn compare_durability() -> bool {
    std::env::args().any(|a| a == "--compare-durability")
}

/// `-- --database-url URL`: the server keeps project state in PostgreSQL, in an empty database
/// of its own created on URL's server (the role needs `CREATEDB`, as `scripts/setup-postgres.sh`
/// gives it): the projects other runs left in URL's database would otherwise be taken over by
/// the bench's server (a node recovers every project whose lease expired).
fn database_url() -> Option<String> {
    static FRESH: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    FRESH
        .get_or_init(|| {
            let args: Vec<String> = std::env::args().collect();
            let url = args
                .iter()
                .position(|a| a == "--database-url")
                .and_then(|i| args.get(i + 1))?;
            Some(coflux_tests::backend::fresh_database(url, "remote-bench"))
        })
        .clone()
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

async fn run(server: &Server, env: &str, module: &str, target: &str, args: Json) -> Duration {
    let started = Instant::now();
    let run = server.submit(&project(), env, module, target, args).await;
    let result = server.result(&project(), &run, 600).await;
    let elapsed = started.elapsed();
    assert_eq!(result["status"], "value", "{module}.{target}: {result}");
    elapsed
}

/// Runs `target(args)` [`REPETITIONS`] times and returns the median duration.
async fn median_run(
    server: &Server,
    env: &str,
    module: &str,
    target: &str,
    args: Json,
) -> Duration {
    let mut runs = Vec::with_capacity(REPETITIONS);
    for i in 0..REPETITIONS {
        let d = run(server, env, module, target, args.clone()).await;
        eprintln!("{module}.{target}({args}) #{}: {d:?}", i + 1);
        runs.push(d);
    }
    runs.sort();
    runs[runs.len() / 2]
}

const REPETITIONS: usize = 3;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn latencies(server: &Server, env: &str, module: &str, samples: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        out.push(
            run(server, env, module, "chain", json!([0]))
                .await
                .as_secs_f64()
                * 1000.0,
        );
    }
    out.sort_by(f64::total_cmp);
    out
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

/// The Python scenarios' figures.
struct Python {
    seq: Duration,
    fanout: Duration,
    latency_p50: f64,
}

/// Runs the Python scenarios with an agent (in environment `env`) whose executors start as
/// `mode` says (`fork` or `spawn`); the agent is stopped afterwards.
async fn python_scenarios(server: &Server, env: &str, mode: &str, quick: bool) -> Python {
    let _python = python_agent_for(
        "bench_flows",
        &server.url,
        &project(),
        env,
        "bench",
        &["--concurrency", "8", "--executor", mode],
    );
    server.wait_registered(&project(), env, "chain").await;
    let py_bench = "bench_flows";
    run(server, env, py_bench, "chain", json!([1])).await;
    let seq = run(server, env, py_bench, "chain", json!([100])).await;
    let fanout = run(server, env, py_bench, "fanout", json!([100])).await;
    let latencies = latencies(server, env, py_bench, if quick { 5 } else { 20 }).await;
    eprintln!("python ({mode}): seq {seq:?}, fanout {fanout:?}, latencies {latencies:?}");
    Python {
        seq,
        fanout,
        latency_p50: percentile(&latencies, 0.5),
    }
}

/// The Rust scenarios on `server` (environment `rust`, set up): the sequential chain and the
/// fan-out (medians) and the sorted latencies of an empty workflow, in ms.
async fn rust_scenarios(server: &Server, quick: bool) -> (Duration, Duration, Vec<f64>) {
    let _rust = rust_agent(
        server,
        &project(),
        "rust",
        &["--register", "--concurrency", "1000"],
    );
    server.wait_registered(&project(), "rust", "chain").await;
    run(server, "rust", "examples.repo", "chain", json!([10])).await;
    let seq = median_run(server, "rust", "examples.repo", "chain", json!([1000])).await;
    let fanout = median_run(server, "rust", "examples.repo", "fanout", json!([1000])).await;
    let lat = latencies(
        server,
        "rust",
        "examples.repo",
        if quick { 50 } else { 300 },
    )
    .await;
    (seq, fanout, lat)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let compare = std::env::args().any(|a| a == "--compare-executors");
    // `-- --rust-only` skips the Python scenarios (their fields are null), for quick A/B runs.
    let rust_only = std::env::args().any(|a| a == "--rust-only");
    actix_rt::System::new().block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        set_project(database_url().is_some(), "");
        let server = match database_url() {
            None => Server::start(dir.path()).await,
            Some(url) => {
                let flags = ["--database-url", url.as_str()];
                Server::start_on(dir.path(), coflux_tests::free_port(), &flags).await
            }
        };
        server.setup(&project(), "rust", None).await;
        server.setup(&project(), "python", None).await;
        actix_rt::time::sleep(Duration::from_millis(500)).await;
        let idle_rss = rss_mb(server.proc.pid(), "VmRSS:");

        let (seq, fanout, lat) = rust_scenarios(&server, quick).await;
        let peak_rss = rss_mb(server.proc.pid(), "VmHWM:");

        let mode = std::env::var("COFLUX_EXECUTOR").unwrap_or_else(|_| "fork".into());
        let py = if rust_only {
            None
        } else {
            Some(python_scenarios(&server, "python", &mode, quick).await)
        };
        let py_spawn = if compare && !rust_only {
            server.setup(&project(), "python-spawn", None).await;
            Some(python_scenarios(&server, "python-spawn", "spawn", quick).await)
        } else {
            None
        };
        let (py_seq, py_fanout, py_lat) = match &py {
            Some(py) => (Some(py.seq), Some(py.fanout), Some(py.latency_p50)),
            None => (None, None, None),
        };

        let mut result = json!({
            "seq_1000_ms": ms(seq),
            "fanout_1000_ms": ms(fanout),
            "latency_p50_ms": (percentile(&lat, 0.5) * 100.0).round() / 100.0,
            "latency_p99_ms": (percentile(&lat, 0.99) * 100.0).round() / 100.0,
            "server_idle_rss_mb": (idle_rss * 10.0).round() / 10.0,
            "server_peak_rss_mb": (peak_rss * 10.0).round() / 10.0,
            "py_seq_100_ms": py_seq.map(ms),
            "py_fanout_100_ms": py_fanout.map(ms),
            "py_latency_p50_ms": py_lat.map(|l| (l * 10.0).round() / 10.0),
        });
        if let (Some(fork), Some(spawn)) = (&py, &py_spawn) {
            let ratio = |s: f64, f: f64| (s / f * 10.0).round() / 10.0;
            let extra = json!({
                "py_executor": mode,
                "py_spawn_seq_100_ms": ms(spawn.seq),
                "py_spawn_fanout_100_ms": ms(spawn.fanout),
                "py_spawn_latency_p50_ms": (spawn.latency_p50 * 10.0).round() / 10.0,
                "py_seq_spawn_over_fork": ratio(ms(spawn.seq), ms(fork.seq)),
                "py_fanout_spawn_over_fork": ratio(ms(spawn.fanout), ms(fork.fanout)),
                "py_latency_spawn_over_fork": ratio(spawn.latency_p50, fork.latency_p50),
            });
            for (key, value) in extra.as_object().unwrap() {
                result[key] = value.clone();
            }
        }
        drop(server);
        if compare_durability() {
            let mut others = vec![("full", database_url(), "full")];
            if database_url().is_some() {
                others.push(("sqlite", None, "normal"));
            }
            for (prefix, url, durability) in others {
                let dir = tempfile::tempdir().unwrap();
                set_project(url.is_some(), &format!("-{prefix}"));
                let mut flags = vec!["--durability", durability];
                if let Some(url) = &url {
                    flags.extend(["--database-url", url.as_str()]);
                    // The stopped server counts as a live node (with local blobs) until its
                    // heartbeat is half a lease (5 s) old.
                    actix_rt::time::sleep(Duration::from_secs(6)).await;
                }
                let server = Server::start_on(dir.path(), coflux_tests::free_port(), &flags).await;
                server.setup(&project(), "rust", None).await;
                let (seq, fanout, lat) = rust_scenarios(&server, quick).await;
                let p50 = (percentile(&lat, 0.5) * 100.0).round() / 100.0;
                let ratio = |other: f64, own: &Json| {
                    own.as_f64()
                        .map(|own| (other / own * 100.0).round() / 100.0)
                };
                let extra = json!({
                    format!("{prefix}_seq_1000_ms"): ms(seq),
                    format!("{prefix}_fanout_1000_ms"): ms(fanout),
                    format!("{prefix}_latency_p50_ms"): p50,
                    format!("{prefix}_over_normal_seq"): ratio(ms(seq), &result["seq_1000_ms"]),
                    format!("{prefix}_over_normal_fanout"):
                        ratio(ms(fanout), &result["fanout_1000_ms"]),
                    format!("{prefix}_over_normal_p50"): ratio(p50, &result["latency_p50_ms"]),
                });
                for (key, value) in extra.as_object().unwrap() {
                    result[key] = value.clone();
                }
            }
        }
        println!("remote benchmark (server and agents as separate processes)");
        for (key, value) in result.as_object().unwrap() {
            println!("  {key:<22} {value}");
        }
        println!("{result}");
    });
}

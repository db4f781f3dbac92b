//! PostgreSQL itself killed with SIGKILL (the postmaster and every backend at once, as the
//! out-of-memory killer or a container kill would) while sequential runs are in flight, on a
//! throwaway PostgreSQL cluster of its own (`initdb` and `postgres` from
//! `/usr/lib/postgresql/<version>/bin` on a free port in a temporary directory, run as user
//! `postgres` when the test runs as root; skipped when the binaries are missing unless
//! `COFLUX_PG_TESTS=require`). The server commits with the default `--durability normal`
//! (no wait for the WAL flush), so each crash loses the commits PostgreSQL had not written
//! yet; its WAL writer is slowed (`wal_writer_delay = 10s`) so that the loss is not rare.
//!
//! `COFLUX_CHAOS_PG_KILLS` (default 6) crashes under `COFLUX_CHAOS_PG_RUNS` (60) runs of
//! `effects(name, 6)` (Rust, and one in five Python); the second crash keeps PostgreSQL down
//! past the server's lease (2 s here), so its replay must extend a lease that expired while
//! nobody could take it. Checked: every acknowledged run ends
//! with its value; every step has exactly one execution and every side effect happened exactly
//! once (the server and the agents never stopped, so nothing may run twice: an acknowledged
//! result that PostgreSQL lost and nobody replayed would show as a lost run or a repeat).
//! Prints how many batches the server committed again.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coflux_tests::{
    AgentOptions, Server, agent, example_module_agent, free_port, http, python, workspace_root,
};
use serde_json::json;

use super::{Rng, await_values, setting, start_server_with};

const P: &str = "pgcrash";
/// Steps per run.
const STEPS: u64 = 6;

/// A PostgreSQL cluster of the test's own.
struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// `runuser -u postgres --` when running as root (PostgreSQL refuses root).
    as_postgres: bool,
    /// The process started last (the postmaster, or `runuser` around it).
    child: Option<std::process::Child>,
    /// The longest a start took (crash recovery included).
    slowest_start: Duration,
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb`.
fn binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Postgres {
    /// Creates and starts the cluster; `None` (test skipped) without PostgreSQL binaries.
    fn start() -> Option<Self> {
        let Some(bin) = binaries() else {
            assert!(
                std::env::var("COFLUX_PG_TESTS").as_deref() != Ok("require"),
                "COFLUX_PG_TESTS=require but no /usr/lib/postgresql/*/bin/initdb"
            );
            eprintln!("skipped: PostgreSQL crash test (no /usr/lib/postgresql/*/bin/initdb)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown of the cluster directory");
        }
        let mut pg = Self {
            bin,
            port: free_port(),
            dir,
            as_postgres,
            child: None,
            slowest_start: Duration::ZERO,
        };
        let data = pg.data();
        let status = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "coflux", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "initdb failed");
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             wal_writer_delay = '10s'\nmax_connections = 200\n",
            pg.port,
            pg.dir.path().display()
        );
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap()
            .write_all(conf.as_bytes())
            .unwrap();
        pg.launch();
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `program` of the PostgreSQL binaries, as user `postgres` when needed.
    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(exe);
            command
        } else {
            Command::new(exe)
        }
    }

    fn url(&self) -> String {
        format!("postgres://coflux@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the postmaster (crash recovery first after a kill) and waits until it answers.
    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("postgres.log"))
            .unwrap();
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let url = self.url();
        let started = Instant::now();
        let deadline = started + Duration::from_secs(60);
        loop {
            let up = std::thread::spawn({
                let url = url.clone();
                move || postgres::Client::connect(&url, postgres::NoTls).is_ok()
            })
            .join()
            .unwrap();
            if up {
                self.slowest_start = self.slowest_start.max(started.elapsed());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start: {}",
                std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL to the postmaster and all its processes at once, then waits until they are
    /// gone (a new postmaster refuses to start while old backends hold its shared memory).
    fn kill9(&mut self) {
        let pidfile = std::fs::read_to_string(self.data().join("postmaster.pid")).unwrap();
        let postmaster: u32 = pidfile.lines().next().unwrap().trim().parse().unwrap();
        let mut pids = vec![postmaster];
        pids.extend(children(postmaster));
        // A backend that exits meanwhile makes `kill` report a failure for its pid: what
        // counts is that every listed process is gone, checked below.
        let _ = Command::new("kill")
            .arg("-9")
            .args(pids.iter().map(u32::to_string))
            .status()
            .unwrap();
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while pids
            .iter()
            .any(|p| Path::new(&format!("/proc/{p}")).exists())
        {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL's processes did not end"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.kill9();
        }
    }
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let child: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            // `pid (comm) state ppid ...`; comm may hold spaces, so split after its ')'.
            let ppid: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}

/// Steps with other than exactly one execution, executions without a result, and the side
/// effects seen other than once, from the project's schema and the effects file.
fn check(url: &str, effects: &Path, values: &[(String, serde_json::Value)]) -> Vec<String> {
    let url = url.to_owned();
    let (steps, unfinished) = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.batch_execute(&format!("SET search_path TO cx_{P}"))
            .unwrap();
        let steps: Vec<(String, i64)> = c
            .query(
                "SELECT s.arguments, (SELECT count(*) FROM executions e \
                 WHERE e.run_id = s.run_id AND e.step_number = s.number) FROM steps s",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let unfinished: i64 = c
            .query_one(
                "SELECT count(*) FROM executions e WHERE NOT EXISTS (SELECT 1 FROM results r \
                 WHERE r.run_id = e.run_id AND r.step_number = e.step_number \
                 AND r.attempt = e.attempt)",
                &[],
            )
            .unwrap()
            .get(0);
        (steps, unfinished)
    })
    .join()
    .unwrap();
    let mut violations = Vec::new();
    if unfinished > 0 {
        violations.push(format!("{unfinished} executions without a result"));
    }
    for (arguments, executions) in &steps {
        if *executions != 1 {
            violations.push(format!("step {arguments}: {executions} executions"));
        }
    }
    let text = std::fs::read_to_string(effects).unwrap_or_default();
    for (name, result) in values {
        let expected: Vec<String> = (0..STEPS).map(|j| format!("{name}:{j}")).collect();
        if result["value"] != json!(expected) {
            violations.push(format!("run {name} ended with {result}"));
        }
        for tag in expected {
            let times = text.lines().filter(|l| *l == tag).count();
            if times != 1 {
                violations.push(format!("{tag}: side effect happened {times} times"));
            }
        }
    }
    violations
}

/// How long PostgreSQL stays down once: past the server's lease (`--lease-duration 2s`).
const LONG_OUTAGE: Duration = Duration::from_millis(3000);

#[actix_rt::test]
#[ignore = "the chaos suite: cargo test -p coflux-tests --test chaos -- --include-ignored"]
async fn chaos_postgres_killed_under_sequential_runs_loses_no_acknowledgement() {
    let Some(mut pg) = Postgres::start() else {
        return;
    };
    let kills = setting("COFLUX_CHAOS_PG_KILLS", 6);
    let runs = setting("COFLUX_CHAOS_PG_RUNS", 60);
    let mut rng = Rng::seeded();
    println!("chaos pg-crash: {kills} kills, {runs} runs, seed {}", rng.0);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let effects = dir.path().join("side-effects.txt");
    let effects_env = format!("COFLUX_SIDE_EFFECTS={}", effects.display());
    let port = free_port();
    let url = pg.url();
    let (mut server_proc, _) = start_server_with(
        &data,
        port,
        &log,
        &["--database-url", &url, "--lease-duration", "2s"],
    )
    .await;
    let server = Server {
        proc: coflux_tests::Proc::detached("coflux-server"),
        url: format!("http://127.0.0.1:{port}"),
        port,
        data_dir: data.clone(),
    };
    server.setup(P, "production", None).await;
    let mut agents = vec![
        example_module_agent(
            &server,
            P,
            "examples.semantics",
            &["COFLUX_EXAMPLE_SEMANTICS=1", &effects_env],
            &["--concurrency", "32"],
        ),
        agent(
            &server,
            AgentOptions {
                project: P,
                environment: "production",
                adapter: format!("env {effects_env} {} -m coflux", python().display()),
                modules: vec!["e2e_flows".into()],
                directory: workspace_root().join("tests/python"),
                extra: vec!["--register".into(), "--concurrency".into(), "8".into()],
            },
        ),
    ];
    server.wait_registered(P, "production", "effects").await;

    let mut acknowledged: Vec<(String, String)> = Vec::new();
    let mut faults = 0;
    let mut next_kill = Instant::now() + Duration::from_millis(500 + rng.below(1000));
    let mut i = 0;
    while i < runs || faults < kills {
        if i < runs {
            let name = format!("r{i}");
            let (module, pause) = if i % 5 == 0 {
                ("e2e_flows", json!(0.005))
            } else {
                ("examples.semantics", json!(5))
            };
            let body = json!({"module": module, "target": "effects",
                              "arguments": [name, STEPS, pause], "allow_unregistered": true});
            let answer = http()
                .post(format!(
                    "{}/api/projects/{P}/environments/production/runs",
                    server.url
                ))
                .timeout(Duration::from_secs(5))
                .send_json(&body)
                .await;
            if let Ok(mut response) = answer
                && response.status().is_success()
                && let Ok(json) = response.json::<serde_json::Value>().await
                && let Some(run) = json["run_id"].as_str()
            {
                acknowledged.push((run.to_owned(), name));
                i += 1;
            } else {
                actix_rt::time::sleep(Duration::from_millis(50)).await;
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        } else {
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        if faults < kills && Instant::now() >= next_kill {
            pg.kill9();
            faults += 1;
            // The second outage outlasts the lease: the server's replay must renew it.
            let down = if faults == 2 {
                LONG_OUTAGE
            } else {
                Duration::from_millis(rng.below(500))
            };
            actix_rt::time::sleep(down).await;
            pg.launch();
            next_kill = Instant::now() + Duration::from_millis(700 + rng.below(1500));
        }
    }

    let idle_read = idle_crash(&mut pg, &server, &mut acknowledged).await;
    faults += 1;
    let values = await_values(&server, P, &acknowledged).await;
    for (run, (name, result)) in &values {
        if result["status"] != "value" {
            let inspected = server.inspect(P, run).await;
            println!("chaos pg-crash: run {run} ({name}) ended {result}: {inspected}");
        }
    }
    for agent in &mut agents {
        agent.terminate(Duration::from_secs(10));
    }
    server_proc.terminate(Duration::from_secs(10));
    let values: Vec<(String, serde_json::Value)> = values.into_values().collect();
    let mut violations = check(&url, &effects, &values);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    if let Some(at) = text.find("panicked") {
        violations.push(format!("a panic: {}", &text[at..text.len().min(at + 600)]));
    }
    let replays = text
        .lines()
        .filter(|l| l.contains("PostgreSQL lost committed batches"))
        .count();
    let settled = text
        .lines()
        .filter(|l| l.contains("after a reader found the database behind"))
        .count();
    match &idle_read {
        Ok(elapsed) => println!(
            "chaos pg-crash: idle crash, runs listed after {elapsed:?}; slowest PostgreSQL start {:?}",
            pg.slowest_start
        ),
        Err(e) => violations.push(format!("after the idle crash: {e}")),
    }
    println!(
        "chaos pg-crash: faults injected {faults}, runs checked {}, violations {}, replays {replays}, settled by a reader {settled}",
        values.len(),
        violations.len()
    );
    if !violations.is_empty() {
        let notable = text
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("bandon"));
        for line in notable.take(200) {
            println!("server: {line}");
        }
    }
    assert_eq!(values.len(), acknowledged.len());
    assert!(violations.is_empty(), "{violations:#?}");
}

/// The project goes idle after one more run, and PostgreSQL crashes again, losing what it had
/// not flushed (its WAL writer is slow). With nothing more to commit, the writer learns of the
/// loss from the first reader that finds the database behind, and commits the lost batches
/// again at once: the runs list (read from PostgreSQL) must answer with the last run within
/// the readers' bounded wait. Returns how long that took.
async fn idle_crash(
    pg: &mut Postgres,
    server: &Server,
    acknowledged: &mut Vec<(String, String)>,
) -> Result<Duration, String> {
    let name = "idle".to_owned();
    let body = json!({"module": "examples.semantics", "target": "effects",
                      "arguments": [name, STEPS, 5], "allow_unregistered": true});
    let run = coflux_tests::post(
        &server.url,
        &format!("/api/projects/{P}/environments/production/runs"),
        body,
    )
    .await["run_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or("the idle run was not acknowledged")?;
    acknowledged.push((run.clone(), name.clone()));
    await_values(server, P, &[(run.clone(), name)]).await;
    pg.kill9();
    pg.launch();
    let started = Instant::now();
    let listed = coflux_tests::get(&server.url, &format!("/api/projects/{P}/runs")).await;
    let elapsed = started.elapsed();
    let runs = listed["runs"]
        .as_array()
        .ok_or_else(|| format!("listing runs answered {listed}"))?;
    if !runs.iter().any(|r| r["run_id"] == run.as_str()) {
        return Err(format!("the idle run {run} is not listed"));
    }
    Ok(elapsed)
}

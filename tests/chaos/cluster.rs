//! Several server nodes over one PostgreSQL database (`COFLUX_TEST_DATABASE_URL`, a database
//! of its own per test when the role may create one; skipped without a URL unless
//! `COFLUX_PG_TESTS=require`) and a moto S3 bucket for blobs:
//!
//! - **failover**: three nodes, Rust and Python agents and the client all on a node that does
//!   not own the project (redirected and forwarded to the owner), `COFLUX_CHAOS_CLUSTER_RUNS`
//!   (200) runs submitted while the owner is killed with SIGKILL; every run ends with its value,
//!   no step ran twice beyond abandoned attempts; prints `failover_s` (kill → a run in flight
//!   at the kill finishing on the new owner);
//! - **partition**: the owner is frozen (SIGSTOP) past its lease; another node takes the
//!   project; once resumed, the old owner must not write: submissions it is made to serve
//!   itself fail and leave nothing in the database, and the runs end as on one node;
//! - **learned nodes** ([`super::cluster_agents`]): an agent given only the owner's address
//!   reconnects to a node the cluster told it about when the owner is killed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coflux_tests::{
    AgentOptions, Proc, Server, agent, bin, example_module_agent, free_port, http, python,
    workspace_root,
};
use serde_json::json;

use super::{await_values, setting, submit};

pub(crate) const P: &str = "cluster";
const BUCKET: &str = "coflux-blobs";

/// The test database's URL, or `None` when PostgreSQL tests are off.
pub(crate) fn base_url() -> Option<String> {
    match std::env::var("COFLUX_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("COFLUX_PG_TESTS").as_deref() == Ok("require") => {
            panic!("COFLUX_PG_TESTS=require but COFLUX_TEST_DATABASE_URL is not set")
        }
        _ => {
            eprintln!("skipped: cluster chaos test (set COFLUX_TEST_DATABASE_URL)");
            None
        }
    }
}

/// A database of its own (dropped at the end), so that no other server on the test database
/// joins this cluster; the shared one if the role may not create databases.
pub(crate) struct Database {
    pub(crate) url: String,
    admin: String,
    name: Option<String>,
}

impl Database {
    pub(crate) fn create(base: &str, tag: &str) -> Self {
        let name = format!(
            "coflux_cluster_{tag}_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
        );
        let admin = base.to_owned();
        let created = std::thread::scope(|s| {
            s.spawn(|| {
                let mut client = postgres::Client::connect(&admin, postgres::NoTls).ok()?;
                client
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .ok()
            })
            .join()
            .unwrap()
        });
        match created {
            Some(()) => {
                let (prefix, _) = base.rsplit_once('/').unwrap();
                Self {
                    url: format!("{prefix}/{name}"),
                    admin,
                    name: Some(name),
                }
            }
            None => {
                eprintln!("cannot create a database; the cluster test uses the shared one");
                Self {
                    url: base.to_owned(),
                    admin,
                    name: None,
                }
            }
        }
    }

    /// Runs `f` with a client on this database (on a thread of its own).
    fn with<T: Send>(&self, f: impl FnOnce(&mut postgres::Client) -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut client = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
                f(&mut client)
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some(name) = &self.name {
            let admin = self.admin.clone();
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let _ = std::thread::spawn(move || {
                if let Ok(mut client) = postgres::Client::connect(&admin, postgres::NoTls) {
                    let _ = client.batch_execute(&sql);
                }
            })
            .join();
        }
    }
}

/// A moto S3 server (the blob store every node shares).
pub(crate) async fn start_moto() -> (Proc, String) {
    let bin = workspace_root().join("target/s3-venv/bin/moto_server");
    if !bin.exists() {
        let status = Command::new(workspace_root().join("scripts/setup-s3.sh")).status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "scripts/setup-s3.sh failed"
        );
    }
    let port = free_port();
    let proc = Proc::spawn(
        "moto_server",
        Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http().put(format!("{endpoint}/{BUCKET}")).send().await
            && r.status().is_success()
        {
            return (proc, endpoint);
        }
        assert!(Instant::now() < deadline, "moto_server did not start");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One server node.
pub(crate) struct Node {
    pub(crate) proc: Proc,
    pub(crate) url: String,
    pub(crate) log: PathBuf,
}

pub(crate) async fn start_node(dir: &Path, i: usize, db: &str, s3: &str, extra: &[&str]) -> Node {
    let port = free_port();
    let data = dir.join(format!("node{i}"));
    let log = dir.join(format!("node{i}.log"));
    let file = std::fs::File::create(&log).unwrap();
    let proc = Proc::spawn(
        "coflux-server",
        Command::new(bin("coflux-server"))
            .arg("--data-dir")
            .arg(&data)
            .args(["--port", &port.to_string(), "--database-url", db])
            .args([
                "--blob-store",
                "s3",
                "--s3-bucket",
                BUCKET,
                "--s3-endpoint",
                s3,
            ])
            .args(["--s3-region", "us-east-1", "--s3-allow-http"])
            .args(extra)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("COFLUX_LOG", "warn,coflux_core=info")
            .stdout(Stdio::null())
            .stderr(file),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http().get(format!("{url}/api/health")).send().await
            && r.status().is_success()
        {
            return Node { proc, url, log };
        }
        assert!(
            Instant::now() < deadline,
            "node {i} did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The helpers' view of a node (its process is owned elsewhere).
/// `count` nodes over `db` and `s3` (each with `extra` flags), the project created through
/// node 0: the nodes and the index of the one that owns the project.
pub(crate) async fn start_cluster(
    dir: &Path,
    count: usize,
    db: &str,
    s3: &str,
    extra: &[&str],
) -> (Vec<Node>, usize) {
    let mut nodes = Vec::new();
    for i in 0..count {
        nodes.push(start_node(dir, i, db, s3, extra).await);
    }
    view(&nodes[0]).setup(P, "production", None).await;
    let owner_url = owner(&nodes[0].url, P).await.expect("an owner");
    let owner_index = nodes.iter().position(|n| n.url == owner_url).unwrap();
    (nodes, owner_index)
}

pub(crate) fn view(node: &Node) -> Server {
    Server {
        proc: Proc::detached("coflux-server"),
        url: node.url.clone(),
        port: 0,
        data_dir: PathBuf::new(),
    }
}

/// The node owning `project`, as `GET /api/cluster` on `via` says.
pub(crate) async fn owner(via: &str, project: &str) -> Option<String> {
    let view = coflux_tests::get(via, "/api/cluster").await;
    view["nodes"].as_array()?.iter().find_map(|n| {
        n["projects"]
            .as_array()?
            .iter()
            .any(|p| p == project)
            .then(|| n["id"].as_str().unwrap_or_default().to_owned())
    })
}

/// Waits until a node other than `old` owns `project`.
async fn new_owner(via: &str, project: &str, old: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Some(node) = owner(via, project).await
            && node != old
        {
            return node;
        }
        assert!(Instant::now() < deadline, "no node took the project over");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

fn signal(proc: &Proc, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &proc.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig}");
}

/// The offline checks of [`super::checker`], on the project's PostgreSQL schema: every
/// execution has a result, attempts are 1..n, each side effect happened, more than once only
/// after an abandoned attempt; no panic in the nodes' logs.
pub(crate) fn check(
    db: &Database,
    effects: &Path,
    values: &std::collections::HashMap<String, (String, serde_json::Value)>,
    logs: &[&Path],
) -> Vec<String> {
    let mut violations = Vec::new();
    let (unfinished, gaps, steps) = db.with(|c| {
        c.batch_execute(&format!("SET search_path TO cx_{P}")).unwrap();
        let count = |c: &mut postgres::Client, sql: &str| -> i64 {
            c.query_one(sql, &[]).unwrap().get(0)
        };
        let unfinished = count(
            c,
            "SELECT count(*) FROM executions e WHERE NOT EXISTS (SELECT 1 FROM results r \
             WHERE r.run_id = e.run_id AND r.step_number = e.step_number AND r.attempt = e.attempt)",
        );
        let gaps = count(
            c,
            "SELECT count(*) FROM (SELECT run_id, step_number FROM executions \
             GROUP BY run_id, step_number HAVING count(*) != max(attempt)) g",
        );
        let steps: Vec<(String, i64, i64)> = c
            .query(
                "SELECT s.arguments, \
                 (SELECT count(*) FROM executions e WHERE e.run_id = s.run_id \
                  AND e.step_number = s.number), \
                 (SELECT count(*) FROM results r WHERE r.run_id = s.run_id \
                  AND r.step_number = s.number AND r.kind = 'abandoned') \
                 FROM steps s WHERE s.target = 'effect'",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        (unfinished, gaps, steps)
    });
    if unfinished > 0 {
        violations.push(format!("{unfinished} executions without a result"));
    }
    if gaps > 0 {
        violations.push(format!("{gaps} steps whose attempts are not 1..n"));
    }
    let text = std::fs::read_to_string(effects).unwrap_or_default();
    for (run, (name, result)) in values {
        let expected: Vec<String> = (0..4).map(|j| format!("{name}:{j}")).collect();
        if result["value"] != json!(expected) {
            violations.push(format!("run {run} ended with {result}"));
        }
        for tag in expected {
            let times = text.lines().filter(|l| *l == tag).count() as i64;
            let quoted = format!("\"{tag}\"");
            let Some(step) = steps.iter().find(|s| s.0.contains(&quoted)) else {
                violations.push(format!("no step for {tag}"));
                continue;
            };
            if times == 0 {
                violations.push(format!("{tag}: side effect missing"));
            }
            if times > step.1 {
                violations.push(format!("{tag}: {times} side effects, {} attempts", step.1));
            }
            if times > 1 && step.2 == 0 {
                violations.push(format!("{tag}: repeated without an abandoned attempt"));
            }
        }
    }
    for log in logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(at) = text.find("panicked") {
            let end = text.len().min(at + 600);
            let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            violations.push(format!(
                "a panic in {}: {}",
                log.display(),
                &text[start..end]
            ));
        }
    }
    violations
}

/// Starts the agents (Rust and Python) on `front`; they are redirected to the owner.
fn agents(front: &Server, effects_env: &str) -> Vec<Proc> {
    vec![
        example_module_agent(
            front,
            P,
            "examples.semantics",
            &["COFLUX_EXAMPLE_SEMANTICS=1", effects_env],
            &["--concurrency", "16"],
        ),
        agent(
            front,
            AgentOptions {
                project: P,
                environment: "production",
                adapter: format!("env {effects_env} {} -m coflux", python().display()),
                modules: vec!["e2e_flows".into()],
                directory: workspace_root().join("tests/python"),
                extra: vec!["--register".into(), "--concurrency".into(), "8".into()],
            },
        ),
    ]
}

/// Submits run `i` (a Python workflow every fifth run, else Rust) until acknowledged.
async fn submit_until_acknowledged(front: &Server, i: u64, pause_ms: u64) -> (String, String) {
    let name = format!("r{i}");
    let python = i.is_multiple_of(5);
    let module = if python {
        "e2e_flows"
    } else {
        "examples.semantics"
    };
    // The Python workflow's pause is in seconds.
    let pause = if python { 0 } else { pause_ms };
    loop {
        if let Some(run) = submit(front, P, module, "effects", &name, pause).await {
            return (run, name);
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The workers of the project's connected agent sessions, sorted.
async fn session_workers(front: &Server) -> Vec<u64> {
    let url = format!("{}/api/projects/{P}/sessions", front.url);
    let Ok(mut r) = http().get(url).send().await else {
        return Vec::new();
    };
    let list: serde_json::Value = r.json().await.unwrap_or_default();
    let mut workers: Vec<u64> = list["sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["connected"] == true)
        .filter_map(|s| s["worker"].as_u64())
        .collect();
    workers.sort_unstable();
    workers
}

#[actix_rt::test]
#[ignore = "the chaos suite: cargo test -p coflux-tests --test chaos -- --include-ignored"]
async fn chaos_cluster_owner_killed_under_runs_fails_over_to_another_node() {
    let Some(base) = base_url() else { return };
    let runs = setting("COFLUX_CHAOS_CLUSTER_RUNS", 200);
    let db = Database::create(&base, "failover");
    let dir = tempfile::tempdir().unwrap();
    let (_moto, s3) = start_moto().await;
    // The project is created on node 0, which takes its lease; everyone else uses node 1 or 2.
    let (mut nodes, owner_index) = start_cluster(dir.path(), 3, &db.url, &s3, &[]).await;
    let owner_url = nodes[owner_index].url.clone();
    let front_node = nodes.iter().position(|n| n.url != owner_url).unwrap();
    let front = view(&nodes[front_node]);
    let effects = dir.path().join("side-effects.txt");
    let effects_env = format!("COFLUX_SIDE_EFFECTS={}", effects.display());
    let mut agent_procs = agents(&front, &effects_env);
    front.wait_registered(P, "production", "effects").await;
    println!(
        "chaos cluster: {runs} runs, owner {owner_url}, clients on {}",
        front.url
    );

    let mut acknowledged = Vec::new();
    for i in 0..runs / 2 {
        acknowledged.push(submit_until_acknowledged(&front, i, 20).await);
    }
    // The runs just submitted are in flight: kill the owner.
    let in_flight: Vec<String> = acknowledged
        .iter()
        .rev()
        .take(10)
        .map(|(run, _)| run.clone())
        .collect();
    let workers = session_workers(&front).await;
    assert_eq!(workers.len(), 2, "a Python and a Rust agent: {workers:?}");
    nodes[owner_index].proc.kill9();
    let killed = Instant::now();
    // Runs in flight at the kill progress again once another node took the project over.
    let failover = 'progress: loop {
        for run in &in_flight {
            let url = format!("{}/api/projects/{P}/runs/{run}/result?wait=0", front.url);
            if let Ok(mut r) = http().get(url).send().await
                && let Ok(result) = r.json::<serde_json::Value>().await
                && result["status"] == "value"
            {
                break 'progress killed.elapsed();
            }
        }
        assert!(
            killed.elapsed() < Duration::from_secs(120),
            "runs in flight did not progress after the owner was killed"
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    let successor = new_owner(&front.url, P, &owner_url, Duration::from_secs(30)).await;
    // The agents resumed their sessions on the new owner: the same workers, connected.
    let deadline = Instant::now() + Duration::from_secs(30);
    while session_workers(&front).await != workers {
        assert!(
            Instant::now() < deadline,
            "the agents' sessions did not resume on the new owner: {workers:?} before, {:?} after",
            session_workers(&front).await
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    for i in runs / 2..runs {
        acknowledged.push(submit_until_acknowledged(&front, i, 20).await);
    }
    let values = await_values(&front, P, &acknowledged).await;
    for agent in &mut agent_procs {
        agent.terminate(Duration::from_secs(10));
    }
    let logs: Vec<&Path> = nodes.iter().map(|n| n.log.as_path()).collect();
    let violations = check(&db, &effects, &values, &logs);
    println!(
        "chaos cluster-failover: faults injected 1, runs checked {}, violations {}, failover_s {:.1} (new owner {successor})",
        values.len(),
        violations.len(),
        failover.as_secs_f64()
    );
    assert_eq!(values.len() as u64, runs);
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(
        failover <= Duration::from_secs(20),
        "failover took {failover:?}"
    );
}

#[actix_rt::test]
#[ignore = "the chaos suite: cargo test -p coflux-tests --test chaos -- --include-ignored"]
async fn chaos_cluster_paused_owner_cannot_write_after_losing_its_lease() {
    let Some(base) = base_url() else { return };
    let runs = setting("COFLUX_CHAOS_CLUSTER_PAUSE_RUNS", 20);
    let db = Database::create(&base, "pause");
    let dir = tempfile::tempdir().unwrap();
    let (_moto, s3) = start_moto().await;
    let lease = ["--lease-duration", "2s"];
    let (nodes, owner_index) = start_cluster(dir.path(), 2, &db.url, &s3, &lease).await;
    assert_eq!(owner_index, 0, "the creating node owns the project");
    let owner_url = nodes[0].url.clone();
    let front = view(&nodes[1]);
    let effects = dir.path().join("side-effects.txt");
    let effects_env = format!("COFLUX_SIDE_EFFECTS={}", effects.display());
    let mut agent_procs = agents(&front, &effects_env);
    front.wait_registered(P, "production", "effects").await;

    let mut acknowledged = Vec::new();
    for i in 0..runs / 2 {
        acknowledged.push(submit_until_acknowledged(&front, i, 200).await);
    }
    // Frozen past its lease: node 1 takes the project.
    signal(&nodes[0].proc, "-STOP");
    let frozen = Instant::now();
    let successor = new_owner(&front.url, P, &owner_url, Duration::from_secs(30)).await;
    println!(
        "chaos cluster-pause: taken over after {:?}",
        frozen.elapsed()
    );
    assert_eq!(successor, nodes[1].url);
    for i in runs / 2..runs {
        acknowledged.push(submit_until_acknowledged(&front, i, 200).await);
    }
    // Resumed, the old owner still has the project in memory for a moment: what it is made
    // to serve itself (the forwarded header) must not be written.
    signal(&nodes[0].proc, "-CONT");
    let mut acknowledged_by_old = 0;
    let mut unanswered = 0;
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(15))
        .finish();
    for i in 0..5 {
        let body = json!({"module": "examples.semantics", "target": "effects",
                          "arguments": [format!("fenced{i}"), 4, 0], "allow_unregistered": true});
        let answer = client
            .post(format!(
                "{}/api/projects/{P}/environments/production/runs",
                nodes[0].url
            ))
            .insert_header(("x-coflux-forwarded-by", "test"))
            .send_json(&body)
            .await;
        match answer {
            Ok(r) if r.status().is_success() => acknowledged_by_old += 1,
            Ok(_) => {}
            Err(_) => unanswered += 1,
        }
    }
    let resumed = Instant::now();
    let values = await_values(&front, P, &acknowledged).await;
    println!(
        "chaos cluster-pause: runs ended {:?} after the resume",
        resumed.elapsed()
    );
    for agent in &mut agent_procs {
        agent.terminate(Duration::from_secs(10));
    }
    let written: i64 = db.with(|c| {
        c.query_one(
            &format!("SELECT count(*) FROM cx_{P}.steps WHERE arguments LIKE '%fenced%'"),
            &[],
        )
        .unwrap()
        .get(0)
    });
    let old_log = std::fs::read_to_string(&nodes[0].log).unwrap_or_default();
    let logs: Vec<&Path> = nodes.iter().map(|n| n.log.as_path()).collect();
    let mut violations = check(&db, &effects, &values, &logs);
    if written > 0 {
        violations.push(format!("the paused owner wrote {written} steps"));
    }
    if unanswered > 0 {
        violations.push(format!(
            "the paused owner left {unanswered} submissions unanswered"
        ));
    }
    if acknowledged_by_old > 0 {
        violations.push(format!(
            "the paused owner acknowledged {acknowledged_by_old} submissions"
        ));
    }
    if !old_log.contains("lease lost") && !old_log.contains("lease or session is lost") {
        violations.push("the old owner did not notice it lost the project".into());
    }
    println!(
        "chaos cluster-pause: faults injected 1, runs checked {}, violations {}",
        values.len(),
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
}

//! The `coflux` binary with a real `coflux-agent` (Python `coflux==0.12.0`, the fixture module
//! `tests/python/cli_flows.py`): logs complete once a result is seen, logs of one execution or
//! step, `sessions list` and `manifests discover`.
//!
//! Needs the test venv: run `scripts/setup-python.sh` (or set `COFLUX_TEST_PYTHON`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use crate::support::{TestServer, coflux_at, json_of, ok, stderr};

fn python() -> String {
    if let Ok(python) = std::env::var("COFLUX_TEST_PYTHON") {
        return python;
    }
    let python =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/python-venv/bin/python");
    assert!(python.exists(), "no test venv at {}", python.display());
    python.to_string_lossy().into_owned()
}

fn fixtures() -> String {
    format!("{}/tests/python", env!("CARGO_MANIFEST_DIR"))
}

fn adapter() -> String {
    format!("{} -m coflux", python())
}

/// An agent process, killed when dropped.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server with project `demo` and environment `production`, and an agent serving
/// `cli_flows` there (3 slots, providing `gpu:a100`), once its session is listed. The agent
/// finds its server, project and environment in a `coflux.toml` of a parent directory
/// (with Coflux's keys `host` and `workspace`).
fn start() -> (TestServer, Agent, tempfile::TempDir) {
    start_with(&["--provides", "gpu:a100"])
}

/// As [`start`], with these agent flags instead of `--provides gpu:a100`.
fn start_with(flags: &[&str]) -> (TestServer, Agent, tempfile::TempDir) {
    let server = TestServer::start_with("demo", |project| async move {
        project
            .create_environment("production", None)
            .await
            .unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let host = server.url.trim_start_matches("http://");
    std::fs::write(
        dir.path().join("coflux.toml"),
        format!("host = \"{host}\"\nproject = \"demo\"\nworkspace = \"production\"\n"),
    )
    .unwrap();
    let cwd = dir.path().join("nested");
    std::fs::create_dir(&cwd).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_coflux-agent"))
        .args(["--register", "--concurrency", "3"])
        .args(flags)
        .args(["--executor", "spawn", "--directory", &fixtures()])
        .args(["--adapter", &adapter(), "cli_flows"])
        .current_dir(&cwd)
        .env("COFLUX_LOG", "warn")
        .env_remove("COFLUX_SERVER")
        .env_remove("COFLUX_PROJECT")
        .env_remove("COFLUX_ENVIRONMENT")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let agent = Agent(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = json_of(server.coflux(&["-p", "demo", "sessions", "list", "-o", "json"]));
        if list["sessions"].as_array().is_some_and(|s| !s.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "the agent did not connect");
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, agent, dir)
}

fn with<'a>(args: &[&'a str]) -> Vec<&'a str> {
    [&["-p", "demo", "-e", "production"][..], args].concat()
}

fn templates(logs: &Json) -> Vec<String> {
    logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["template"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn logs_are_complete_once_the_result_is_seen_and_can_be_narrowed() {
    let (server, _agent, _dir) = start();
    for round in 0..4 {
        let result =
            json_of(server.coflux(&with(&["-o", "json", "submit", "cli_flows/chatty", "400"])));
        assert_eq!(result["value"], 400, "{result}");
        let run = result["run_id"].as_str().unwrap();
        let logs = json_of(server.coflux(&with(&["-o", "json", "logs", run])));
        let seen = templates(&logs);
        assert_eq!(seen.len(), 401, "round {round}: {} lines", seen.len());
        assert_eq!(seen.last().map(String::as_str), Some("the last line"));
    }

    let result = json_of(server.coflux(&with(&["-o", "json", "submit", "cli_flows/doubles", "4"])));
    assert_eq!(result["value"], 8, "{result}");
    let run = result["run_id"].as_str().unwrap().to_owned();
    let of = |selection: &[&str]| {
        let args = [&["-o", "json", "logs", run.as_str()][..], selection].concat();
        templates(&json_of(server.coflux(&with(&args))))
    };
    assert_eq!(of(&[]), ["before the task", "doubling 4"]);
    assert_eq!(of(&["2:1"]), ["doubling 4"]);
    assert_eq!(of(&[&format!("{run}:2:1")]), ["doubling 4"]);
    assert_eq!(of(&["1"]), ["before the task"]);
    assert_eq!(of(&["--from", "1h"]).len(), 2);
    assert_eq!(
        of(&["--from", "2099-01-01T00:00:00Z"]),
        Vec::<String>::new()
    );
    let text = ok(server.coflux(&with(&["logs", &run, "2:1"])));
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains(&format!("{run}:2:1")) && text.ends_with("doubling 4\n"),
        "{text}"
    );
    let foreign = server.coflux(&with(&["logs", &run, "R999:1:1"]));
    assert_eq!(foreign.status.code(), Some(1));
    assert!(
        stderr(&foreign).contains("not part of run"),
        "{}",
        stderr(&foreign)
    );
}

#[test]
fn sessions_list_the_connected_agents() {
    let (server, _agent, _dir) = start();
    let list = json_of(server.coflux(&["-p", "demo", "sessions", "list", "-o", "json"]));
    let session = &list["sessions"][0];
    assert_eq!(session["environment"], "production");
    assert_eq!(session["connected"], true);
    assert_eq!(session["capacity"], 3);
    assert_eq!(session["running"], 0);
    assert_eq!(session["targets"], 3, "chatty, double and doubles");
    assert_eq!(session["provides"], json!({"gpu": ["a100"]}));
    let table = ok(server.coflux(&["-p", "demo", "-e", "production", "sessions", "list"]));
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0][..3], ["ENVIRONMENT", "WORKER", "STATE"]);
    assert_eq!(rows[1][0], "production");
    assert_eq!(rows[1][2], "connected");
    assert!(
        rows[1].contains(&"0/3") && rows[1].contains(&"gpu:a100"),
        "{table}"
    );
    let other = server.coflux(&["-p", "demo", "-e", "staging", "sessions", "list"]);
    assert_eq!(other.status.code(), Some(1));
    assert!(
        stderr(&other).contains("environment_not_found"),
        "{}",
        stderr(&other)
    );
}

#[test]
fn manifests_discover_prints_what_an_agent_registers() {
    let dir = fixtures();
    let adapter = adapter();
    let discover = |extra: &[&str]| {
        let args = [
            &[
                "manifests",
                "discover",
                "--directory",
                &dir,
                "--adapter",
                &adapter,
            ][..],
            extra,
        ]
        .concat();
        // No server is needed: this one does not exist.
        coflux_at("http://127.0.0.1:9", &args)
    };
    let table = ok(discover(&["cli_flows"]));
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["MODULE", "TARGET", "KIND", "PARAMETERS"]);
    assert!(
        rows.contains(&vec!["cli_flows", "chatty", "workflow", "n"]),
        "{table}"
    );
    assert!(
        rows.contains(&vec!["cli_flows", "double", "task", "x"]),
        "{table}"
    );
    let manifest = json_of(discover(&["cli_flows", "-o", "json"]));
    let targets = manifest["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 3);
    let chatty = targets
        .iter()
        .find(|t| t["target"]["name"] == "chatty")
        .unwrap();
    assert_eq!(chatty["instruction"], "Logs n lines, then returns n.");

    let missing = discover(&["no_such_module"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("no_such_module"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn an_agent_with_accepts_takes_only_executions_that_require_them() {
    let (server, _agent, _dir) = start_with(&["--provides", "pool:gpu", "--accepts", "pool:gpu"]);
    let list = json_of(server.coflux(&["-p", "demo", "sessions", "list", "-o", "json"]));
    assert_eq!(list["sessions"][0]["accepts"], json!({"pool": ["gpu"]}));
    // Without the tag in its requires, the run waits: the only agent does not accept it.
    let plain = ok(server.coflux(&with(&["submit", "cli_flows/chatty", "1", "--no-wait"])));
    let plain = plain.trim();
    let tagged = json_of(server.coflux(&with(&[
        "-o",
        "json",
        "submit",
        "cli_flows/chatty",
        "2",
        "--requires",
        "pool:gpu",
    ])));
    assert_eq!(tagged["value"], 2, "{tagged}");
    let waiting =
        json_of(server.coflux(&with(&["-o", "json", "runs", "result", plain, "--no-wait"])));
    assert_eq!(waiting["status"], "pending", "{waiting}");
}

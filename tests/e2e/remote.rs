//! End to end with real processes on 127.0.0.1: `coflux-server`, `coflux-agent`s hosting the
//! Rust example repository and Python code written with the real `coflux` 0.12.0 package.
//! Python tests need the venv from `scripts/setup-python.sh`.

use std::time::{Duration, Instant};

use coflux_tests::{
    AgentOptions, Proxy, Server, agent, eventually, example_module_agent, python, python_agent,
    rust_agent, step_states, workspace_root,
};
use serde_json::json;

const P: &str = "acme";

/// Waits until a step of `target` in the run has an execution that is running.
async fn wait_running(server: &Server, run: &str, target: &str) {
    eventually(Duration::from_secs(30), "the step to start", || async {
        let view = server.inspect(P, run).await;
        view["steps"].as_array()?.iter().find_map(|s| {
            (s["target"] == target
                && s["executions"]
                    .as_array()?
                    .iter()
                    .any(|e| e["assigned_at"].is_number() && e["finished_at"].is_null()))
            .then_some(())
        })
    })
    .await
}

/// With a single slot, a workflow waiting for its tasks must tell the server at once that it
/// lends its slot (the agent holds that notice back only while it has room to spare): else
/// its children are never assigned.
#[actix_rt::test]
async fn an_agent_with_one_slot_runs_workflows_that_wait_for_their_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.setup(P, "production", None).await;
    let _agent = rust_agent(&server, P, "production", &["--concurrency", "1"]);
    for (target, argument, expected) in [("chain", 5, 5), ("sum_of_squares", 3, 14)] {
        let run = server
            .submit(P, "production", "examples.repo", target, json!([argument]))
            .await;
        let result = server.result(P, &run, 30).await;
        assert_eq!(result["status"], "value", "{target}: {result}");
        assert_eq!(result["value"], expected, "{target}");
    }
}

#[actix_rt::test]
async fn remote_rust_repository_runs_workflows_with_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.setup(P, "production", None).await;
    let _agent = rust_agent(&server, P, "production", &["--concurrency", "4"]);
    let run = server
        .submit(
            P,
            "production",
            "examples.repo",
            "sum_of_squares",
            json!([5]),
        )
        .await;
    let result = server.result(P, &run, 60).await;
    assert_eq!(result["status"], "value", "{result}");
    assert_eq!(result["value"], 55);

    let run = server
        .submit(P, "production", "examples.repo", "divide", json!([1, 0]))
        .await;
    let result = server.result(P, &run, 60).await;
    assert_eq!(result["status"], "error", "{result}");
    assert!(
        result["error"]["type"]
            .as_str()
            .unwrap()
            .contains("DivisionByZero"),
        "{result}"
    );
}

#[actix_rt::test]
async fn remote_python_repository_runs_fan_out_with_errors_caching_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.setup(P, "production", None).await;
    let _agent = python_agent(&server.url, P, "production", "a", &["--concurrency", "4"]);
    let run = server
        .submit(P, "production", "e2e_flows", "squares", json!([4]))
        .await;
    let result = server.result(P, &run, 60).await;
    assert_eq!(
        result["value"],
        json!({"total": 14, "caught": "bad value 4"}),
        "{result}"
    );
    // An uncaught error keeps its Python type.
    let failed = server
        .submit(P, "production", "e2e_flows", "fails", json!([3]))
        .await;
    let result = server.result(P, &failed, 60).await;
    assert_eq!(result["status"], "error");
    assert_eq!(result["error"]["type"], "builtins.ValueError");
    assert_eq!(result["error"]["message"], "bad value 3");
    // Cached squares are not executed again.
    let again = server
        .submit(P, "production", "e2e_flows", "squares", json!([4]))
        .await;
    assert_eq!(server.result(P, &again, 60).await["value"]["total"], 14);
    let states = step_states(&server.inspect(P, &again).await);
    let squares: Vec<_> = states.iter().filter(|(t, _)| t == "square").collect();
    assert_eq!(squares.len(), 4);
    assert!(
        squares
            .iter()
            .all(|(_, s)| s == &vec!["cached".to_string()])
    );
    // Logs: the workflow's structured message and the tasks' prints.
    let logs = coflux_tests::get(&server.url, &format!("/api/projects/{P}/runs/{run}/logs")).await;
    let logs = logs["logs"].as_array().unwrap().clone();
    assert!(
        logs.iter()
            .any(|l| l["template"] == "squaring {n} numbers" && l["values"]["n"] == 4),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l["level"] == 1 && l["template"] == "squaring 3"),
        "{logs:?}"
    );
}

#[actix_rt::test]
async fn remote_requires_routes_tasks_to_the_agent_that_provides_the_tag() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.setup(P, "production", None).await;
    let _plain = python_agent(&server.url, P, "production", "plain", &[]);
    let _gpu = python_agent(
        &server.url,
        P,
        "production",
        "gpu",
        &["--provides", "gpu:yes"],
    );
    for _ in 0..3 {
        let run = server
            .submit(P, "production", "e2e_flows", "routed", json!([]))
            .await;
        let result = server.result(P, &run, 60).await;
        assert_eq!(result["value"]["gpu"], "gpu", "{result}");
    }
}

#[actix_rt::test]
async fn remote_killed_agent_work_is_abandoned_and_retried_on_another_agent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_on(
        dir.path(),
        coflux_tests::free_port(),
        &["--reconnect-timeout", "1"],
    )
    .await;
    server.setup(P, "production", None).await;
    let mut a = python_agent(&server.url, P, "production", "a", &[]);
    server.wait_registered(P, "production", "nap").await;
    let run = server
        .submit(P, "production", "e2e_flows", "nap", json!([60]))
        .await;
    wait_running(&server, &run, "nap").await;
    a.kill9();
    let _b = python_agent(&server.url, P, "production", "b", &[]);
    let result = server.result(P, &run, 60).await;
    assert_eq!(result["value"], "b", "{result}");
    let states = step_states(&server.inspect(P, &run).await);
    assert_eq!(states[0].1, vec!["abandoned", "value"]);
}

#[actix_rt::test]
async fn remote_dev_mode_picks_up_an_edited_python_task() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.setup(P, "development", None).await;
    let repo = tempfile::tempdir().unwrap();
    let module = repo.path().join("devflows.py");
    let write = |version: u32| {
        std::fs::write(
            &module,
            format!(
                "import coflux as cf\n\n@cf.workflow()\ndef version():\n    return {version}\n"
            ),
        )
        .unwrap();
    };
    write(1);
    let log_path = repo.path().join("agent.log");
    let _agent = coflux_tests::Proc::spawn(
        "coflux-agent --dev",
        std::process::Command::new(coflux_tests::bin("coflux-agent"))
            .args(["--server", &server.url, "--project", P])
            .args(["--environment", "development", "--dev"])
            .arg("--adapter")
            .arg(format!("{} -m coflux", coflux_tests::python().display()))
            .arg("--directory")
            .arg(repo.path())
            .arg("devflows")
            .env("COFLUX_LOG", "warn")
            .stderr(std::fs::File::create(&log_path).unwrap()),
    );
    let run = server
        .submit(P, "development", "devflows", "version", json!([]))
        .await;
    assert_eq!(server.result(P, &run, 60).await["value"], 1);
    write(2);
    let edited = Instant::now();
    let picked_up = eventually(Duration::from_secs(10), "the edit", || async {
        let run = server
            .submit(P, "development", "devflows", "version", json!([]))
            .await;
        (server.result(P, &run, 10).await["value"] == 2).then(|| edited.elapsed())
    })
    .await;
    assert!(
        picked_up < Duration::from_secs(6),
        "the edit took {picked_up:?} to be picked up"
    );

    // A save that does not import is reported, and the agent recovers on the next good save.
    std::fs::write(&module, "import coflux as cf\n\ndef broken(:\n").unwrap();
    eventually(Duration::from_secs(10), "the import error", || async {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        (log.contains("cannot load the repository") && log.contains("SyntaxError")).then_some(())
    })
    .await;
    write(3);
    let run = server
        .submit(P, "development", "devflows", "version", json!([]))
        .await;
    assert_eq!(server.result(P, &run, 30).await["value"], 3);

    // Its own log lies in the watched directory: writing it starts no reload.
    let reloads = || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .matches("reloading")
            .count()
    };
    let settled = reloads();
    actix_rt::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(reloads(), settled, "the agent reloaded with no edit");
}

#[actix_rt::test]
async fn remote_agent_stopped_with_sigterm_finishes_what_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.setup(P, "production", None).await;
    let mut agent = python_agent(&server.url, P, "production", "a", &[]);
    let run = server
        .submit(P, "production", "e2e_flows", "sleepy", json!([2]))
        .await;
    wait_running(&server, &run, "slow").await;
    let started = Instant::now();
    assert!(
        agent.terminate(Duration::from_secs(30)),
        "the agent did not exit after draining"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "it waited for the task"
    );
    let result = server.result(P, &run, 0).await;
    assert_eq!(result["value"], "a", "{result}");
    let states = step_states(&server.inspect(P, &run).await);
    assert!(states.iter().all(|(_, s)| s.len() == 1), "{states:?}");
}

/// A parent waiting for its children lends its slot: a cached recursive `fib(25)` completes on
/// one agent with `--concurrency 4` (Coflux can deadlock here).
#[actix_rt::test]
async fn remote_waiting_parents_do_not_deadlock_a_small_agent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.setup(P, "rust", None).await;
    server.setup(P, "python", None).await;
    let _rust = rust_agent(&server, P, "rust", &["--concurrency", "4"]);
    let _python = python_agent(&server.url, P, "python", "a", &["--concurrency", "4"]);
    let run = server
        .submit(P, "rust", "examples.repo", "fib", json!([25]))
        .await;
    let result = server.result(P, &run, 120).await;
    assert_eq!(result["value"], 75025, "{result}");
    let run = server
        .submit(P, "python", "e2e_flows", "fib_flow", json!([25]))
        .await;
    let result = server.result(P, &run, 120).await;
    assert_eq!(result["value"], 75025, "{result}");
}

/// A burst of Python workflows, all waiting for a child, larger than an agent can keep waiting
/// in their processes (16 per slot): those that cannot lend their slot are suspended (their
/// processes end, and each runs again once its child has finished, getting the same child)
/// rather than holding the only slot the children need.
#[actix_rt::test]
async fn remote_a_burst_of_waiting_python_workflows_does_not_fill_an_agent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.setup(P, "production", None).await;
    let _python = python_agent(&server.url, P, "production", "a", &["--concurrency", "1"]);
    server.wait_registered(P, "production", "sleepy").await;
    // Submitted at once, so the workflows are queued before their children (a slow
    // submission path, e.g. a loaded database, must not let the children keep up).
    let runs = futures::future::join_all(
        (0..24).map(|_| server.submit(P, "production", "e2e_flows", "sleepy", json!([0.05]))),
    )
    .await;
    for run in &runs {
        let result = server.result(P, run, 120).await;
        assert_eq!(result["value"], "a", "{result}");
    }
    // Some were suspended and ran again, and each got the child it had submitted: one
    // execution of `slow` per run.
    let mut suspended = 0;
    for run in &runs {
        let states = step_states(&server.inspect(P, run).await);
        let slow: Vec<_> = states.iter().filter(|(t, _)| t.ends_with("slow")).collect();
        assert_eq!(slow.len(), 1, "{states:?}");
        assert_eq!(slow[0].1.len(), 1, "{states:?}");
        suspended += states
            .iter()
            .filter(|(t, s)| t.ends_with("sleepy") && s.len() > 1)
            .count();
    }
    assert!(suspended > 0, "no workflow was suspended");
}

#[actix_rt::test]
async fn remote_archiving_an_environment_stops_its_agents_and_cancels_pending_work() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.setup(P, "staging", None).await;
    let mut agent = python_agent(&server.url, P, "staging", "a", &[]);
    server.wait_registered(P, "staging", "nap").await;
    // Work that no agent hosts stays pending until the archive cancels it.
    let pending = server
        .submit(P, "staging", "e2e_flows", "unknown_workflow", json!([]))
        .await;
    let archived = coflux_tests::post(
        &server.url,
        &format!("/api/projects/{P}/environments/staging/archive"),
        json!({}),
    )
    .await;
    assert_eq!(archived["state"], "archived", "{archived}");
    let status = agent
        .wait_exit(Duration::from_secs(20))
        .expect("the agent stopped");
    assert!(!status.success(), "it reports why it stopped");
    let result = server.result(P, &pending, 10).await;
    assert_eq!(result["status"], "cancelled", "{result}");
}

#[actix_rt::test]
async fn remote_a_paused_environment_keeps_work_queued_until_it_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.setup(P, "production", None).await;
    let _agent = rust_agent(&server, P, "production", &[]);
    let environment = format!("/api/projects/{P}/environments/production");
    coflux_tests::post(&server.url, &format!("{environment}/pause"), json!({})).await;
    let run = server
        .submit(
            P,
            "production",
            "examples.repo",
            "sum_of_squares",
            json!([3]),
        )
        .await;
    assert_eq!(server.result(P, &run, 1).await["status"], "pending");
    coflux_tests::post(&server.url, &format!("{environment}/resume"), json!({})).await;
    assert_eq!(server.result(P, &run, 30).await["value"], 14);
}

#[actix_rt::test]
async fn remote_python_memo_reuses_an_execution_within_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.setup(P, "production", None).await;
    let _agent = python_agent(&server.url, P, "production", "a", &["--concurrency", "4"]);
    let run = server
        .submit(P, "production", "e2e_flows", "memo_twice", json!([1]))
        .await;
    let result = server.result(P, &run, 60).await;
    assert_eq!(result["value"], json!([true, false]), "{result}");
    let states = step_states(&server.inspect(P, &run).await);
    let executed = states.iter().filter(|(t, _)| t == "remembered").count();
    assert_eq!(executed, 2, "x=1 once (memoised), x=2 once: {states:?}");
}

/// The orchestrator enforces timeouts itself: an agent that hangs (SIGSTOP) does not keep an
/// execution running past its timeout.
#[actix_rt::test]
async fn remote_timeouts_are_enforced_by_the_server_when_the_agent_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.setup(P, "production", None).await;
    let mut agent = python_agent(&server.url, P, "production", "a", &[]);
    server.wait_registered(P, "production", "hang_flow").await;
    let run = server
        .submit(P, "production", "e2e_flows", "hang_flow", json!([]))
        .await;
    wait_running(&server, &run, "hang_flow").await;
    let signal = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &agent.pid().to_string()])
            .status()
            .unwrap();
    };
    signal("-STOP");
    let started = Instant::now();
    let result = server.result(P, &run, 30).await;
    signal("-CONT");
    assert_eq!(result["status"], "timeout", "{result}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // Resumed, the agent gets the abort and kills the hung executor process.
    eventually(
        Duration::from_secs(10),
        "the executor to be killed",
        || async {
            // Executors are the agent's children, or its fork server's.
            descendants(agent.pid())
                .iter()
                .all(|pid| {
                    !std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                        .unwrap_or_default()
                        .contains("coflux")
                        || warm(pid)
                })
                .then_some(())
        },
    )
    .await;
    agent.terminate(Duration::from_secs(10));
}

/// The children and grandchildren of a process.
fn descendants(pid: u32) -> Vec<String> {
    let children = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let mut all = children(&pid.to_string());
    let grandchildren: Vec<_> = all.iter().flat_map(|c| children(c)).collect();
    all.extend(grandchildren);
    all
}

/// Whether a process is an idle warm executor (its command line cannot tell; it has no
/// working directory of an execution).
fn warm(pid: &str) -> bool {
    std::fs::read_link(format!("/proc/{pid}/cwd"))
        .map(|cwd| !cwd.display().to_string().contains("coflux-agent-"))
        .unwrap_or(true)
}

#[actix_rt::test]
async fn remote_python_delay_holds_a_step_before_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.setup(P, "production", None).await;
    let _agent = python_agent(&server.url, P, "production", "a", &[]);
    let run = server
        .submit(P, "production", "e2e_flows", "delayed", json!([]))
        .await;
    assert_eq!(server.result(P, &run, 30).await["value"], "later");
    let view = server.inspect(P, &run).await;
    let step = view["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["target"] == "later")
        .unwrap();
    let execution = &step["executions"][0];
    let waited =
        execution["assigned_at"].as_i64().unwrap() - execution["created_at"].as_i64().unwrap();
    assert!(waited >= 1_000, "assigned {waited} ms after it was created");
}

/// Log output written to a file or a pipe has no ANSI colour codes (only a terminal gets them).
#[actix_rt::test]
async fn remote_logs_written_to_a_pipe_are_plain_text() {
    use coflux_tests::{bin, free_port};
    use std::io::Read;
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin("coflux-server"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--port", &free_port().to_string()])
        .env("COFLUX_LOG", "info")
        .env_remove("NO_COLOR")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        text
    });
    actix_rt::time::sleep(Duration::from_secs(1)).await;
    let _ = child.kill();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    assert!(text.contains("INFO"), "the server logged nothing: {text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");
}

#[path = "remote/restarts.rs"]
mod restarts;
mod tls;

//! The server killed or cut off under running work (SQLite and PostgreSQL): runs continue,
//! children are created once, results are delivered once.

use super::*;

#[actix_rt::test]
async fn remote_server_killed_and_restarted_runs_continue_with_one_result_per_execution() {
    let dir = tempfile::tempdir().unwrap();
    let port = coflux_tests::free_port();
    let mut server = Server::start_on(dir.path(), port, &[]).await;
    server.setup(P, "production", None).await;
    let _agent = python_agent(&server.url, P, "production", "a", &[]);
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(
            server
                .submit(P, "production", "e2e_flows", "sleepy", json!([3]))
                .await,
        );
    }
    for run in &runs {
        wait_running(&server, run, "slow").await;
    }
    let workers = |server: &Server| {
        let url = server.url.clone();
        async move {
            let list = coflux_tests::get(&url, &format!("/api/projects/{P}/sessions")).await;
            list["sessions"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["connected"] == true)
                .map(|s| s["worker"].clone())
                .collect::<Vec<_>>()
        }
    };
    let before = workers(&server).await;
    assert_eq!(before.len(), 1, "{before:?}");
    server.proc.kill9();
    let server = Server::start_on(dir.path(), port, &[]).await;
    // The agent resumes its session (same worker) on the restarted server, as on a node that
    // takes its project over: the session's state is the project's store, not the process.
    let after = eventually(Duration::from_secs(30), "the agent back", || async {
        Some(workers(&server).await).filter(|w| !w.is_empty())
    })
    .await;
    assert_eq!(after, before, "the session resumed under its worker");
    for run in &runs {
        let result = server.result(P, run, 60).await;
        assert_eq!(result["value"], "a", "{result}");
        let states = step_states(&server.inspect(P, run).await);
        assert_eq!(
            states,
            vec![
                ("sleepy".to_string(), vec!["value".to_string()]),
                ("slow".to_string(), vec!["value".to_string()]),
            ],
            "the agent kept running both executions through the restart"
        );
    }
}

/// Workflows that call tasks one after another, in Python and Rust, while the server is killed
/// with SIGKILL and restarted: children submitted while it was away, or whose submission was in
/// flight, are created once; every run ends with its value and no task ran twice.
#[actix_rt::test]
async fn remote_children_submitted_across_a_server_kill_are_created_once() {
    let dir = tempfile::tempdir().unwrap();
    let effects = dir.path().join("side-effects.txt");
    let effects_env = format!("COFLUX_SIDE_EFFECTS={}", effects.display());
    let port = coflux_tests::free_port();
    let server = Server::start_on(&dir.path().join("data"), port, &[]).await;
    server.setup(P, "production", None).await;
    let _python = agent(
        &server,
        AgentOptions {
            project: P,
            environment: "production",
            adapter: format!("env {effects_env} {} -m coflux", python().display()),
            modules: vec!["e2e_flows".into()],
            directory: workspace_root().join("tests/python"),
            extra: vec!["--register".into()],
        },
    );
    let _rust = example_module_agent(
        &server,
        P,
        "examples.semantics",
        &["COFLUX_EXAMPLE_SEMANTICS=1", &effects_env],
        &[],
    );
    server.wait_registered(P, "production", "effects").await;
    let mut runs = Vec::new();
    for i in 0..8 {
        let (module, pause) = match i % 2 {
            0 => ("e2e_flows", json!(0.15)),
            _ => ("examples.semantics", json!(150)),
        };
        let name = format!("r{i}");
        let run = server
            .submit(P, "production", module, "effects", json!([name, 4, pause]))
            .await;
        runs.push((run, name));
    }
    // Kill the server while the workflows are between calls, and keep it away long enough for
    // running tasks to finish and their workflows to submit the next child.
    actix_rt::time::sleep(Duration::from_millis(400)).await;
    let mut server = server;
    server.proc.kill9();
    actix_rt::time::sleep(Duration::from_millis(1500)).await;
    let server = Server::start_on(&dir.path().join("data"), port, &[]).await;
    let mut all_states = Vec::new();
    for (run, name) in &runs {
        let result = server.result(P, run, 90).await;
        let expected: Vec<String> = (0..4).map(|i| format!("{name}:{i}")).collect();
        assert_eq!(result["value"], json!(expected), "run {run}: {result}");
        all_states.push(step_states(&server.inspect(P, run).await));
    }
    for states in &all_states {
        assert_eq!(states.len(), 5, "the workflow and four tasks: {states:?}");
        // An assignment committed just before the kill may never have reached the agent: it
        // is abandoned (the agent names its old session and does not claim it) and runs once
        // as a second attempt. Nothing else ends but with its value.
        assert!(
            states
                .iter()
                .all(|(_, s)| s.last().is_some_and(|l| l == "value")
                    && s[..s.len() - 1].iter().all(|e| e == "abandoned")),
            "each step ends with its value: {states:?}"
        );
    }
    let text = std::fs::read_to_string(&effects).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    let mut expected: Vec<String> = runs
        .iter()
        .flat_map(|(_, name)| (0..4).map(move |i| format!("{name}:{i}")))
        .collect();
    expected.sort_unstable();
    assert_eq!(lines, expected, "each task's side effect happened once");
}

#[actix_rt::test]
async fn remote_brief_disconnect_abandons_nothing_and_delivers_buffered_results_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = coflux_tests::free_port();
    let proxy = Proxy::start(port);
    let via_proxy = format!("http://127.0.0.1:{}", proxy.port);
    // On PostgreSQL the server is a cluster node and tells agents its address as a fallback:
    // it advertises the proxy, so the cut leaves the agent no other way in.
    let advertise = ["--advertise-url", via_proxy.as_str()];
    let flags: &[&str] = if coflux_tests::backend::is_postgres() {
        &advertise
    } else {
        &[]
    };
    let server = Server::start_on(dir.path(), port, flags).await;
    server.setup(P, "production", None).await;
    let _agent = python_agent(&via_proxy, P, "production", "a", &[]);
    let run = server
        .submit(P, "production", "e2e_flows", "sleepy", json!([1]))
        .await;
    wait_running(&server, &run, "slow").await;
    proxy.cut();
    // The task finishes while the agent is cut off; its result waits in the agent.
    actix_rt::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(server.result(P, &run, 0).await["status"], "pending");
    proxy.restore();
    let result = server.result(P, &run, 60).await;
    assert_eq!(result["value"], "a", "{result}");
    let states = step_states(&server.inspect(P, &run).await);
    assert!(
        states.iter().all(|(_, s)| s.len() == 1),
        "nothing abandoned or retried: {states:?}"
    );
}

/// The same server and agent with every project's state in PostgreSQL
/// (`COFLUX_TEST_DATABASE_URL`, see `scripts/setup-postgres.sh`; skipped without it unless
/// `COFLUX_PG_TESTS=require`): runs complete, and after a kill -9 a server on a new, empty
/// data directory finds the project, its finished runs and its environment in the database.
#[actix_rt::test]
async fn remote_postgres_backend_runs_workflows_and_recovers_after_a_kill() {
    let url = match std::env::var("COFLUX_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ if std::env::var("COFLUX_PG_TESTS").as_deref() == Ok("require") => {
            panic!("COFLUX_PG_TESTS=require but COFLUX_TEST_DATABASE_URL is not set")
        }
        _ => {
            eprintln!("skipped: PostgreSQL end-to-end test (set COFLUX_TEST_DATABASE_URL)");
            return;
        }
    };
    // A database of its own: what other tests left in the shared one (projects whose lease
    // expired) stays out of this one.
    let url = coflux_tests::backend::fresh_database(&url, "remote-postgres-restart");
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let project = format!("pg-e2e-{}-{stamp}", std::process::id());
    let project = project.as_str();
    let flags = ["--database-url", url.as_str()];
    let dir = tempfile::tempdir().unwrap();
    let port = coflux_tests::free_port();
    let mut server = Server::start_on(dir.path(), port, &flags).await;
    server.setup(project, "production", None).await;
    let mut agent = rust_agent(&server, project, "production", &["--concurrency", "4"]);
    let squares = server
        .submit(
            project,
            "production",
            "examples.repo",
            "sum_of_squares",
            json!([5]),
        )
        .await;
    let result = server.result(project, &squares, 60).await;
    assert_eq!(result["status"], "value", "{result}");
    assert_eq!(result["value"], 55);
    let divide = server
        .submit(
            project,
            "production",
            "examples.repo",
            "divide",
            json!([1, 0]),
        )
        .await;
    let result = server.result(project, &divide, 60).await;
    assert_eq!(result["status"], "error", "{result}");
    let before = step_states(&server.inspect(project, &squares).await);
    assert_eq!(
        before.len(),
        6,
        "the workflow and its five tasks: {before:?}"
    );

    server.proc.kill9();
    agent.kill9();
    let other_dir = tempfile::tempdir().unwrap();
    let server = Server::start_on(other_dir.path(), port, &flags).await;
    assert_eq!(
        step_states(&server.inspect(project, &squares).await),
        before
    );
    let _agent = rust_agent(&server, project, "production", &["--concurrency", "4"]);
    let chain = server
        .submit(project, "production", "examples.repo", "chain", json!([3]))
        .await;
    let result = server.result(project, &chain, 60).await;
    assert_eq!(result["value"], 3, "{result}");
    assert_ne!(chain, squares, "run numbers continue after the restart");

    // The runs list (filtered) and a page of a run's steps read from PostgreSQL too.
    let listed = |query: &'static str| {
        let url = server.url.clone();
        let path = format!("/api/projects/{project}/runs{query}");
        async move {
            let page = coflux_tests::get(&url, &path).await;
            let runs = page["runs"].as_array().cloned().unwrap_or_default();
            runs.iter()
                .map(|r| r["run_id"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed("").await,
        [chain.clone(), divide.clone(), squares.clone()]
    );
    assert_eq!(listed("?status=error").await, [divide]);
    assert_eq!(listed("?status=value&limit=1").await, [chain]);
    let page = coflux_tests::get(
        &server.url,
        &format!("/api/projects/{project}/runs/{squares}?limit=2"),
    )
    .await;
    assert_eq!(page["steps"].as_array().map(Vec::len), Some(2), "{page}");
}

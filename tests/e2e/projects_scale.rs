//! Projects at scale through the server: an idle project is unloaded (its database closed)
//! and loaded again by the next request or agent, with its runs intact; threads stay bounded
//! however many projects are loaded.

use std::path::Path;
use std::time::Duration;

use coflux_tests::{Server, eventually, get, post, rust_agent};
use serde_json::json;

const P: &str = "idle";

/// How many descriptors the process has open on `path` (what `lsof` shows a user).
fn open_descriptors(pid: u32, path: &Path) -> usize {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.flatten()
                .filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == path))
                .count()
        })
        .unwrap_or(0)
}

fn threads(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[actix_rt::test]
async fn an_idle_project_is_unloaded_and_an_agent_or_a_request_loads_it_again() {
    if coflux_tests::backend::skip_on_postgres(
        "it sees the unload through the project's SQLite file descriptors",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_on(
        dir.path(),
        coflux_tests::free_port(),
        &[
            "--project-idle-timeout",
            "300ms",
            "--reconnect-timeout",
            "1",
        ],
    )
    .await;
    let db = dir.path().join("projects").join(P).join("project.sqlite");
    let pid = server.proc.pid();
    server.setup(P, "production", None).await;
    let mut agent = rust_agent(&server, P, "production", &["--concurrency", "2"]);
    let first = server
        .submit(
            P,
            "production",
            "examples.repo",
            "sum_of_squares",
            json!([3]),
        )
        .await;
    assert_eq!(server.result(P, &first, 60).await["value"], 14);
    // The connected agent keeps it loaded past the timeout.
    actix_rt::time::sleep(Duration::from_secs(1)).await;
    assert!(open_descriptors(pid, &db) > 0, "the database is open");

    // Without its agent (and once the agent's session has expired), the project is unloaded.
    agent.terminate(Duration::from_secs(10));
    eventually(Duration::from_secs(20), "the project unloaded", || async {
        (open_descriptors(pid, &db) == 0).then_some(())
    })
    .await;

    // A request loads it again: the finished run is there.
    let result = server.result(P, &first, 10).await;
    assert_eq!(result["value"], 14, "{result}");
    assert!(open_descriptors(pid, &db) > 0, "the database is open again");
    eventually(
        Duration::from_secs(20),
        "the project unloaded again",
        || async { (open_descriptors(pid, &db) == 0).then_some(()) },
    )
    .await;

    // So does an agent connecting: a run submitted then completes.
    let _agent = rust_agent(&server, P, "production", &["--concurrency", "2"]);
    eventually(
        Duration::from_secs(20),
        "the agent loaded the project",
        || async { (open_descriptors(pid, &db) > 0).then_some(()) },
    )
    .await;
    let second = server
        .submit(
            P,
            "production",
            "examples.repo",
            "sum_of_squares",
            json!([4]),
        )
        .await;
    assert_eq!(server.result(P, &second, 60).await["value"], 30);
    let runs = get(&server.url, &format!("/api/projects/{P}/runs")).await;
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(2), "{runs}");
}

#[actix_rt::test]
async fn threads_stay_bounded_with_many_projects_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let pid = server.proc.pid();
    let before = threads(pid);
    // On PostgreSQL a loaded project holds two connections: stay within the test cluster's
    // default max_connections (100), which other tests share.
    let projects = if coflux_tests::backend::is_postgres() {
        30
    } else {
        150
    };
    for i in 0..projects {
        let name = format!("p{i}");
        let created = post(&server.url, "/api/projects", json!({ "name": name })).await;
        assert_eq!(created["name"], name.as_str(), "{created}");
        // A request that loads the project (creating it does too).
        let envs = get(&server.url, &format!("/api/projects/{name}/environments")).await;
        assert!(envs.is_object(), "{envs}");
    }
    let after = threads(pid);
    // One arbiter and one writer per core, one checkpointer: not three threads per project.
    assert!(
        after <= before + 2 * 16 + 1,
        "{before} threads before, {after} with {projects} projects loaded"
    );
}

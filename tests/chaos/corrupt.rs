//! A corrupt project database is isolated: the server starts, the other projects serve
//! requests and run workflows, and requests to the corrupt one answer an error in the API's
//! shape (no panic, no path or SQL in the body).

use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;

use coflux_tests::{Proc, Server, free_port, http};

use crate::{await_values, checker, start_server_with, submit};

const GOOD: &str = "acme";
const BAD: &str = "broken";

/// Moves the write-ahead log into `path`, then overwrites 8 KiB in its middle (by default)
/// with garbage; returns the file's size.
fn corrupt(path: &std::path::Path) -> u64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    let len = std::fs::metadata(path).unwrap().len();
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    // In the middle by default; `COFLUX_CHAOS_CORRUPT_AT` (a percentage of the size) moves it.
    let at = crate::setting("COFLUX_CHAOS_CORRUPT_AT", 50).min(100);
    let start = (len * at / 100)
        .saturating_sub(4096)
        .min(len.saturating_sub(8192));
    file.seek(SeekFrom::Start(start)).unwrap();
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    file.write_all(&garbage).unwrap();
    file.sync_all().unwrap();
    len
}

#[actix_rt::test]
#[ignore = "the chaos suite: cargo test -p coflux-tests --test chaos -- --include-ignored"]
async fn chaos_corrupt_project_database_is_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let effects = dir.path().join("side-effects.txt");
    let effects_env = format!("COFLUX_SIDE_EFFECTS={}", effects.display());
    let port = free_port();
    let (mut server_proc, _) = start_server_with(&data, port, &log, &[]).await;
    let server = Server {
        proc: Proc::detached("coflux-server"),
        url: format!("http://127.0.0.1:{port}"),
        port,
        data_dir: data.clone(),
    };
    server.setup(GOOD, "production", None).await;
    server.setup(BAD, "production", None).await;
    // Some content in the project that will be corrupted.
    for project in [GOOD, BAD] {
        for i in 0..60 {
            submit(
                &server,
                project,
                "examples.semantics",
                "effects",
                &format!("x{i}"),
                0,
            )
            .await
            .expect("submitted");
        }
    }
    server_proc.terminate(Duration::from_secs(10));
    let db = data.join("projects").join(BAD).join("project.sqlite");
    let size = corrupt(&db);
    let check = rusqlite::Connection::open(&db)
        .and_then(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)));
    println!("chaos corrupt: overwrote 8 KiB of {size} bytes: {check:?}");
    assert!(
        !matches!(check.as_deref(), Ok("ok")),
        "the garbage missed the database's pages"
    );

    let (mut server_proc, _) = start_server_with(&data, port, &log, &[]).await;
    // The corrupt project: an error in the API's shape, for each kind of request.
    let requests = [
        ("GET", format!("/api/projects/{BAD}/runs?limit=50")),
        ("GET", format!("/api/projects/{BAD}/environments")),
        (
            "POST",
            format!("/api/projects/{BAD}/environments/production/runs"),
        ),
    ];
    let mut violations = Vec::new();
    for (method, path) in &requests {
        let url = format!("{}{path}", server.url);
        let answer = if *method == "GET" {
            http().get(url).send().await
        } else {
            let body = serde_json::json!({"module": "examples.semantics", "target": "effects",
                "arguments": ["y", 4, 0], "allow_unregistered": true});
            http().post(url).send_json(&body).await
        };
        let mut response = answer.expect("an answer");
        let status = response.status();
        let body = response.body().await.unwrap_or_default();
        let text = String::from_utf8_lossy(&body).to_string();
        println!("chaos corrupt: {method} {path} → {status} {text}");
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if !status.is_server_error() && !status.is_client_error() {
            violations.push(format!("{method} {path}: {status}"));
        }
        if !json["error"]["code"].is_string() || !json["error"]["message"].is_string() {
            violations.push(format!("{method} {path}: not the error shape: {text}"));
        }
        // A project whose database cannot be opened says so (503), naming only the project.
        if status != 503 || json["error"]["code"] != "project_unavailable" {
            violations.push(format!(
                "{method} {path}: expected 503 project_unavailable: {text}"
            ));
        }
        let lower = text.to_lowercase();
        for leak in ["sqlite", "select ", "insert ", "/tmp", "project.sqlite"] {
            if lower.contains(leak) {
                violations.push(format!("{method} {path}: the body shows {leak:?}: {text}"));
            }
        }
    }
    // The other project still serves requests and runs workflows.
    let mut agent = coflux_tests::example_module_agent(
        &server,
        GOOD,
        "examples.semantics",
        &["COFLUX_EXAMPLE_SEMANTICS=1", &effects_env],
        &["--concurrency", "8"],
    );
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let name = format!("g{i}");
        let run = submit(&server, GOOD, "examples.semantics", "effects", &name, 0)
            .await
            .expect("the healthy project accepts runs");
        acknowledged.push((run, name));
    }
    let values = await_values(&server, GOOD, &acknowledged).await;
    if let Some(status) = server_proc.wait_exit(Duration::from_millis(200)) {
        violations.push(format!("the server exited: {status}"));
    }
    let health = http()
        .get(format!("{}/api/health", server.url))
        .send()
        .await
        .map(|r| r.status());
    if !health.as_ref().is_ok_and(|s| s.is_success()) {
        violations.push(format!("the server's health: {health:?}"));
    }
    agent.terminate(Duration::from_secs(10));
    server_proc.terminate(Duration::from_secs(10));
    // The earlier runs of the healthy project never had an agent: only the new ones are checked.
    violations.extend(
        checker::check(GOOD, &data, &effects, &values, &log)
            .into_iter()
            .filter(|v| !v.contains("without a result") && !v.contains(":x")),
    );
    println!(
        "chaos corrupt: faults injected 1, runs checked {}, violations {}",
        values.len(),
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
}

//! `coflux queue`: what waits in an environment's queue and why, against a real server.

use std::time::{Duration, Instant};

use coflux_core::sdk::{Failure, Repository, workflow};
use serde_json::Value as Json;

use crate::support::{TestServer, greet, json_of, ok};

/// Sleeps a long time (holds its concurrency slot).
#[workflow(module = "demo")]
async fn slow() -> Result<(), Failure> {
    actix_rt::time::sleep(Duration::from_secs(60)).await;
    Ok(())
}

fn with<'a>(args: &[&'a str]) -> Vec<&'a str> {
    [&["-p", "demo", "-e", "production"][..], args].concat()
}

fn submit(server: &TestServer, args: &[&str]) -> String {
    let args = [&["submit", "--no-wait"][..], args].concat();
    ok(server.coflux(&with(&args))).trim().to_owned()
}

/// The reason each listed execution of these runs waits for, once all of them are listed.
fn reasons(server: &TestServer, runs: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let queue = json_of(server.coflux(&with(&["queue", "-o", "json"])));
        let listed: Vec<&Json> = queue["executions"].as_array().unwrap().iter().collect();
        let found: Vec<String> = runs
            .iter()
            .filter_map(|run| {
                let id = format!("{run}:1:1");
                listed
                    .iter()
                    .find(|e| e["execution_id"] == id.as_str())
                    .map(|e| e["reason"].as_str().unwrap().to_owned())
            })
            .collect();
        if found.len() == runs.len() || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_queue_says_why_each_execution_waits() {
    let server = TestServer::start_with("demo", |project| async move {
        project
            .create_environment("production", None)
            .await
            .unwrap();
        project
            .serve("production", Repository::new().with(greet).with(slow))
            .await
            .unwrap();
    });
    ok(server.coflux(&with(&["limits", "set", "demo/slow", "1"])));
    let running = submit(&server, &["demo/slow"]);
    let limited = submit(&server, &["demo/slow"]);
    let required = submit(
        &server,
        &["demo/greet", "\"x\"", "--requires", "region:mars"],
    );
    let delayed = submit(&server, &["demo/greet", "\"y\"", "--delay", "1h"]);
    let unhosted = submit(&server, &["demo/ghost", "--allow-unregistered"]);
    let runs = [&limited, &required, &delayed, &unhosted].map(String::as_str);
    assert_eq!(
        reasons(&server, &runs),
        [
            "concurrency_limit",
            "requires_not_provided",
            "delayed",
            "no_worker"
        ]
    );
    let all = json_of(server.coflux(&with(&["queue", "-o", "json"])));
    let running = format!("{running}:1:1");
    assert!(
        all["executions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["execution_id"] != running.as_str()),
        "a running execution is not queued: {all}"
    );

    let queue = json_of(server.coflux(&with(&["queue", "-o", "json", "--limit", "2"])));
    assert_eq!(queue["total"], 4);
    assert_eq!(queue["executions"].as_array().unwrap().len(), 2);
    assert_eq!(queue["executions"][0]["limit"], 1);
    let text = ok(server.coflux(&with(&["queue"])));
    assert!(text.starts_with("EXECUTION"), "{text}");
    for words in [
        "concurrency limit (1) reached",
        "no agent provides its requires",
        "delayed until",
        "no connected agent hosts it",
    ] {
        assert!(text.contains(words), "{words}: {text}");
    }

    ok(server.coflux(&["-p", "demo", "environments", "pause", "production"]));
    assert_eq!(
        reasons(&server, &runs),
        ["paused", "paused", "delayed", "paused"]
    );
}

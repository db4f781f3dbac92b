//! `coflux submit` with per-run overrides of the workflow's options (`--retries`, `--delay`,
//! `--requires`/`--no-requires`, `--memo`/`--no-memo`), against a real server on 127.0.0.1.

use std::time::{Duration, Instant};

use crate::support::{TestServer, json_of, ok, start_demo as start, stderr};

fn with<'a>(args: &[&'a str]) -> Vec<&'a str> {
    [&["-p", "demo", "-e", "production"][..], args].concat()
}

/// The number of attempts of the run's first step.
fn attempts(server: &TestServer, run: &str) -> usize {
    let view = json_of(server.coflux(&with(&["runs", "inspect", run, "-o", "json"])));
    view["steps"][0]["executions"].as_array().unwrap().len()
}

#[test]
fn retries_are_overridden_per_run() {
    let server = start();
    let failed = server.coflux(&with(&[
        "-o",
        "json",
        "submit",
        "demo/fail",
        "--retries",
        "2",
    ]));
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    let body: serde_json::Value = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(body["status"], "error");
    let run = body["run_id"].as_str().unwrap();
    assert_eq!(
        attempts(&server, run),
        3,
        "the first attempt and two retries"
    );

    let failed = server.coflux(&with(&["-o", "json", "submit", "demo/fail"]));
    let body: serde_json::Value = serde_json::from_slice(&failed.stdout).unwrap();
    let run = body["run_id"].as_str().unwrap();
    assert_eq!(
        attempts(&server, run),
        1,
        "the workflow itself has no retries"
    );
}

#[test]
fn a_delay_holds_the_first_attempt_back() {
    let server = start();
    let started = Instant::now();
    let out = ok(server.coflux(&with(&["submit", "demo/greet", "\"ada\"", "--delay", "2s"])));
    assert_eq!(out.trim(), "\"Hello, ada!\"");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "answered after {:?}",
        started.elapsed()
    );
    let bad = server.coflux(&with(&[
        "submit",
        "demo/greet",
        "\"ada\"",
        "--delay",
        "soon",
    ]));
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("--delay"), "{}", stderr(&bad));
}

#[test]
fn requires_that_no_agent_provides_keep_the_run_queued() {
    let server = start();
    let run = ok(server.coflux(&with(&[
        "submit",
        "demo/greet",
        "\"ada\"",
        "--no-wait",
        "--requires",
        "region:mars",
    ])));
    let run = run.trim();
    // The same workflow without the override finishes while this one waits.
    let out = ok(server.coflux(&with(&["submit", "demo/greet", "\"bob\"", "--no-requires"])));
    assert_eq!(out.trim(), "\"Hello, bob!\"");
    std::thread::sleep(Duration::from_millis(500));
    let result = json_of(server.coflux(&with(&["-o", "json", "runs", "result", run, "--no-wait"])));
    assert_eq!(result["status"], "pending", "{result}");
    let view = json_of(server.coflux(&with(&["runs", "inspect", run, "-o", "json"])));
    assert_eq!(view["steps"][0]["executions"][0]["state"], "queued");

    for bad in ["region", "region:", ":mars"] {
        let out = server.coflux(&with(&["submit", "demo/greet", "\"x\"", "--requires", bad]));
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert!(
            stderr(&out).contains(&format!("invalid --requires '{bad}'")),
            "{bad}: {}",
            stderr(&out)
        );
    }
    let both = server.coflux(&with(&[
        "submit",
        "demo/greet",
        "\"x\"",
        "--memo",
        "--no-memo",
    ]));
    assert_ne!(both.status.code(), Some(0), "--memo and --no-memo conflict");
    let memo = ok(server.coflux(&with(&["submit", "demo/greet", "\"m\"", "--no-memo"])));
    assert_eq!(memo.trim(), "\"Hello, m!\"");
}

//! `coflux runs result` as seen from an environment, and `coflux submit` of workflows nobody
//! registered, against a real server on 127.0.0.1.

use std::time::{Duration, Instant};

use coflux_core::sdk::{Failure, Repository, Target, current_execution, workflow};
use serde_json::json;

#[path = "support/server.rs"]
mod support;

use support::{TestServer, json_of, ok, stderr};

/// Tells which attempt it is.
#[workflow(module = "demo")]
async fn which() -> Result<String, Failure> {
    let attempt = current_execution().map_or(0, |e| e.attempt);
    Ok(format!("attempt {attempt}"))
}

/// Project `demo` with `production` and its child `child`, both serving `which`; `demo/offline`
/// is registered in production (its agent has gone).
fn start() -> TestServer {
    TestServer::start_with("demo", |project| async move {
        project
            .create_environment("production", None)
            .await
            .unwrap();
        project
            .create_environment("child", Some("production"))
            .await
            .unwrap();
        for env in ["production", "child"] {
            project
                .serve(env, Repository::new().with(which))
                .await
                .unwrap();
        }
        let mut offline = which.definition();
        offline.target.name = "offline".into();
        project
            .register_manifests("production", vec![offline])
            .await
            .unwrap();
    })
}

#[test]
fn results_follow_the_environment_they_are_seen_from() {
    let server = start();
    let submitted = json_of(server.coflux(&[
        "-p",
        "demo",
        "-e",
        "production",
        "-o",
        "json",
        "submit",
        "demo/which",
    ]));
    assert_eq!(submitted["value"], "attempt 1", "{submitted}");
    let run = submitted["run_id"].as_str().unwrap().to_owned();
    let step = format!("{run}:1");
    ok(server.coflux(&["-p", "demo", "-e", "child", "runs", "rerun", &step]));
    let seen = |env: Option<&str>, spec: &str| {
        let mut args = vec!["-p", "demo"];
        if let Some(env) = env {
            args.extend(["-e", env]);
        }
        args.extend(["runs", "result", spec]);
        ok(server.coflux(&args)).trim().to_owned()
    };
    assert_eq!(seen(Some("child"), &run), "\"attempt 2\"");
    let first = format!("{step}:1");
    let second = format!("{step}:2");
    for (env, spec, want) in [
        (None, &run, "attempt 1"),
        (Some("production"), &run, "attempt 1"),
        (None, &step, "attempt 1"),
        (Some("production"), &step, "attempt 1"),
        (Some("child"), &step, "attempt 2"),
        (None, &second, "attempt 2"),
        (Some("child"), &first, "attempt 1"),
    ] {
        assert_eq!(seen(env, spec), format!("\"{want}\""), "{env:?} {spec}");
    }
    let bad = server.coflux(&["-p", "demo", "runs", "result", &format!("{run}:x")]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("RUN:STEP:ATTEMPT"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn unregistered_workflows_are_refused_at_once_unless_allowed() {
    let server = start();
    let env = ["-p", "demo", "-e", "production"];
    let started = Instant::now();
    let refused = server.coflux(&[&env[..], &["submit", "demo/wich"]].concat());
    assert!(started.elapsed() < Duration::from_secs(10), "at once");
    assert_eq!(refused.status.code(), Some(1));
    let message = stderr(&refused);
    assert!(message.contains("(workflow_not_found)"), "{message}");
    assert!(
        message.contains("environment 'production'") && message.contains("'demo/which'"),
        "{message}"
    );

    let queued = ok(server.coflux(
        &[
            &env[..],
            &["submit", "demo/wich", "--allow-unregistered", "--no-wait"],
        ]
        .concat(),
    ));
    let run = queued.trim();
    let status = json_of(server.coflux(&[
        "-p",
        "demo",
        "runs",
        "result",
        run,
        "--no-wait",
        "-o",
        "json",
    ]));
    assert_eq!(status, json!({"run_id": run, "status": "pending"}));

    // Registered by an agent that has gone: accepted (and queued until one comes).
    let offline = ok(server.coflux(&[&env[..], &["submit", "demo/offline", "--no-wait"]].concat()));
    assert!(offline.trim().starts_with('R'), "{offline}");
}

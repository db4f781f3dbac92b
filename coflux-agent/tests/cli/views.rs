//! `coflux runs result` as seen from an environment, `coflux submit` of workflows nobody
//! registered, and `coflux runs list` with its filters and pages, against a real server on
//! 127.0.0.1.

use std::time::{Duration, Instant};

use coflux_core::sdk::{Failure, Repository, Target, current_execution, workflow};
use serde_json::json;

use crate::support::{TestServer, json_of, ok, stderr};

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

#[test]
fn runs_are_listed_with_filters_and_pages() {
    let server = start();
    let submit = |env: &str, target: &str| {
        let mut args = vec!["-p", "demo", "-e", env, "-o", "json", "submit", target];
        if target == "demo/nowhere" {
            args.extend(["--no-wait", "--allow-unregistered"]);
        }
        // Both the submission (--no-wait) and the final result name the run.
        json_of(server.coflux(&args))["run_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let done = [
        submit("production", "demo/which"),
        submit("child", "demo/which"),
        submit("production", "demo/which"),
    ];
    let waiting = submit("production", "demo/nowhere");

    let list = |extra: &[&str]| {
        let args = [&["-p", "demo", "-o", "json", "runs", "list"][..], extra].concat();
        json_of(server.coflux(&args))
    };
    let ids = |answer: &serde_json::Value| -> Vec<String> {
        answer["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["run_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = list(&[]);
    assert_eq!(
        ids(&all),
        [
            waiting.clone(),
            done[2].clone(),
            done[1].clone(),
            done[0].clone()
        ]
    );
    assert_eq!(
        ids(&list(&["--status", "value"])),
        [done[2].clone(), done[1].clone(), done[0].clone()]
    );
    assert_eq!(
        ids(&list(&["--status", "queued"])),
        std::slice::from_ref(&waiting)
    );
    assert_eq!(ids(&list(&["-e", "child"])), [done[1].clone()]);
    assert_eq!(
        ids(&list(&["--workflow", "demo/nowhere"])),
        std::slice::from_ref(&waiting)
    );
    assert_eq!(ids(&list(&["--since", "1h"])).len(), 4);
    assert_eq!(ids(&list(&["--until", "1h"])).len(), 0);

    // Pages of two: the text output names the next cursor; --all follows it.
    let first = list(&["--limit", "2"]);
    assert_eq!(ids(&first), ids(&all)[..2]);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = list(&["--limit", "2", "--cursor", &cursor]);
    assert_eq!(ids(&second), ids(&all)[2..]);
    assert_eq!(ids(&list(&["--limit", "1", "--all"])), ids(&all));
    let text = ok(server.coflux(&["-p", "demo", "runs", "list", "--limit", "2"]));
    assert!(
        text.lines().next().unwrap().starts_with("RUN") && text.contains("STATUS"),
        "{text}"
    );
    assert!(text.contains(&format!("more: --cursor {cursor}")), "{text}");
    let row = text.lines().find(|l| l.starts_with(&waiting)).unwrap();
    assert!(
        row.contains("queued") && row.contains("demo/nowhere"),
        "{row}"
    );

    // Bad filters are refused with the server's code, or before sending.
    let bad = server.coflux(&["-p", "demo", "runs", "list", "--status", "done"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("invalid_status"), "{}", stderr(&bad));
    let bad = server.coflux(&["-p", "demo", "runs", "list", "--cursor", "R1"]);
    assert!(stderr(&bad).contains("invalid_cursor"), "{}", stderr(&bad));
    let bad = server.coflux(&["-p", "demo", "runs", "list", "--since", "yesterday"]);
    assert!(stderr(&bad).contains("--since"), "{}", stderr(&bad));
}

#[test]
fn runs_delete_removes_a_finished_run_and_refuses_a_waiting_one() {
    let server = start();
    let env = ["-p", "demo", "-e", "production"];
    let submitted =
        json_of(server.coflux(&[&env[..], &["-o", "json", "submit", "demo/which"]].concat()));
    let finished = submitted["run_id"].as_str().unwrap().to_owned();
    let waiting = ok(server.coflux(&[&env[..], &["submit", "demo/offline", "--no-wait"]].concat()));
    let waiting = waiting.trim();

    let refused = server.coflux(&["-p", "demo", "runs", "delete", waiting]);
    assert_eq!(refused.status.code(), Some(1));
    let message = stderr(&refused);
    assert!(
        message.contains("(run_active)") && message.contains(waiting),
        "{message}"
    );

    let deleted = ok(server.coflux(&["-p", "demo", "runs", "delete", &finished]));
    assert_eq!(deleted.trim(), format!("run {finished} deleted"));
    let gone = server.coflux(&["-p", "demo", "runs", "inspect", &finished]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        stderr(&gone).contains("(run_not_found)"),
        "{}",
        stderr(&gone)
    );
    let again = server.coflux(&["-p", "demo", "runs", "delete", &finished]);
    assert!(
        stderr(&again).contains("(run_not_found)"),
        "{}",
        stderr(&again)
    );
}

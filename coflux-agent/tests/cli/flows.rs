//! The `coflux` binary against a real server on 127.0.0.1 (started in-process on its own
//! thread and actix system, with an in-process repository serving the `demo` module).

use serde_json::{Value as Json, json};

use crate::support::{coflux_at, json_of, ok, start_demo as start, stderr};

#[test]
fn projects_and_environments_are_created_and_listed() {
    let server = start();
    let out = ok(server.coflux(&["projects", "create", "acme"]));
    assert_eq!(out.trim(), "project 'acme' created");
    let list = ok(server.coflux(&["projects", "list"]));
    let names: Vec<&str> = list.lines().skip(1).map(str::trim).collect();
    assert_eq!(list.lines().next(), Some("NAME"));
    assert!(names.contains(&"acme") && names.contains(&"demo"), "{list}");
    let list = json_of(server.coflux(&["projects", "list", "-o", "json"]));
    assert!(
        list["projects"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "acme"}))
    );

    let out = ok(server.coflux(&["-p", "acme", "environments", "create", "production"]));
    assert_eq!(out.trim(), "environment 'production' created");
    let created = json_of(server.coflux(&[
        "environments",
        "create",
        "staging",
        "--parent",
        "production",
        "--project",
        "acme",
        "-o",
        "json",
    ]));
    assert_eq!(created["name"], "staging");
    assert_eq!(created["parent"], "production");
    assert_eq!(created["state"], "active");

    let paused = ok(server.coflux(&["-p", "acme", "environments", "pause", "staging"]));
    assert_eq!(
        paused.trim(),
        "environment 'staging' paused (parent 'production')"
    );
    let table = ok(server.coflux(&["-p", "acme", "envs", "list"]));
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0][..3], ["NAME", "STATE", "PARENT"]);
    assert_eq!(rows[1][..3], ["production", "active", "-"]);
    assert_eq!(rows[2][..3], ["staging", "paused", "production"]);
    let list = json_of(server.coflux(&["-p", "acme", "environments", "list", "-o", "json"]));
    assert_eq!(list["environments"].as_array().unwrap().len(), 2);

    let manifest = tempfile::NamedTempFile::new().unwrap();
    let definitions = json!([{
        "target": {"module": "app.flows", "name": "nightly"}, "kind": "workflow",
        "parameters": [{"name": "day", "annotation": "str", "default": null}],
        "options": {"retries": {"limit": 3, "backoff_min_ms": 0, "backoff_max_ms": 0}},
        "instruction": null,
    }]);
    std::fs::write(manifest.path(), definitions.to_string()).unwrap();
    let path = manifest.path().to_str().unwrap();
    let out = ok(server.coflux(&[
        "-p",
        "acme",
        "-e",
        "production",
        "manifests",
        "register",
        path,
    ]));
    assert_eq!(out.trim(), "registered 1 target in 'production'");
    let table = ok(server.coflux(&["-p", "acme", "-e", "production", "manifests", "inspect"]));
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["MODULE", "TARGET", "KIND", "PARAMETERS"],
            vec!["app.flows", "nightly", "workflow", "day"]
        ]
    );
    let inspected = json_of(server.coflux(&[
        "-p",
        "acme",
        "-e",
        "production",
        "manifests",
        "inspect",
        "-o",
        "json",
    ]));
    assert_eq!(inspected["targets"], definitions);
    let env = ["-p", "acme", "-e", "production"];
    let archived = ok(server.coflux(&[&env[..], &["manifests", "archive", "app.flows"]].concat()));
    assert_eq!(archived.trim(), "archived module app.flows in 'production'");
    let after =
        json_of(server.coflux(&[&env[..], &["manifests", "inspect", "-o", "json"]].concat()));
    assert_eq!(after["targets"], json!([]), "hidden once archived");
    let unknown = server.coflux(&[&env[..], &["manifests", "archive", "app.flows"]].concat());
    assert_eq!(unknown.status.code(), Some(1), "nothing left to archive");
    ok(server.coflux(&[&env[..], &["manifests", "register", path]].concat()));
    let again =
        json_of(server.coflux(&[&env[..], &["manifests", "inspect", "-o", "json"]].concat()));
    assert_eq!(again["targets"], definitions, "registered again");
    std::fs::write(manifest.path(), "[{\"target\": 1}]").unwrap();
    let invalid = server.coflux(&[
        "-p",
        "acme",
        "-e",
        "production",
        "manifests",
        "register",
        path,
    ]);
    assert_eq!(invalid.status.code(), Some(1));
    assert!(
        stderr(&invalid).starts_with(&format!("error: {path}: ")),
        "{}",
        stderr(&invalid)
    );

    let duplicate = server.coflux(&["-p", "acme", "environments", "create", "production"]);
    assert_eq!(duplicate.status.code(), Some(1));
    assert_eq!(
        stderr(&duplicate).trim(),
        "error: environment 'production' already exists (environment_exists)"
    );
}

#[test]
fn submissions_wait_for_results_and_runs_render() {
    let server = start();
    let with = |args: &[&'static str]| -> Vec<&'static str> {
        [&["-p", "demo", "-e", "production"][..], args].concat()
    };

    let out = ok(server.coflux(&with(&["submit", "demo/greet", "\"world\""])));
    assert_eq!(out.trim(), "\"Hello, world!\"");

    let result = json_of(server.coflux(&with(&["-o", "json", "submit", "demo/greet", "\"ada\""])));
    let run = result["run_id"].as_str().unwrap().to_owned();
    assert_eq!(
        result,
        json!({"run_id": run, "status": "value", "value": "Hello, ada!"})
    );

    let failed = server.coflux(&with(&["submit", "demo/fail"]));
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        stderr(&failed).contains("demo.Boom: it blew up"),
        "{}",
        stderr(&failed)
    );
    let failed = server.coflux(&with(&["submit", "demo/fail", "-o", "json"]));
    assert_eq!(failed.status.code(), Some(1));
    let body: Json = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(body["status"], "error");
    assert_eq!(body["error"]["type"], "demo.Boom");

    let tree = ok(server.coflux(&["-p", "demo", "-e", "production", "runs", "inspect", &run]));
    let mut lines = tree.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with(&format!("run {run} in production: demo/greet"))
    );
    let step = lines.next().unwrap();
    assert!(
        step.starts_with(&format!(
            "└─ {run}:1 demo/greet(\"ada\")  ✓ \"Hello, ada!\""
        )),
        "{tree}"
    );
    let view = json_of(server.coflux(&["-p", "demo", "runs", "inspect", &run, "-o", "json"]));
    assert_eq!(view["steps"][0]["executions"][0]["state"], "value");

    let watched = ok(server.coflux(&["-p", "demo", "runs", "watch", &run]));
    assert_eq!(watched, tree, "a finished run is drawn once");

    let value = ok(server.coflux(&["-p", "demo", "runs", "result", &run]));
    assert_eq!(value.trim(), "\"Hello, ada!\"");
    let rerun = ok(server.coflux(&["-p", "demo", "runs", "rerun", &format!("{run}:1")]));
    assert_eq!(
        rerun.trim(),
        format!("re-running step {run}:1: execution {run}:1:2 (attempt 2)")
    );

    let logs = ok(server.coflux(&["-p", "demo", "logs", &run]));
    assert_eq!(logs, "", "in-process targets log nothing");
    let logs = json_of(server.coflux(&["-p", "demo", "logs", &run, "-o", "json"]));
    assert_eq!(logs["logs"], json!([]));
    let followed = ok(server.coflux(&["-p", "demo", "logs", &run, "--follow"]));
    assert_eq!(followed, "", "following a finished run stops by itself");

    let listed = ok(server.coflux(&["-p", "demo", "runs", "list"]));
    assert!(
        listed.contains(&run) && listed.contains("demo/greet"),
        "{listed}"
    );

    // Without an agent for the environment (allowed explicitly), a run stays pending.
    ok(server.coflux(&["-p", "demo", "environments", "create", "idle"]));
    let pending = ok(server.coflux(&[
        "-p",
        "demo",
        "-e",
        "idle",
        "submit",
        "demo/greet",
        "\"x\"",
        "--no-wait",
        "--allow-unregistered",
    ]));
    let pending_run = pending.trim().to_owned();
    assert!(pending_run.starts_with('R'), "{pending}");
    let tree = ok(server.coflux(&["-p", "demo", "runs", "inspect", &pending_run]));
    assert!(tree.contains("○ queued"), "{tree}");
    let status = json_of(server.coflux(&[
        "-p",
        "demo",
        "runs",
        "result",
        &pending_run,
        "--no-wait",
        "-o",
        "json",
    ]));
    assert_eq!(status["status"], "pending");
    let submitted = json_of(server.coflux(&[
        "-p",
        "demo",
        "-e",
        "idle",
        "-o",
        "json",
        "submit",
        "demo/greet",
        "\"y\"",
        "--no-wait",
        "--allow-unregistered",
    ]));
    assert!(
        submitted["execution_id"]
            .as_str()
            .unwrap()
            .ends_with(":1:1"),
        "{submitted}"
    );
    let cancel = ok(server.coflux(&[
        "-p",
        "demo",
        "runs",
        "cancel",
        &format!("{pending_run}:1:1"),
    ]));
    assert_eq!(
        cancel.trim(),
        format!("cancellation of {pending_run}:1:1 requested")
    );
    let cancelled = server.coflux(&["-p", "demo", "runs", "result", &pending_run]);
    assert_eq!(cancelled.status.code(), Some(1));
    assert!(
        stderr(&cancelled).contains("cancelled"),
        "{}",
        stderr(&cancelled)
    );
}

#[test]
fn errors_are_reported_with_codes_and_exit_status() {
    let server = start();
    let bad = server.coflux(&["--project", "Bad Name", "environments", "list"]);
    assert_eq!(bad.status.code(), Some(1));
    let message = stderr(&bad);
    assert!(message.starts_with("error: "), "{message}");
    assert!(
        message.contains("invalid project name 'Bad Name'"),
        "{message}"
    );
    assert!(message.trim_end().ends_with("(invalid_input)"), "{message}");

    let missing = server.coflux(&["--project", "ghost", "runs", "list"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        stderr(&missing).trim(),
        "error: project 'ghost' not found (project_not_found)"
    );

    let no_project = server.coflux(&["environments", "list"]);
    assert_eq!(no_project.status.code(), Some(1));
    assert!(
        stderr(&no_project).contains("--project"),
        "{}",
        stderr(&no_project)
    );

    let bad_arg = server.coflux(&[
        "-p",
        "demo",
        "-e",
        "production",
        "submit",
        "demo/greet",
        "world",
    ]);
    assert_eq!(bad_arg.status.code(), Some(1));
    assert!(stderr(&bad_arg).contains("argument 1 is not valid JSON"));

    let bad_id = server.coflux(&["-p", "demo", "runs", "inspect", "nope"]);
    assert_eq!(bad_id.status.code(), Some(1));
    assert!(
        stderr(&bad_id).contains("(invalid_id)"),
        "{}",
        stderr(&bad_id)
    );

    let usage = server.coflux(&["runs"]);
    assert_eq!(
        usage.status.code(),
        Some(2),
        "clap usage errors exit with 2"
    );
}

#[test]
fn an_unreachable_server_is_named() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = coflux_at(&url, &["projects", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let message = stderr(&out);
    assert!(
        message.starts_with(&format!(
            "error: could not connect to the Coflux server at {url}"
        )),
        "{message}"
    );
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["projects", "--help"],
        vec!["environments", "create", "--help"],
        vec!["manifests", "register", "--help"],
        vec!["submit", "--help"],
        vec!["runs", "watch", "--help"],
        vec!["logs", "--help"],
        vec!["limits", "set", "--help"],
        vec!["schedules", "create", "--help"],
        vec!["manifests", "archive", "--help"],
    ] {
        let out = ok(coflux_at("http://127.0.0.1:1", &args));
        assert!(out.contains("Usage: coflux"), "{args:?}: {out}");
    }
    let help = ok(coflux_at("http://127.0.0.1:1", &["runs", "--help"]));
    assert!(
        help.contains("Redraw a run's tree until the run finishes"),
        "{help}"
    );
}

#[test]
fn concurrency_limits_are_set_listed_and_cleared() {
    let server = start();
    let env = ["-p", "demo", "-e", "production"];
    let set = ok(server.coflux(&[&env[..], &["limits", "set", "app.flows/fetch", "2"]].concat()));
    assert_eq!(
        set.trim(),
        "at most 2 of app.flows/fetch run at once in 'production'"
    );
    let table = ok(server.coflux(&[&env[..], &["limits", "list"]].concat()));
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["MODULE", "TARGET", "MAX"],
            vec!["app.flows", "fetch", "2"]
        ]
    );
    let zero = server.coflux(&[&env[..], &["limits", "set", "app.flows/fetch", "0"]].concat());
    assert_eq!(zero.status.code(), Some(2), "a limit of 0 is a usage error");
    let bad = server.coflux(&[&env[..], &["limits", "set", "fetch", "2"]].concat());
    assert_ne!(bad.status.code(), Some(0), "MODULE/TARGET is required");
    ok(server.coflux(&[&env[..], &["limits", "clear", "app.flows/fetch"]].concat()));
    let list = json_of(server.coflux(&[&env[..], &["limits", "list", "-o", "json"]].concat()));
    assert_eq!(list["limits"], json!([]));
    let missing = server.coflux(&["-p", "demo", "-e", "nowhere", "limits", "list"]);
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn schedules_start_runs_on_their_ticks_until_removed() {
    let server = start();
    let env = ["-p", "demo", "-e", "production"];
    let bad = server.coflux(
        &[
            &env[..],
            &["schedules", "create", "demo/greet", "61 * * * *"],
        ]
        .concat(),
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("invalid cron expression"),
        "{}",
        stderr(&bad)
    );
    let created = json_of(
        server.coflux(
            &[
                &env[..],
                &[
                    "schedules",
                    "create",
                    "demo/greet",
                    "* * * * * *",
                    "\"cron\"",
                    "-o",
                    "json",
                ],
            ]
            .concat(),
        ),
    );
    let id = created["id"].as_u64().unwrap().to_string();
    assert_eq!(created["cron"], "* * * * * *");
    // Every second: a few runs of demo/greet("cron") appear.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let runs = loop {
        let runs = json_of(server.coflux(&["-p", "demo", "runs", "list", "-o", "json"]));
        let count = runs["runs"].as_array().map_or(0, Vec::len);
        if count >= 2 {
            break runs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scheduled runs: {runs}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let first = runs["runs"][0]["run_id"].as_str().unwrap().to_string();
    let result = json_of(server.coflux(&["-p", "demo", "runs", "result", &first, "-o", "json"]));
    assert_eq!(result["value"], "Hello, cron!", "{result}");
    let table = ok(server.coflux(&["-p", "demo", "schedules", "list"]));
    assert!(
        table.contains("demo/greet") && table.contains("* * * * * *"),
        "{table}"
    );
    ok(server.coflux(&["-p", "demo", "schedules", "delete", &id]));
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    let before = json_of(server.coflux(&["-p", "demo", "runs", "list", "-o", "json"]))["runs"]
        .as_array()
        .map_or(0, Vec::len);
    std::thread::sleep(std::time::Duration::from_millis(2_000));
    let after = json_of(server.coflux(&["-p", "demo", "runs", "list", "-o", "json"]))["runs"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(before, after, "no runs once removed");
    let gone = server.coflux(&["-p", "demo", "schedules", "delete", &id]);
    assert_eq!(gone.status.code(), Some(1));
}

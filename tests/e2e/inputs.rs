//! Inputs through the real coflux 0.12.0 SDK and the `coflux inputs` CLI: a workflow asks, a
//! person answers through the CLI and the workflow returns the answer; an input handle in
//! `cf.select` and cancelled; a dismissal raises
//! `InputDismissed` in the workflow; a workflow waiting for an input is suspended (its
//! process ends, an agent with `--concurrency 1` runs other work meanwhile) and runs again once
//! the input is answered or dismissed, also after a `kill -9` of the server.

use std::time::Duration;

use coflux_tests::{Server, bin, eventually, python_agent_for};
use serde_json::{Value as Json, json};

const P: &str = "acme";

async fn start_on(dir: &std::path::Path, port: u16) -> (Server, coflux_tests::Proc) {
    let server = Server::start_on(dir, port, &[]).await;
    server.setup(P, "production", None).await;
    let agent = python_agent_for("input_flows", &server.url, P, "production", "a", &[]);
    server.wait_registered(P, "production", "ask").await;
    (server, agent)
}

/// Runs `coflux ARGS...` against the server; its stdout, or a panic with its stderr.
fn cli(server: &Server, args: &[&str]) -> String {
    let output = std::process::Command::new(bin("coflux"))
        .args(["--server", &server.url, "-p", P])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "coflux {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Waits until the run has a pending input; gives it as the CLI lists it (JSON).
async fn pending_input(server: &Server, run: &str) -> Json {
    eventually(Duration::from_secs(60), "a pending input", || async move {
        let list: Json =
            serde_json::from_str(&cli(server, &["-o", "json", "inputs", "list"])).ok()?;
        list["inputs"]
            .as_array()?
            .iter()
            .find(|i| i["run_id"] == run)
            .cloned()
    })
    .await
}

/// The run's first step's executions, as `runs inspect -o json` lists them.
fn executions(server: &Server, run: &str) -> Vec<Json> {
    let tree: Json =
        serde_json::from_str(&cli(server, &["-o", "json", "runs", "inspect", run])).unwrap();
    tree["steps"][0]["executions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until the run's workflow has suspended waiting for `input`: its first execution
/// ended as `suspended` and the next one waits for the input.
async fn suspended_on(server: &Server, run: &str, input: &str) {
    eventually(
        Duration::from_secs(60),
        "the asking execution suspended",
        || {
            let executions = executions(server, run);
            async move {
                let [first, next] = &executions[..] else {
                    return None;
                };
                (first["state"] == "suspended"
                    && next["state"] == "queued"
                    && next["waits_for_inputs"] == json!([input]))
                .then_some(())
            }
        },
    )
    .await
}

/// Asserts that the run's workflow was resumed once: its second execution gave the result.
fn resumed_once(server: &Server, run: &str) {
    let executions = executions(server, run);
    let states: Vec<&Json> = executions.iter().map(|e| &e["state"]).collect();
    assert_eq!(
        states,
        [&json!("suspended"), &json!("value")],
        "{executions:?}"
    );
}

#[actix_rt::test]
async fn inputs_are_answered_or_dismissed_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start_on(dir.path(), coflux_tests::free_port()).await;

    let run = server
        .submit(P, "production", "input_flows", "ask", json!(["api"]))
        .await;
    let input = pending_input(&server, &run).await;
    let id = input["id"].as_str().unwrap().to_string();
    // Answered only once the asking execution has suspended, so the answer resumes the run
    // (an answer that comes first reaches the waiting execution directly).
    suspended_on(&server, &run, &id).await;
    assert_eq!(input["title"], "Approve deployment", "{input}");
    assert_eq!(input["template"], "Deploy {service} to production?");
    assert_eq!(input["actions"], json!(["Deploy", "Cancel"]));
    assert_eq!(input["schema"]["required"], json!(["approved"]));
    let shown = cli(&server, &["inputs", "inspect", &id]);
    assert!(
        shown.contains("(pending)") && shown.contains("Deploy {service}"),
        "{shown}"
    );
    // The run's tree lists the input under the step that asked.
    let tree = cli(&server, &["runs", "inspect", &run]);
    assert!(
        tree.contains(&format!("input {id} \"Approve deployment\": pending")),
        "{tree}"
    );

    // An answer that does not match the schema is refused with a clear error.
    let wrong = std::process::Command::new(bin("coflux"))
        .args([
            "--server",
            &server.url,
            "-p",
            P,
            "inputs",
            "respond",
            &id,
            r#"{"note": "x"}"#,
        ])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    let message = String::from_utf8_lossy(&wrong.stderr);
    assert!(message.contains("'approved'"), "{message}");

    // Bad ids and answers that are not JSON get a clear error.
    for (args, expected) in [
        (vec!["inputs", "inspect", "nope"], "is not an input id"),
        (vec!["inputs", "inspect", "R1:I99"], "not found"),
        (
            vec!["inputs", "respond", id.as_str(), "{not json"],
            "must be JSON",
        ),
    ] {
        let output = std::process::Command::new(bin("coflux"))
            .args(["--server", &server.url, "-p", P])
            .args(&args)
            .output()
            .unwrap();
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && message.contains(expected),
            "{args:?}: {message}"
        );
    }
    cli(
        &server,
        &[
            "inputs",
            "respond",
            &id,
            r#"{"approved": true, "note": "go"}"#,
        ],
    );
    let result = server.result(P, &run, 60).await;
    assert_eq!(
        result["value"],
        json!({"approved": true, "note": "go"}),
        "{result}"
    );
    resumed_once(&server, &run);
    let tree: Json =
        serde_json::from_str(&cli(&server, &["-o", "json", "runs", "inspect", &run])).unwrap();
    assert_eq!(
        tree["steps"][0]["inputs"],
        json!([{"input_id": id, "execution_id": format!("{run}:1:1"),
                "title": "Approve deployment", "state": "responded"}]),
        "{tree}"
    );
    // Answered inputs leave the pending list, and are not answered twice.
    let list = cli(&server, &["inputs", "list"]);
    assert!(!list.contains(&id), "{list}");
    let again = std::process::Command::new(bin("coflux"))
        .args(["--server", &server.url, "-p", P, "inputs", "dismiss", &id])
        .output()
        .unwrap();
    assert!(!again.status.success());

    // A primitive model: the answer is a plain string.
    let run = server
        .submit(P, "production", "input_flows", "ask_name", json!([]))
        .await;
    let input = pending_input(&server, &run).await;
    cli(
        &server,
        &[
            "inputs",
            "respond",
            input["id"].as_str().unwrap(),
            r#""Ada""#,
        ],
    );
    assert_eq!(server.result(P, &run, 60).await["value"], "Ada");

    // An input handle in `cf.select` (a task wins), then cancelled: its waiter gets
    // `ExecutionCancelled` and it leaves the pending list.
    let run = server
        .submit(P, "production", "input_flows", "race_and_cancel", json!([]))
        .await;
    let result = server.result(P, &run, 60).await;
    assert_eq!(result["value"], json!([7, "cancelled"]), "{result}");
    let list = cli(&server, &["inputs", "list"]);
    assert!(!list.contains(&run), "{list}");

    // A dismissal raises `InputDismissed` in the workflow.
    let run = server
        .submit(
            P,
            "production",
            "input_flows",
            "ask_or_dismissed",
            json!(["db"]),
        )
        .await;
    let input = pending_input(&server, &run).await;
    let id = input["id"].as_str().unwrap();
    suspended_on(&server, &run, id).await;
    cli(&server, &["inputs", "dismiss", id]);
    let result = server.result(P, &run, 60).await;
    assert_eq!(result["value"], "dismissed", "{result}");
    resumed_once(&server, &run);
}

#[actix_rt::test]
async fn a_pending_input_survives_a_server_killed_and_can_still_be_answered() {
    let dir = tempfile::tempdir().unwrap();
    let port = coflux_tests::free_port();
    let (mut server, _agent) = start_on(dir.path(), port).await;
    let run = server
        .submit(P, "production", "input_flows", "ask", json!(["web"]))
        .await;
    let input = pending_input(&server, &run).await;
    let id = input["id"].as_str().unwrap().to_string();
    // Killed while the workflow is suspended: its step is held by the stored input only.
    suspended_on(&server, &run, &id).await;
    server.proc.kill9();
    let server = Server::start_on(dir.path(), port, &[]).await;
    let again = pending_input(&server, &run).await;
    assert_eq!(again["id"], id.as_str());
    cli(
        &server,
        &["inputs", "respond", &id, r#"{"approved": false}"#],
    );
    let result = server.result(P, &run, 90).await;
    assert_eq!(result["value"], json!({"approved": false}), "{result}");
    resumed_once(&server, &run);
}

#[actix_rt::test]
async fn a_workflow_waiting_for_an_input_is_suspended_and_frees_its_agents_only_slot() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_on(dir.path(), coflux_tests::free_port(), &[]).await;
    server.setup(P, "production", None).await;
    let _agent = python_agent_for(
        "input_flows",
        &server.url,
        P,
        "production",
        "single",
        &["--concurrency", "1"],
    );
    server.wait_registered(P, "production", "meanwhile").await;
    let asking = server
        .submit(P, "production", "input_flows", "ask", json!(["api"]))
        .await;
    let input = pending_input(&server, &asking).await;
    // The asking workflow leaves its process: its step is held until the input is answered.
    suspended_on(&server, &asking, input["id"].as_str().unwrap()).await;
    // While the prompt waits, the agent (one slot) runs another workflow and its task.
    let other = server
        .submit(P, "production", "input_flows", "meanwhile", json!([]))
        .await;
    let result = server.result(P, &other, 60).await;
    assert_eq!(result["value"], 7, "{result}");
    let still = cli(&server, &["-o", "json", "inputs", "list"]);
    assert!(still.contains(input["id"].as_str().unwrap()), "{still}");
    cli(
        &server,
        &[
            "inputs",
            "respond",
            input["id"].as_str().unwrap(),
            r#"{"approved": true}"#,
        ],
    );
    let answered = server.result(P, &asking, 60).await;
    assert_eq!(answered["value"], json!({"approved": true}), "{answered}");
    resumed_once(&server, &asking);
}

//! Parity with coflux 0.12.0 through the real Python SDK: `cf.Checkpoint` state read back by
//! retries and recurrences (and shown in the run's view), `cf.flush()`, and executors that die
//! ending as crashed (`cf.ExecutionCrashed` to the caller; retried when the policy allows);
//! and the behaviours Coflux's own suite checks: suspending twice, a recurrent target stopping
//! on an error, `poll(timeout)` returning a value, two `wait_for` arguments, a workflow's delay
//! from its manifest, `Retries(when=)` retrying a matching error, a workflow returning `None`,
//! and re-running a step in a child environment.

use std::time::Duration;

use coflux_tests::{Proc, Server, get, post, python_agent_for, step_states};
use serde_json::{Value as Json, json};

const P: &str = "acme";

async fn start(dir: &std::path::Path) -> (Server, Proc) {
    let server = Server::start(dir).await;
    server.setup(P, "production", None).await;
    let agent = python_agent_for(
        "parity_flows",
        &server.url,
        P,
        "production",
        "a",
        &["--concurrency", "4"],
    );
    server.wait_registered(P, "production", "retrying").await;
    (server, agent)
}

async fn run_flow(server: &Server, target: &str, arguments: Json) -> String {
    server
        .submit(P, "production", "parity_flows", target, arguments)
        .await
}

fn step<'a>(view: &'a Json, target: &str) -> &'a Json {
    view["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["target"] == target)
        .unwrap_or_else(|| panic!("no step of {target}: {view}"))
}

fn states(step: &Json) -> Vec<String> {
    step["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[actix_rt::test]
async fn parity_a_retry_reads_the_checkpoint_its_failed_attempt_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = run_flow(&server, "retrying", json!([3])).await;
    let result = server.result(P, &run, 60).await;
    assert_eq!(result["value"], 3, "{result}");
    let view = server.inspect(P, &run).await;
    let task = step(&view, "resumable");
    assert_eq!(
        states(task),
        vec!["error", "error", "value"],
        "{:?}",
        step_states(&view)
    );
    // The run's view shows the step's checkpoint state, per environment.
    assert_eq!(task["checkpoints"]["production"]["cursor"], 3, "{task}");
}

#[actix_rt::test]
async fn parity_a_recurrent_workflow_accumulates_through_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = run_flow(&server, "accumulate", json!([3])).await;
    assert_eq!(server.result(P, &run, 60).await["value"], 3);
    let view = server.inspect(P, &run).await;
    let flow = step(&view, "accumulate");
    assert_eq!(states(flow), vec!["recurred", "recurred", "value"]);
    assert_eq!(flow["checkpoints"]["production"]["total"], 3, "{flow}");
}

#[actix_rt::test]
async fn parity_a_dead_executor_reaches_its_caller_as_execution_crashed() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = run_flow(&server, "survives_crash", json!([])).await;
    assert_eq!(server.result(P, &run, 60).await["value"], "crashed");
    let view = server.inspect(P, &run).await;
    assert_eq!(states(step(&view, "dies")), vec!["crashed"]);
}

#[actix_rt::test]
async fn parity_a_crash_is_retried_and_the_retry_sees_the_flushed_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = run_flow(&server, "recovers", json!([])).await;
    assert_eq!(server.result(P, &run, 60).await["value"], "recovered");
    let view = server.inspect(P, &run).await;
    let task = step(&view, "crash_once");
    assert_eq!(states(task), vec!["crashed", "value"]);
    assert_eq!(task["checkpoints"]["production"]["crashed_before"], true);
}

/// The execution of `target`'s step at `index` (its attempts in order).
fn execution<'a>(view: &'a Json, target: &str, index: usize) -> &'a Json {
    &step(view, target)["executions"][index]
}

fn millis(execution: &Json, field: &str) -> i64 {
    execution[field]
        .as_i64()
        .unwrap_or_else(|| panic!("no {field}: {execution}"))
}

#[actix_rt::test]
async fn parity_a_workflow_suspends_twice_then_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let counter = dir.path().join("suspensions").display().to_string();
    let run = run_flow(&server, "suspend_twice", json!([counter])).await;
    assert_eq!(server.result(P, &run, 60).await["value"], 3);
    let view = server.inspect(P, &run).await;
    assert_eq!(
        states(step(&view, "suspend_twice")),
        vec!["suspended", "suspended", "value"]
    );
}

#[actix_rt::test]
async fn parity_a_recurrent_workflow_stops_on_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let counter = dir.path().join("occurrences").display().to_string();
    let run = run_flow(&server, "recur_until_error", json!([counter])).await;
    let result = server.result(P, &run, 60).await;
    assert_eq!(result["status"], "error", "{result}");
    assert!(
        result["error"].to_string().contains("second occurrence"),
        "{result}"
    );
    // No occurrence follows the error.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let view = server.inspect(P, &run).await;
    assert_eq!(
        states(step(&view, "recur_until_error")),
        vec!["recurred", "error"]
    );
}

#[actix_rt::test]
async fn parity_poll_with_a_timeout_returns_the_value_ready_within_it() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = run_flow(&server, "polls_within_timeout", json!([])).await;
    let result = server.result(P, &run, 60).await;
    assert_eq!(result["value"], 70, "{result}");
}

#[actix_rt::test]
async fn parity_a_task_waits_for_both_of_its_wait_for_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = run_flow(&server, "waits_for_two", json!([])).await;
    assert_eq!(server.result(P, &run, 60).await["value"], 30);
    let view = server.inspect(P, &run).await;
    let joined = execution(&view, "joined", 0);
    let inputs: Vec<&Json> = view["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["target"] == "tens")
        .map(|s| &s["executions"][0])
        .collect();
    assert_eq!(inputs.len(), 2, "{view}");
    for input in inputs {
        assert!(
            millis(joined, "assigned_at") >= millis(input, "finished_at"),
            "joined ran before both of its arguments finished: {view}"
        );
    }
}

#[actix_rt::test]
async fn parity_a_workflow_starts_after_the_delay_of_its_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = run_flow(&server, "delayed", json!([])).await;
    assert_eq!(server.result(P, &run, 60).await["value"], "late");
    let view = server.inspect(P, &run).await;
    let first = execution(&view, "delayed", 0);
    let waited = millis(first, "assigned_at") - millis(first, "created_at");
    assert!(
        waited >= 950,
        "assigned {waited} ms after submission: {first}"
    );
}

#[actix_rt::test]
async fn parity_an_error_matching_retries_when_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let marker = dir.path().join("attempts").display().to_string();
    let run = run_flow(&server, "retried_when_matching", json!([marker])).await;
    assert_eq!(server.result(P, &run, 60).await["value"], "retried");
    let view = server.inspect(P, &run).await;
    assert_eq!(states(step(&view, "fails_once")), vec!["error", "value"]);
}

#[actix_rt::test]
async fn parity_a_workflow_returning_none_has_a_null_value() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = run_flow(&server, "returns_none", json!([])).await;
    let result = server.result(P, &run, 60).await;
    assert_eq!(
        result,
        json!({"run_id": run, "status": "value", "value": null})
    );
}

#[actix_rt::test]
async fn parity_a_step_re_run_in_a_child_environment_is_seen_from_that_child_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.setup(P, "production", None).await;
    post(
        &server.url,
        &format!("/api/projects/{P}/environments"),
        json!({"name": "staging", "parent": "production"}),
    )
    .await;
    let _production = python_agent_for("parity_flows", &server.url, P, "production", "prod", &[]);
    let _staging = python_agent_for("parity_flows", &server.url, P, "staging", "stage", &[]);
    server.wait_registered(P, "production", "agent_name").await;
    server.wait_registered(P, "staging", "agent_name").await;
    let run = run_flow(&server, "agent_name", json!([])).await;
    assert_eq!(server.result(P, &run, 60).await["value"], "prod");

    let rerun = post(
        &server.url,
        &format!("/api/projects/{P}/steps/{run}:1/rerun"),
        json!({"environment": "staging"}),
    )
    .await;
    assert_eq!(rerun["attempt"], 2, "{rerun}");
    let seen = |env: &'static str| {
        let path = format!("/api/projects/{P}/runs/{run}/result?wait=60&environment={env}");
        let url = server.url.clone();
        async move { get(&url, &path).await }
    };
    assert_eq!(seen("staging").await["value"], "stage");
    assert_eq!(seen("production").await["value"], "prod");
    let from_staging = get(
        &server.url,
        &format!("/api/projects/{P}/runs/{run}?environment=staging"),
    )
    .await;
    let attempts = &step(&from_staging, "agent_name")["executions"];
    assert_eq!(attempts[1]["environment"], "staging", "{from_staging}");
    let from_production = get(
        &server.url,
        &format!("/api/projects/{P}/runs/{run}?environment=production"),
    )
    .await;
    assert_eq!(
        states(step(&from_production, "agent_name")),
        vec!["value"],
        "production does not see the child's re-run"
    );
}

#[actix_rt::test]
async fn parity_a_checkpoint_is_read_back_after_suspensions_and_by_a_re_run() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = run_flow(&server, "counts_visits", json!([])).await;
    assert_eq!(server.result(P, &run, 60).await["value"], 3);
    let view = server.inspect(P, &run).await;
    assert_eq!(
        states(step(&view, "counts_visits")),
        vec!["suspended", "suspended", "value"]
    );
    // A manual re-run of the step starts from the state its attempts left.
    let rerun = post(
        &server.url,
        &format!("/api/projects/{P}/steps/{run}:1/rerun"),
        json!({}),
    )
    .await;
    assert_eq!(rerun["attempt"], 4, "{rerun}");
    assert_eq!(server.result(P, &run, 60).await["value"], 4);
    let view = server.inspect(P, &run).await;
    let workflow = step(&view, "counts_visits");
    assert_eq!(
        workflow["checkpoints"]["production"]["visits"], 4,
        "{workflow}"
    );
}

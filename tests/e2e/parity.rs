//! Parity with coflux 0.12.0 through the real Python SDK: `cf.Checkpoint` state read back by
//! retries and recurrences (and shown in the run's view), `cf.flush()`, and executors that die
//! ending as crashed (`cf.ExecutionCrashed` to the caller; retried when the policy allows).

use coflux_tests::{Proc, Server, python_agent_for, step_states};
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

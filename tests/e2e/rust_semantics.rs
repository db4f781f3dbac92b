//! Orchestration semantics end to end through the Rust SDK under a real `coflux-server` and
//! `coflux-agent` (the example repository with its `examples.semantics` targets): suspension,
//! workflows calling workflows, recurrence (also accumulating through a `Checkpoint`), `wait_for`,
//! defer and run-level memo.

use coflux_tests::{Proc, Server, example_module_agent};
use serde_json::{Value as Json, json};

const P: &str = "acme";
const M: &str = "examples.semantics";

async fn start(dir: &std::path::Path) -> (Server, Proc) {
    let server = Server::start(dir).await;
    server.setup(P, "production", None).await;
    let agent = example_module_agent(
        &server,
        P,
        M,
        &["COFLUX_EXAMPLE_SEMANTICS=1"],
        &["--register", "--concurrency", "4"],
    );
    server
        .wait_registered(P, "production", "suspends_once")
        .await;
    (server, agent)
}

fn executions<'a>(view: &'a Json, target: &str) -> Vec<&'a Json> {
    view["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["target"] == target)
        .flat_map(|s| s["executions"].as_array().unwrap().iter())
        .collect()
}

/// The (first) step of `target` in a run's view.
fn step_of<'a>(view: &'a Json, target: &str) -> &'a Json {
    view["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["target"] == target)
        .unwrap_or_else(|| panic!("no step of {target}: {view}"))
}

fn states(view: &Json, target: &str) -> Vec<String> {
    executions(view, target)
        .iter()
        .map(|e| e["state"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[actix_rt::test]
async fn rust_suspend_resumes_the_step_without_repeating_its_child() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = server
        .submit(P, "production", M, "suspends_once", json!([41]))
        .await;
    let result = server.result(P, &run, 60).await;
    assert_eq!(result["value"], "42 on attempt 2", "{result}");
    let view = server.inspect(P, &run).await;
    assert_eq!(
        states(&view, "suspends_once"),
        ["suspended", "value"],
        "{view}"
    );
    let attempts = executions(&view, "suspends_once");
    let resumed_after =
        attempts[1]["assigned_at"].as_i64().unwrap() - attempts[0]["finished_at"].as_i64().unwrap();
    assert!(resumed_after >= 250, "resumed {resumed_after} ms later");
    assert_eq!(executions(&view, "plus_one").len(), 1, "{view}");
}

#[actix_rt::test]
async fn rust_workflow_calling_a_workflow_spawns_a_linked_run() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = server.submit(P, "production", M, "outer", json!([4])).await;
    assert_eq!(server.result(P, &run, 60).await["value"], 10);
    let view = server.inspect(P, &run).await;
    assert!(executions(&view, "inner").is_empty(), "{view}");
    let spawned = &view["spawned"][0];
    let child_run = spawned["run_id"].as_str().expect("a spawned run");
    assert_ne!(child_run, run);
    let child = server.inspect(P, child_run).await;
    assert_eq!(child["parent"], spawned["parent"]);
    assert_eq!(child["steps"][0]["target"], "inner");
}

#[actix_rt::test]
async fn rust_recurrence_wait_for_defer_and_memo() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let counter = dir.path().join("counter");
    let countdown = server
        .submit(
            P,
            "production",
            M,
            "countdown",
            json!([counter.display().to_string()]),
        )
        .await;
    let waits = server.submit(P, "production", M, "waits", json!([])).await;
    let debounce = server
        .submit(P, "production", M, "debounce", json!([]))
        .await;
    let memo = server
        .submit(P, "production", M, "memo_run", json!([]))
        .await;

    assert_eq!(server.result(P, &countdown, 60).await["value"], 3);
    let view = server.inspect(P, &countdown).await;
    assert_eq!(
        states(&view, "countdown"),
        ["recurred", "recurred", "value"]
    );

    assert_eq!(server.result(P, &waits, 60).await["value"], 41);
    let view = server.inspect(P, &waits).await;
    let upstream = executions(&view, "slow_value")[0];
    let held = executions(&view, "downstream")[0];
    assert!(
        held["assigned_at"].as_i64() >= upstream["finished_at"].as_i64(),
        "downstream ran before its dependency finished: {view}"
    );

    assert_eq!(
        server.result(P, &debounce, 60).await["value"],
        json!(["ran k", "ran k"])
    );
    let view = server.inspect(P, &debounce).await;
    assert_eq!(states(&view, "debounced"), ["deferred", "value"]);

    assert_eq!(server.result(P, &memo, 60).await["value"], json!([2, 2]));
    let view = server.inspect(P, &memo).await;
    assert_eq!(executions(&view, "plus_one").len(), 1, "{view}");
}

#[actix_rt::test]
async fn rust_a_recurrent_workflow_accumulates_through_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = server
        .submit(P, "production", M, "accumulates", json!([3]))
        .await;
    assert_eq!(server.result(P, &run, 60).await["value"], 3);
    let view = server.inspect(P, &run).await;
    assert_eq!(
        states(&view, "accumulates"),
        vec!["recurred", "recurred", "value"]
    );
    assert_eq!(view["steps"][0]["checkpoints"]["production"]["total"], 3);
}

#[actix_rt::test]
async fn rust_semantics_a_stream_produced_and_read_by_rust_executors_under_an_agent() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = server
        .submit(P, "production", M, "reads_squares", json!([6]))
        .await;
    let result = server.result(P, &run, 60).await;
    assert_eq!(
        result["value"],
        json!([[0, 1, 4, 9, 16, 25], [0, 4, 16]]),
        "{result}"
    );
    let view = server.inspect(P, &run).await;
    let step = step_of(&view, "squares");
    assert_eq!(step["streams"][0]["items"], 6, "{view}");
    assert_eq!(step["streams"][0]["closed"], "complete");
}

#[actix_rt::test]
async fn rust_semantics_a_stream_is_read_while_its_producer_still_appends() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = server
        .submit(P, "production", M, "reads_while_produced", json!([4]))
        .await;
    let result = server.result(P, &run, 60).await;
    assert_eq!(
        result["value"],
        json!([0, 1, 2, 3]),
        "tick 1 waited for the first read: {result}"
    );
    let view = server.inspect(P, &run).await;
    let step = step_of(&view, "ticks");
    assert_eq!(step["streams"][0]["items"], 4, "{view}");
    assert_eq!(step["streams"][0]["closed"], "complete");
    assert_eq!(step["executions"][0]["state"], "value", "{view}");
}

/// A Rust producer under an agent that goes silent past its idle timeout: its stream ends as
/// `timeout` after the items it made, for its reader and in `runs inspect`.
#[actix_rt::test]
async fn rust_semantics_a_silent_producer_ends_its_stream_by_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = server
        .submit(P, "production", M, "reads_stalled", json!([3, 300]))
        .await;
    let result = server.result(P, &run, 60).await;
    assert_eq!(
        result["value"],
        json!([[0, 1, 2], "stream ended: timeout"]),
        "{result}"
    );
    let view = server.inspect(P, &run).await;
    let step = step_of(&view, "stalls");
    assert_eq!(step["streams"][0]["items"], 3, "{view}");
    assert_eq!(step["streams"][0]["closed"], "timeout", "{view}");
}

#[actix_rt::test]
async fn rust_wait_in_a_zero_suspense_suspends_until_the_child_finished() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = server
        .submit(P, "production", M, "waits_in_suspense", json!([21]))
        .await;
    let result = server.result(P, &run, 60).await;
    assert_eq!(result["value"], "42 on attempt 2", "{result}");
    let view = server.inspect(P, &run).await;
    assert_eq!(
        states(&view, "waits_in_suspense"),
        ["suspended", "value"],
        "{view}"
    );
    let child = executions(&view, "slow_double");
    assert_eq!(child.len(), 1, "the child ran once: {view}");
    // The first attempt gave up at once; the second waited for the child to finish.
    let attempts = executions(&view, "waits_in_suspense");
    let suspended_after =
        attempts[0]["finished_at"].as_i64().unwrap() - attempts[0]["assigned_at"].as_i64().unwrap();
    assert!(suspended_after < 550, "held its slot {suspended_after} ms");
    assert!(
        attempts[1]["assigned_at"].as_i64().unwrap() >= child[0]["finished_at"].as_i64().unwrap(),
        "{view}"
    );
}

#[actix_rt::test]
async fn rust_panic_fails_the_run_with_its_message_and_location() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = server
        .submit(P, "production", M, "panics", json!(["out of cheese"]))
        .await;
    let result = server.result(P, &run, 60).await;
    assert_eq!(result["status"], "error", "{result}");
    assert_eq!(result["error"]["type"], "coflux.Panic", "{result}");
    assert_eq!(result["error"]["message"], "out of cheese", "{result}");
    let frame = &result["error"]["frames"][0];
    assert!(
        frame["file"]
            .as_str()
            .unwrap()
            .ends_with("examples/src/semantics.rs"),
        "{result}"
    );
}

#[actix_rt::test]
async fn rust_a_checkpoint_past_the_inline_limit_is_read_back_by_the_retry() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = server
        .submit(P, "production", M, "keeps_big_notes", json!([200_000]))
        .await;
    let result = server.result(P, &run, 60).await;
    assert_eq!(result["value"], 200_000, "{result}");
    assert_eq!(
        states(&server.inspect(P, &run).await, "keeps_big_notes"),
        ["error", "value"]
    );
}

#[actix_rt::test]
async fn rust_semantics_a_producer_with_a_buffer_is_paced_by_a_slow_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = server
        .submit(P, "production", M, "reads_slowly", json!([6, 2, 150]))
        .await;
    let result = server.result(P, &run, 60).await;
    let seen: Vec<(u64, u64)> = serde_json::from_value(result["value"].clone()).expect("pairs");
    assert_eq!(seen.len(), 6, "{result}");
    let ahead = super::embedded_streams::most_ahead(&seen);
    assert_eq!(ahead, 2, "a buffer of 2, used: {seen:?}");
}

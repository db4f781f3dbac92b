//! Orchestration semantics end to end through the real `coflux` 0.12.0 Python SDK: suspension
//! (explicit and on a `suspense` timeout), `wait_for`, defer, recurrence, workflows calling
//! workflows (spawned runs, cancelled with their caller), run-level memo and `retryable=false`.

use std::time::Duration;

use coflux_tests::{Proc, Server, eventually, post, python_agent_for, step_states};
use serde_json::{Value as Json, json};

const P: &str = "acme";

async fn start(dir: &std::path::Path) -> (Server, Proc) {
    let server = Server::start(dir).await;
    server.setup(P, "production", None).await;
    let agent = python_agent_for(
        "semantics_flows",
        &server.url,
        P,
        "production",
        "a",
        &["--concurrency", "4"],
    );
    server.wait_registered(P, "production", "patient").await;
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

/// Submits a workflow of `semantics_flows` in `production`; returns the run id.
async fn run_flow(server: &Server, target: &str, arguments: Json) -> String {
    server
        .submit(P, "production", "semantics_flows", target, arguments)
        .await
}

/// The states of the executions of `target`'s steps, in order.
fn states(view: &Json, target: &str) -> Vec<String> {
    executions(view, target)
        .iter()
        .map(|e| e["state"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[actix_rt::test]
async fn semantics_a_suspense_timeout_suspends_and_the_resumed_attempt_reuses_its_child() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = run_flow(&server, "patient", json!([3])).await;
    let result = server.result(P, &run, 60).await;
    assert_eq!(result["value"], 31, "{result}");
    let view = server.inspect(P, &run).await;
    let all = step_states(&view);
    let root = states(&view, "patient");
    assert_eq!(
        root.first().map(String::as_str),
        Some("suspended"),
        "{all:?}"
    );
    assert_eq!(root.last().map(String::as_str), Some("value"), "{all:?}");
    let children = executions(&view, "slow_value");
    assert_eq!(children.len(), 1, "the child ran once: {all:?}");
}

#[actix_rt::test]
async fn semantics_cf_suspend_resumes_the_step_after_its_delay() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let marker = dir.path().join("marker");
    let run = run_flow(
        &server,
        "suspend_once",
        json!([marker.display().to_string()]),
    )
    .await;
    assert_eq!(server.result(P, &run, 60).await["value"], "resumed");
    let view = server.inspect(P, &run).await;
    let runs = executions(&view, "suspend_once");
    assert_eq!(runs.len(), 2, "{view}");
    assert_eq!(runs[0]["state"], "suspended");
    let resumed_after =
        runs[1]["assigned_at"].as_i64().unwrap() - runs[0]["finished_at"].as_i64().unwrap();
    assert!(
        resumed_after >= 800,
        "resumed {resumed_after} ms after suspending"
    );
}

#[actix_rt::test]
async fn semantics_wait_for_holds_a_task_until_its_argument_finished() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = run_flow(&server, "waits", json!([])).await;
    assert_eq!(server.result(P, &run, 60).await["value"], 41);
    let view = server.inspect(P, &run).await;
    let upstream = executions(&view, "slow_value")[0];
    let downstream = executions(&view, "downstream")[0];
    assert!(
        downstream["assigned_at"].as_i64() >= upstream["finished_at"].as_i64(),
        "downstream ran before its dependency finished: {view}"
    );
}

#[actix_rt::test]
async fn semantics_deferred_calls_with_the_same_key_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = run_flow(&server, "debounce", json!([])).await;
    assert_eq!(
        server.result(P, &run, 60).await["value"],
        json!(["ran k", "ran k"])
    );
    let view = server.inspect(P, &run).await;
    let debounced = states(&view, "debounced");
    assert_eq!(debounced, vec!["deferred", "value"]);
}

#[actix_rt::test]
async fn semantics_a_recurrent_workflow_runs_until_it_returns_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let counter = dir.path().join("counter");
    let run = run_flow(&server, "ticker", json!([counter.display().to_string()])).await;
    assert_eq!(server.result(P, &run, 60).await["value"], 3);
    let view = server.inspect(P, &run).await;
    let ticks = states(&view, "ticker");
    assert_eq!(ticks, vec!["recurred", "recurred", "value"]);
}

#[actix_rt::test]
async fn semantics_a_workflow_calling_a_workflow_spawns_a_linked_run() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = run_flow(&server, "outer", json!([4])).await;
    assert_eq!(server.result(P, &run, 60).await["value"], 10);
    let view = server.inspect(P, &run).await;
    assert!(
        executions(&view, "inner").is_empty(),
        "no step in the caller's run"
    );
    let spawned = &view["spawned"][0];
    let child_run = spawned["run_id"].as_str().expect("a spawned run");
    assert_ne!(child_run, run);
    let child = server.inspect(P, child_run).await;
    assert_eq!(child["parent"], spawned["parent"]);
    assert_eq!(child["steps"][0]["target"], "inner");
}

#[actix_rt::test]
async fn semantics_cancelling_a_workflow_cancels_the_run_it_spawned() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = run_flow(&server, "outer_sleeper", json!([])).await;
    let child_run = eventually(Duration::from_secs(30), "the spawned run", || async {
        let view = server.inspect(P, &run).await;
        view["spawned"][0]["run_id"].as_str().map(str::to_string)
    })
    .await;
    post(
        &server.url,
        &format!("/api/projects/{P}/executions/{run}:1:1/cancel"),
        json!({}),
    )
    .await;
    assert_eq!(server.result(P, &run, 30).await["status"], "cancelled");
    assert_eq!(
        server.result(P, &child_run, 30).await["status"],
        "cancelled"
    );
}

#[actix_rt::test]
async fn semantics_a_memoising_workflow_runs_a_repeated_call_once() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = run_flow(&server, "memo_run", json!([])).await;
    assert_eq!(server.result(P, &run, 60).await["value"], json!([1, 1]));
    let view = server.inspect(P, &run).await;
    assert_eq!(executions(&view, "counted").len(), 1, "{view}");
}

#[actix_rt::test]
async fn semantics_an_error_the_retry_policy_excludes_is_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = run_flow(&server, "unretryable", json!([])).await;
    let result = server.result(P, &run, 60).await;
    assert_eq!(result["status"], "error", "{result}");
    let view = server.inspect(P, &run).await;
    assert_eq!(executions(&view, "picky").len(), 1, "not retried: {view}");
}

#[actix_rt::test]
async fn semantics_steps_called_in_a_group_carry_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = run_flow(&server, "grouped", json!([])).await;
    assert_eq!(server.result(P, &run, 60).await["value"], 12);
    let view = server.inspect(P, &run).await;
    let groups: Vec<_> = view["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["target"] == "counted")
        .map(|s| s["group"].as_str().unwrap_or("-").to_string())
        .collect();
    assert_eq!(groups, vec!["batch", "batch", "batch", "-"], "{view}");
}

#[actix_rt::test]
async fn semantics_a_concurrency_limit_runs_a_target_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let limit = coflux_tests::http()
        .put(format!(
            "{}/api/projects/{P}/environments/production/limits/semantics_flows/slow_value",
            server.url
        ))
        .send_json(&json!({"max": 1}))
        .await
        .unwrap();
    assert!(limit.status().is_success());
    let run = run_flow(&server, "limited_fan_out", json!([])).await;
    assert_eq!(
        server.result(P, &run, 60).await["value"],
        json!([0, 10, 20])
    );
    let view = server.inspect(P, &run).await;
    let mut spans: Vec<(i64, i64)> = executions(&view, "slow_value")
        .iter()
        .map(|e| {
            (
                e["assigned_at"].as_i64().unwrap(),
                e["finished_at"].as_i64().unwrap(),
            )
        })
        .collect();
    spans.sort_unstable();
    assert_eq!(spans.len(), 3);
    for pair in spans.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "overlapping executions: {spans:?}");
    }
}

#[actix_rt::test]
async fn semantics_tasks_inherit_their_workflows_requires() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _gpu) = start(dir.path()).await;
    let _plain = python_agent_for(
        "semantics_flows",
        &server.url,
        P,
        "production",
        "b",
        &["--concurrency", "4"],
    );
    // Agent "a" (from `start`) provides nothing yet: restart it with the tag.
    drop(_gpu);
    let _gpu = python_agent_for(
        "semantics_flows",
        &server.url,
        P,
        "production",
        "a",
        &["--concurrency", "4", "--provides", "gpu:yes"],
    );
    let run = run_flow(&server, "on_gpu", json!([])).await;
    let result = server.result(P, &run, 60).await;
    assert_eq!(result["value"], json!(["a", "a", "a"]), "{result}");
}

#[actix_rt::test]
async fn semantics_a_cron_schedule_starts_python_runs_until_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let schedule = post(
        &server.url,
        &format!("/api/projects/{P}/environments/production/schedules"),
        json!({"module": "semantics_flows", "target": "inner", "cron": "* * * * * *", "arguments": [1]}),
    )
    .await;
    let id = schedule["id"].as_u64().expect("a schedule id");
    let runs = eventually(Duration::from_secs(30), "two scheduled runs", || async {
        let list = coflux_tests::get(&server.url, &format!("/api/projects/{P}/runs")).await;
        let runs: Vec<String> = list["runs"]
            .as_array()?
            .iter()
            .filter_map(|r| r["run_id"].as_str().map(str::to_string))
            .collect();
        (runs.len() >= 2).then_some(runs)
    })
    .await;
    for run in &runs[..2] {
        assert_eq!(server.result(P, run, 30).await["value"], 2);
    }
    let listed = coflux_tests::get(&server.url, &format!("/api/projects/{P}/schedules")).await;
    assert_eq!(listed["schedules"][0]["cron"], "* * * * * *");
    assert_eq!(listed["schedules"][0]["missed"], 0);
    let deleted = coflux_tests::http()
        .delete(format!("{}/api/projects/{P}/schedules/{id}", server.url))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    actix_rt::time::sleep(Duration::from_millis(1_500)).await;
    let count = || async {
        coflux_tests::get(&server.url, &format!("/api/projects/{P}/runs")).await["runs"]
            .as_array()
            .map_or(0, Vec::len)
    };
    let before = count().await;
    actix_rt::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(
        count().await,
        before,
        "no runs once the schedule is removed"
    );
}

#[actix_rt::test]
async fn semantics_after_a_suspended_select_the_first_handle_to_finish_wins() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = run_flow(&server, "first_wins", json!([])).await;
    let result = server.result(P, &run, 60).await;
    assert_eq!(
        result["value"],
        json!({"winner": 20, "remaining": 1}),
        "{result}"
    );
    let view = server.inspect(P, &run).await;
    let root = states(&view, "first_wins");
    assert_eq!(
        root,
        vec!["suspended", "value"],
        "resumed once, when the quick one finished"
    );
    let children = states(&view, "slow_value");
    assert_eq!(
        children,
        vec!["cancelled", "value"],
        "the slow loser was cancelled"
    );
}

#[actix_rt::test]
async fn semantics_an_archived_module_is_hidden_until_registered_again() {
    let dir = tempfile::tempdir().unwrap();
    let (server, agent) = start(dir.path()).await;
    let manifests = format!("/api/projects/{P}/environments/production/manifests");
    let listed = |body: Json| {
        body["targets"].as_array().map_or(0, |t| {
            t.iter()
                .filter(|t| t["target"]["module"] == "semantics_flows")
                .count()
        })
    };
    assert!(listed(coflux_tests::get(&server.url, &manifests).await) > 0);
    post(
        &server.url,
        &format!("/api/projects/{P}/environments/production/modules/semantics_flows/archive"),
        json!({}),
    )
    .await;
    assert_eq!(listed(coflux_tests::get(&server.url, &manifests).await), 0);
    // The agent registers the module again when it starts (`--register`).
    drop(agent);
    let _agent = python_agent_for("semantics_flows", &server.url, P, "production", "a", &[]);
    server.wait_registered(P, "production", "patient").await;
    assert!(listed(coflux_tests::get(&server.url, &manifests).await) > 0);
}

#[actix_rt::test]
async fn semantics_cache_namespace_version_parameters_and_max_age() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = run_flow(&server, "cache_options", json!([])).await;
    let result = server.result(P, &run, 60).await;
    assert_eq!(
        result["value"],
        json!({"a": "a:k:1", "b": "a:k:1", "v2": "v2:k:3", "same": true, "expired": true}),
        "{result}"
    );
}

#[actix_rt::test]
async fn semantics_a_timeout_cancels_descendants_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = run_flow(&server, "times_out", json!([])).await;
    let result = server.result(P, &run, 60).await;
    assert_eq!(result["status"], "timeout", "{result}");
    let view = server.inspect(P, &run).await;
    assert_eq!(
        states(&view, "times_out"),
        vec!["timeout", "timeout"],
        "retried once"
    );
    assert_eq!(
        states(&view, "forever"),
        vec!["cancelled", "cancelled"],
        "children cancelled"
    );
}

#[actix_rt::test]
async fn semantics_poll_answers_at_once_with_or_without_a_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start(dir.path()).await;
    let run = run_flow(&server, "polls", json!([])).await;
    let result = server.result(P, &run, 60).await;
    assert_eq!(
        result["value"],
        json!({"ready": 50, "not_ready": "pending", "within": "pending"}),
        "{result}"
    );
}

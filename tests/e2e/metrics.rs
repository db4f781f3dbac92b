//! Metrics and progress end to end: the real `coflux` 0.12.0 SDK (`cf.Metric`, `cf.progress`)
//! and the Rust SDK (`sdk::progress`, `sdk::Metric`) under an agent, stored by the server and
//! read back with `GET …/runs/{run}/metrics`; `coflux runs inspect` shows a running
//! execution's progress; an embedded worker hands them to its hook.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coflux_core::model::ExecutionId;
use coflux_core::sdk::{Failure, MetricEvent, MetricHook, Repository, progress, workflow};
use coflux_core::{Coflux, WorkerOptions};
use coflux_tests::{Server, bin, eventually, example_module_agent, get, python_agent_for};
use serde_json::{Value as Json, json};

const P: &str = "acme";

async fn python_server(dir: &std::path::Path) -> (Server, coflux_tests::Proc) {
    let server = Server::start(dir).await;
    server.setup(P, "production", None).await;
    let agent = python_agent_for(
        "metric_flows",
        &server.url,
        P,
        "production",
        "a",
        &["--concurrency", "2"],
    );
    server.wait_registered(P, "production", "halfway").await;
    (server, agent)
}

/// The metric `key` of `execution` in a metrics answer.
fn metric<'a>(answer: &'a Json, execution: &str, key: &str) -> Option<&'a Json> {
    answer["executions"]
        .as_array()?
        .iter()
        .find(|e| e["execution_id"] == execution)?["metrics"]
        .as_array()?
        .iter()
        .find(|m| m["key"] == key)
}

fn values(metric: &Json) -> Vec<f64> {
    metric["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .collect()
}

/// Waits until the run's metrics have a `progress` whose last value is `last`.
async fn metrics_until(server: &Server, run: &str, execution: &str, last: f64) -> Json {
    let path = format!("/api/projects/{P}/runs/{run}/metrics");
    eventually(Duration::from_secs(10), "the final progress", || async {
        let answer = get(&server.url, &path).await;
        let progress = metric(&answer, execution, "progress")?;
        (values(progress).last() == Some(&last)).then_some(answer)
    })
    .await
}

fn coflux(server: &Server, args: &[&str]) -> (bool, String) {
    let output = Command::new(bin("coflux"))
        .args(["--server", &server.url, "-p", P])
        .args(args)
        .output()
        .expect("run coflux");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[actix_rt::test]
async fn metrics_python_series_and_progress_are_stored_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = python_server(dir.path()).await;
    let run = server
        .submit(P, "production", "metric_flows", "train", json!([5]))
        .await;
    assert_eq!(server.result(P, &run, 60).await["value"], 5);
    let execution = format!("{run}:1:1");
    let answer = metrics_until(&server, &run, &execution, 5.0).await;

    // The unthrottled series: every point, in order, with the given `at`.
    let loss = metric(&answer, &execution, "loss").expect("the loss metric");
    assert_eq!(
        values(loss),
        vec![1.0, 0.5, 1.0 / 3.0, 0.25, 0.2],
        "{answer}"
    );
    let at: Vec<f64> = loss["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["at"].as_f64().unwrap())
        .collect();
    assert_eq!(at, vec![0.0, 1.0, 2.0, 3.0, 4.0]);
    assert_eq!(loss["definition"]["group"], "training", "{answer}");

    // `cf.progress`: a progress metric towards 5; throttled to 10/s, but the last point (5)
    // always arrives, and values only grow.
    let progress = metric(&answer, &execution, "progress").expect("the progress metric");
    assert_eq!(progress["definition"]["progress"], true, "{answer}");
    assert_eq!(progress["definition"]["upper"], 5, "{answer}");
    let points = values(progress);
    assert!(points.windows(2).all(|w| w[0] < w[1]), "{points:?}");
    assert_eq!(
        points.first(),
        Some(&1.0),
        "the first point is sent at once"
    );
    assert!(
        progress["points"][0]["at"].as_f64().unwrap() >= 0.0,
        "the agent fills in `at`"
    );

    // Filtered by execution; another run's execution is refused in the API's error shape.
    let only = get(
        &server.url,
        &format!("/api/projects/{P}/runs/{run}/metrics?execution={execution}"),
    )
    .await;
    assert_eq!(only["executions"].as_array().unwrap().len(), 1, "{only}");
    let outside = get(
        &server.url,
        &format!("/api/projects/{P}/runs/{run}/metrics?execution=R999:1:1"),
    )
    .await;
    assert_eq!(outside["error"]["code"], "filter_outside_run", "{outside}");
    let bad = get(&server.url, &format!("/api/projects/{P}/runs/nope/metrics")).await;
    assert_eq!(bad["error"]["code"], "invalid_id", "{bad}");
    let missing = get(
        &server.url,
        &format!("/api/projects/nope/runs/{run}/metrics"),
    )
    .await;
    assert_eq!(missing["error"]["code"], "project_not_found", "{missing}");
}

#[actix_rt::test]
async fn metrics_python_progress_is_shown_by_the_cli_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = python_server(dir.path()).await;
    let marker = dir.path().join("go");
    let run = server
        .submit(
            P,
            "production",
            "metric_flows",
            "halfway",
            json!([marker.display().to_string()]),
        )
        .await;
    let execution = format!("{run}:1:1");
    let text = eventually(Duration::from_secs(20), "3/10 in the tree", || async {
        let (ok, out) = coflux(&server, &["runs", "inspect", &run]);
        (ok && out.contains("3/10")).then_some(out)
    })
    .await;
    let line = text.lines().find(|l| l.contains("3/10")).unwrap();
    assert!(line.contains("running"), "{text}");

    let (ok, out) = coflux(&server, &["-o", "json", "runs", "inspect", &run]);
    assert!(ok, "{out}");
    let view: Json = serde_json::from_str(&out).unwrap();
    let progress = &view["steps"][0]["executions"][0]["progress"];
    assert_eq!(view["steps"][0]["executions"][0]["execution_id"], execution);
    assert_eq!(progress["text"], "3/10", "{view}");
    assert_eq!(progress["upper"], 10.0, "{view}");

    std::fs::write(&marker, "").unwrap();
    assert_eq!(server.result(P, &run, 60).await["value"], "done");
    metrics_until(&server, &run, &execution, 10.0).await;
    let (ok, out) = coflux(&server, &["runs", "watch", &run]);
    assert!(ok, "{out}");
    assert!(
        !out.contains("10/10"),
        "progress is shown for running executions only: {out}"
    );
}

#[actix_rt::test]
async fn metrics_rust_sdk_progress_and_series_under_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.setup(P, "production", None).await;
    let _agent = example_module_agent(
        &server,
        P,
        "examples.semantics",
        &["COFLUX_EXAMPLE_SEMANTICS=1"],
        &["--register"],
    );
    server
        .wait_registered(P, "production", "reports_progress")
        .await;
    let run = server
        .submit(
            P,
            "production",
            "examples.semantics",
            "reports_progress",
            json!([4]),
        )
        .await;
    assert_eq!(server.result(P, &run, 60).await["value"], 4);
    let execution = format!("{run}:1:1");
    let answer = metrics_until(&server, &run, &execution, 4.0).await;
    let loss = metric(&answer, &execution, "loss").expect("the loss metric");
    assert_eq!(values(loss), vec![1.0, 0.5, 1.0 / 3.0, 0.25], "{answer}");
    assert_eq!(loss["definition"]["group"], "training");
    let progress = metric(&answer, &execution, "progress").unwrap();
    assert_eq!(progress["definition"]["progress"], true, "{answer}");
    assert_eq!(progress["definition"]["upper"], 4.0, "{answer}");
    let points = values(progress);
    assert!(points.windows(2).all(|w| w[0] < w[1]), "{points:?}");
}

#[workflow]
async fn embedded_progress(n: u64) -> Result<u64, Failure> {
    for i in 1..=n {
        progress((i, n));
    }
    progress(1.0);
    Ok(n)
}

#[actix_rt::test]
async fn metrics_embedded_progress_reaches_the_worker_hook() {
    let dir = tempfile::tempdir().unwrap();
    let coflux = Coflux::open(dir.path()).await.unwrap();
    let project = coflux.project("test").await.unwrap();
    project
        .ensure_environment("production", None)
        .await
        .unwrap();
    let events: Arc<Mutex<Vec<(ExecutionId, MetricEvent)>>> = Arc::default();
    let sink = Arc::clone(&events);
    let options = WorkerOptions {
        metrics: Some(MetricHook::new(move |execution, event| {
            sink.lock().unwrap().push((execution, event));
        })),
        ..WorkerOptions::default()
    };
    let repository = Repository::new().with(embedded_progress);
    project
        .serve_with("production", repository, options)
        .await
        .unwrap();
    let run = project
        .submit("production", &embedded_progress, (3u64,))
        .await
        .unwrap();
    assert_eq!(run.result::<u64>().await.unwrap(), 3);
    let events = events.lock().unwrap();
    let points: Vec<f64> = events
        .iter()
        .filter_map(|(_, e)| match e {
            MetricEvent::Point { value, .. } => Some(*value),
            MetricEvent::Define { .. } => None,
        })
        .collect();
    assert_eq!(points, vec![1.0, 2.0, 3.0, 1.0]);
    let uppers: Vec<Option<f64>> = events
        .iter()
        .filter_map(|(_, e)| match e {
            MetricEvent::Define { definition, .. } => Some(definition.upper),
            MetricEvent::Point { .. } => None,
        })
        .collect();
    // Defined once for the total, again when it became a fraction.
    assert_eq!(uppers, vec![Some(3.0), None]);
}

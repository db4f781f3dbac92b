//! Streams through the real coflux 0.12.0 SDK: a generator task consumed by a workflow,
//! several consumers each reading everything from the start, slice/partition/stride views,
//! a producer's error raised in its consumer, `cf.stream` with per-stream options, the idle
//! timeout, and items that survive a `kill -9` of the server between appends.

use std::time::Duration;

use coflux_tests::{Server, bin, eventually, python_agent_for};
use serde_json::{Value as Json, json};

const P: &str = "acme";

async fn start_on(dir: &std::path::Path, port: u16) -> (Server, coflux_tests::Proc) {
    let server = Server::start_on(dir, port, &[]).await;
    server.setup(P, "production", None).await;
    let agent = python_agent_for(
        "stream_flows",
        &server.url,
        P,
        "production",
        "a",
        &["--concurrency", "6"],
    );
    server.wait_registered(P, "production", "consume").await;
    (server, agent)
}

async fn run(server: &Server, target: &str, arguments: Json) -> Json {
    let run = server
        .submit(P, "production", "stream_flows", target, arguments)
        .await;
    server.result(P, &run, 60).await
}

fn squares(n: u64) -> Json {
    json!((0..n).map(|i| i * i).collect::<Vec<_>>())
}

/// The streams listed under the step of `target`.
fn streams_of(view: &Json, target: &str) -> Vec<Json> {
    view["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["target"] == target)
        .flat_map(|s| s["streams"].as_array().cloned().unwrap_or_default())
        .collect()
}

#[actix_rt::test]
async fn streams_through_the_python_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start_on(dir.path(), coflux_tests::free_port()).await;

    // A generator task consumed by the workflow that called it.
    let run_id = server
        .submit(P, "production", "stream_flows", "consume", json!([5]))
        .await;
    let result = server.result(P, &run_id, 60).await;
    assert_eq!(result["value"], squares(5), "{result}");
    let view = server.inspect(P, &run_id).await;
    let streams = streams_of(&view, "squares");
    assert_eq!(streams.len(), 1, "{view}");
    assert_eq!(streams[0]["items"], 5);
    assert_eq!(streams[0]["closed"], "complete");
    let stream_id = streams[0]["stream_id"].as_str().unwrap();
    assert_eq!(stream_id, format!("{run_id}:2_0"), "{streams:?}");
    // `coflux runs inspect` lists it under its step.
    let output = std::process::Command::new(bin("coflux"))
        .args(["--server", &server.url, "-p", P, "runs", "inspect", &run_id])
        .output()
        .unwrap();
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(
        tree.contains(&format!("stream {stream_id}: 5 item(s), complete")),
        "{tree}"
    );

    // Three consumers (two tasks and the workflow itself) each read everything.
    let result = run(&server, "two_consumers", json!([6])).await;
    assert_eq!(result["value"], json!([squares(6), squares(6), squares(6)]));

    // Views of one stream.
    let result = run(&server, "views", json!([7])).await;
    let value = &result["value"];
    assert_eq!(value["slice"], json!([1, 4, 9]), "{result}");
    assert_eq!(value["even"], json!([0, 4, 16, 36]), "{result}");
    assert_eq!(value["odd"], json!([1, 9, 25]), "{result}");
    assert_eq!(value["stride"], json!([0, 9, 36]), "{result}");

    // The producer's error reaches the consumer as its own type, after the items before it.
    let result = run(&server, "catch_error", json!([3])).await;
    assert_eq!(
        result["value"],
        json!({"seen": [0, 1, 2], "error": "failed after 3"}),
        "{result}"
    );

    // `cf.stream` in a task returning two streams, the second unbounded.
    let result = run(&server, "explicit_streams", json!(["abc"])).await;
    assert_eq!(result["value"], json!(["abc", "ABC"]), "{result}");

    // A producer silent for longer than its idle timeout: its consumer sees the timeout.
    let run_id = server
        .submit(P, "production", "stream_flows", "idle_timeout", json!([]))
        .await;
    let result = server.result(P, &run_id, 60).await;
    assert_eq!(
        result["value"],
        json!({"seen": [1], "timed_out": true}),
        "{result}"
    );
    let view = server.inspect(P, &run_id).await;
    assert_eq!(streams_of(&view, "stalls")[0]["closed"], "timeout");
}

/// How many items the producer had made before the consumer finished item `i` (times from
/// the producer's and the consumer's clocks, one machine).
fn ahead(result: &Json, i: usize) -> usize {
    let finished = result["value"]["finished"][i].as_f64().unwrap();
    result["value"]["produced"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t.as_f64().unwrap() < finished)
        .count()
}

#[actix_rt::test]
async fn stream_producers_stay_within_their_buffer_of_the_slowest_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start_on(dir.path(), coflux_tests::free_port()).await;
    let (n, pause) = (6, 0.3);
    // Lockstep (buffer 0): the next item is made only once the consumer is done with one.
    let result = run(&server, "paced", json!(["lockstep", n, pause])).await;
    for i in 0..n - 1 {
        assert_eq!(ahead(&result, i), i + 1, "item {i}: {result}");
    }
    // Buffer 2: two items more than the consumer has processed at first, and never more than
    // that (the consumer acknowledges in batches, before it would wait).
    let result = run(&server, "paced", json!(["ahead", n, pause])).await;
    assert_eq!(ahead(&result, 0), 3, "{result}");
    for i in 0..n {
        assert!(ahead(&result, i) <= i + 3, "item {i}: {result}");
    }
    // Unbounded: the producer runs free.
    let result = run(&server, "paced", json!(["free", n, pause])).await;
    assert_eq!(ahead(&result, 0), n, "{result}");
    // The lockstep task called `with_streams(cf.Streams(buffer=None))`: the call site wins.
    let result = run(&server, "paced", json!(["free_here", n, pause])).await;
    assert_eq!(ahead(&result, 0), n, "{result}");
}

#[actix_rt::test]
async fn a_producer_suspending_mid_stream_is_continued_by_its_next_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start_on(dir.path(), coflux_tests::free_port()).await;
    let run_id = server
        .submit(
            P,
            "production",
            "stream_flows",
            "resumed_stream",
            json!([6, 3]),
        )
        .await;
    let result = server.result(P, &run_id, 60).await;
    assert_eq!(
        result["value"],
        json!({"items": [0, 1, 2, 3, 4, 5], "pids": 2}),
        "one stream, fed by two processes: {result}"
    );
    let view = server.inspect(P, &run_id).await;
    let streams = streams_of(&view, "pausing");
    assert_eq!(streams.len(), 1, "{view}");
    assert_eq!(streams[0]["items"], 6);
    assert_eq!(streams[0]["closed"], "complete");
    assert!(
        streams[0]["producer"].as_str().unwrap().ends_with(":2"),
        "the second attempt finished it: {streams:?}"
    );
}

#[actix_rt::test]
async fn a_consumer_in_a_suspense_scope_suspends_between_items_and_reads_on() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start_on(dir.path(), coflux_tests::free_port()).await;
    let run_id = server
        .submit(P, "production", "stream_flows", "patient", json!([4, 0.6]))
        .await;
    let result = server.result(P, &run_id, 90).await;
    assert_eq!(result["value"], json!([0, 1, 2, 3]), "{result}");
    let view = server.inspect(P, &run_id).await;
    let attempts = view["steps"][0]["executions"].as_array().unwrap();
    assert!(attempts.len() > 1, "it suspended: {view}");
}

#[actix_rt::test]
async fn cancelling_a_consumer_ends_the_stream_its_waiting_producer_feeds() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _agent) = start_on(dir.path(), coflux_tests::free_port()).await;
    let run_id = server
        .submit(
            P,
            "production",
            "stream_flows",
            "takes_two_then_waits",
            json!([]),
        )
        .await;
    eventually(Duration::from_secs(30), "two items read", || {
        let server = &server;
        let run_id = &run_id;
        async move {
            let view = server.inspect(P, run_id).await;
            let streams = streams_of(&view, "endless");
            (streams.first()?["items"].as_u64()? >= 2).then_some(())
        }
    })
    .await;
    let root = format!("{run_id}:1:1");
    coflux_tests::post(
        &server.url,
        &format!("/api/projects/{P}/executions/{root}/cancel"),
        json!({}),
    )
    .await;
    let result = server.result(P, &run_id, 30).await;
    assert_eq!(result["status"], "cancelled", "{result}");
    let view = eventually(Duration::from_secs(10), "the stream ended", || {
        let server = &server;
        let run_id = &run_id;
        async move {
            let view = server.inspect(P, run_id).await;
            (!streams_of(&view, "endless")[0]["closed"].is_null()).then_some(view)
        }
    })
    .await;
    let stream = &streams_of(&view, "endless")[0];
    assert_eq!(stream["closed"], "cancelled", "{view}");
    assert!(
        stream["items"].as_u64().unwrap() <= 3,
        "lockstep, then stopped: {view}"
    );
}

#[actix_rt::test]
async fn streams_of_an_agent_that_is_gone_end_as_abandoned() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_on(
        dir.path(),
        coflux_tests::free_port(),
        &["--reconnect-timeout", "1"],
    )
    .await;
    server.setup(P, "production", None).await;
    let mut agent = python_agent_for("stream_flows", &server.url, P, "production", "a", &[]);
    let run_id = server
        .submit(
            P,
            "production",
            "stream_flows",
            "slow_consumer",
            json!([50, 0.2]),
        )
        .await;
    eventually(Duration::from_secs(30), "items stored", || {
        let server = &server;
        let run_id = &run_id;
        async move {
            let view = server.inspect(P, run_id).await;
            (streams_of(&view, "slow").first()?["items"].as_u64()? >= 2).then_some(())
        }
    })
    .await;
    agent.kill9();
    let view = eventually(Duration::from_secs(20), "the stream ended", || {
        let server = &server;
        let run_id = &run_id;
        async move {
            let view = server.inspect(P, run_id).await;
            (!streams_of(&view, "slow")[0]["closed"].is_null()).then_some(view)
        }
    })
    .await;
    assert_eq!(
        streams_of(&view, "slow")[0]["closed"],
        "abandoned",
        "{view}"
    );
}

#[actix_rt::test]
async fn stream_items_survive_a_server_killed_between_appends() {
    let dir = tempfile::tempdir().unwrap();
    let port = coflux_tests::free_port();
    let (mut server, _agent) = start_on(dir.path(), port).await;
    let run_id = server
        .submit(
            P,
            "production",
            "stream_flows",
            "slow_consumer",
            json!([12, 0.25]),
        )
        .await;
    // Some items are stored, the stream is still open.
    eventually(Duration::from_secs(30), "items stored", || {
        let server = &server;
        let run_id = &run_id;
        async move {
            let view = server.inspect(P, run_id).await;
            let streams = streams_of(&view, "slow");
            let stream = streams.first()?;
            (stream["items"].as_u64()? >= 3 && stream["closed"].is_null()).then_some(())
        }
    })
    .await;
    server.proc.kill9();
    let server = Server::start_on(dir.path(), port, &[]).await;
    let result = server.result(P, &run_id, 90).await;
    assert_eq!(
        result["value"],
        json!((0..12).collect::<Vec<_>>()),
        "every item once, in order: {result}"
    );
    let view = server.inspect(P, &run_id).await;
    let streams = streams_of(&view, "slow");
    assert_eq!(streams[0]["items"], 12, "{view}");
    assert_eq!(streams[0]["closed"], "complete");
}

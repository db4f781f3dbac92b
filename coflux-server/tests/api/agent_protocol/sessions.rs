//! Sessions: resumed after a short disconnect, expired, replaced, and shown on the project page.

use std::time::Duration;

use coflux_core::model::{ExecutionResult, RetryPolicy, Value};
use coflux_core::protocol::agent::{AgentFrame, ServerFrame};

use super::{connect, hello, next_execute, open, recv, report_value, send, start, submit};

#[actix_rt::test]
async fn agent_protocol_session_survives_a_short_disconnect() {
    let server = start(Duration::from_secs(30)).await;
    let (socket, session, _) = open(&server.url, None).await;
    let run = submit(&server, None).await;
    // Drop the connection before the assignment arrives or is answered.
    drop(socket);
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let (mut socket, resumed, in_flight) = open(&server.url, Some(session.clone())).await;
    assert_eq!(resumed, session);
    // The assignment was either delivered before the drop (then it is in flight) or queued
    // (then it arrives now); either way the execution was not abandoned.
    let execution = if in_flight.contains(&run.execution) {
        run.execution
    } else {
        next_execute(&mut socket).await
    };
    assert_eq!(execution, run.execution);
    report_value(&mut socket, execution, 11).await;
    assert_eq!(
        run.raw_result().await.unwrap(),
        ExecutionResult::Value {
            value: Value::raw(serde_json::json!(11))
        }
    );
    let view = run.inspect().await.unwrap();
    assert_eq!(view.steps[0].executions.len(), 1, "no retry happened");
}

#[actix_rt::test]
async fn agent_protocol_expired_session_abandons_and_retries_elsewhere() {
    let server = start(Duration::from_millis(300)).await;
    let (mut first, session, _) = open(&server.url, None).await;
    let run = submit(&server, Some(RetryPolicy::limit(1))).await;
    let execution = next_execute(&mut first).await;
    drop(first);
    // A second agent gets the retry once the first session expires.
    let (mut second, _, _) = open(&server.url, None).await;
    let retry = next_execute(&mut second).await;
    assert_eq!(retry.step, execution.step);
    assert_eq!(retry.attempt, 2);
    report_value(&mut second, retry, 1).await;
    assert!(matches!(
        run.raw_result().await.unwrap(),
        ExecutionResult::Value { .. }
    ));
    // The expired session cannot be resumed.
    let mut socket = connect(&server.url).await;
    send(&mut socket, &AgentFrame::Hello(hello(Some(session)))).await;
    assert_eq!(recv(&mut socket).await.unwrap_err(), "session_invalid");
}

#[actix_rt::test]
async fn agent_protocol_a_replaced_connection_ending_late_does_not_cut_off_the_session() {
    let server = start(Duration::from_secs(30)).await;
    let (old, session, _) = open(&server.url, None).await;
    // The agent resumes on a new connection while the old one is still open (half-open).
    let (mut new, resumed, _) = open(&server.url, Some(session.clone())).await;
    assert_eq!(resumed, session);
    drop(old);
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let run = submit(&server, None).await;
    let execution = next_execute(&mut new).await;
    report_value(&mut new, execution, 8).await;
    assert_eq!(
        run.raw_result().await.unwrap(),
        ExecutionResult::Value {
            value: Value::raw(serde_json::json!(8))
        }
    );
}

#[actix_rt::test]
async fn agent_protocol_an_assignment_lost_in_transit_is_sent_again_on_resume() {
    let server = start(Duration::from_secs(30)).await;
    let (mut socket, session, _) = open(&server.url, None).await;
    let run = submit(&server, None).await;
    let execution = next_execute(&mut socket).await;
    drop(socket);
    // The agent comes back not running it (it never got the frame): it is sent again.
    let (mut socket, _, in_flight) = open(&server.url, Some(session)).await;
    assert_eq!(in_flight, vec![execution]);
    assert_eq!(next_execute(&mut socket).await, execution);
    report_value(&mut socket, execution, 9).await;
    assert!(matches!(
        run.raw_result().await.unwrap(),
        ExecutionResult::Value { .. }
    ));
}

#[actix_rt::test]
async fn agent_protocol_sessions_show_in_the_project_page_with_their_work() {
    let server = start(Duration::from_secs(30)).await;
    let mut socket = connect(&server.url).await;
    let mut with_tags = hello(None);
    with_tags.provides = vec![("gpu".into(), vec!["a100".into()])];
    send(&mut socket, &AgentFrame::Hello(with_tags)).await;
    assert!(matches!(
        recv(&mut socket).await,
        Ok(ServerFrame::Welcome { .. })
    ));
    let put = server.url.replace("ws://", "http://").replace(
        "/agent",
        "/api/projects/acme/environments/production/manifests",
    );
    let manifest = serde_json::json!({"targets": [{
        "target": {"module": "flows", "name": "main"}, "kind": "workflow",
        "parameters": [], "options": {}, "instruction": null,
    }]});
    let resp = awc::Client::new()
        .put(&put)
        .send_json(&manifest)
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let _run = submit(&server, None).await;
    next_execute(&mut socket).await;
    let page_url = server
        .url
        .replace("ws://", "http://")
        .replace("/agent", "/projects/acme");
    let mut resp = awc::Client::new().get(&page_url).send().await.unwrap();
    let body = String::from_utf8(resp.body().await.unwrap().to_vec()).unwrap();
    let sidebar = &body[body.find("id=\"project-sidebar\"").expect("a sidebar")..];
    assert!(
        sidebar.contains("<span data-testid=\"agent-running\">1</span>/4 running"),
        "{sidebar}"
    );
    assert!(sidebar.contains("gpu:a100"), "{sidebar}");
    assert!(sidebar.contains("1 target · since "), "{sidebar}");
    // The running count of its target (the workflow `flows/main`, registered by the agent).
    assert!(
        sidebar.contains("data-testid=\"target-running\" title=\"running now\">1 running"),
        "{sidebar}"
    );
}

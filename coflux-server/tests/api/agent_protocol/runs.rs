//! Runs through the protocol: an assigned execution's result, children submitted and awaited.

use std::time::Duration;

use coflux_core::model::{ExecutionResult, StepOptions, TargetKind, TargetRef, Value};
use coflux_core::protocol::agent::{AgentFrame, AgentRequest, Json, ReplyBody, ServerFrame};

use super::{next_execute, open, recv, report_value, send, start, submit, value};

#[actix_rt::test]
async fn agent_protocol_runs_an_assigned_execution_and_records_its_result_once() {
    let server = start(Duration::from_secs(30)).await;
    let (mut socket, _, in_flight) = open(&server.url, None).await;
    assert!(in_flight.is_empty());
    let run = submit(&server, None).await;
    let execution = next_execute(&mut socket).await;
    assert_eq!(execution, run.execution);
    report_value(&mut socket, execution, 42).await;
    assert_eq!(
        recv(&mut socket).await.unwrap(),
        ServerFrame::Recorded { execution }
    );
    // A repeat is acknowledged and ignored.
    report_value(&mut socket, execution, 7).await;
    assert_eq!(
        recv(&mut socket).await.unwrap(),
        ServerFrame::Recorded { execution }
    );
    let result = run.raw_result().await.unwrap();
    assert_eq!(
        result,
        ExecutionResult::Value {
            value: Value::raw(serde_json::json!(42))
        }
    );
}

#[actix_rt::test]
async fn agent_protocol_submits_children_and_waits_for_them() {
    let server = start(Duration::from_secs(30)).await;
    let (mut socket, _, _) = open(&server.url, None).await;
    let run = submit(&server, None).await;
    let parent = next_execute(&mut socket).await;
    let submit = AgentRequest::Submit {
        parent,
        call: 1,
        target: TargetRef::new("flows", "main"),
        kind: TargetKind::Task,
        arguments: Json::encode(&vec![Value::raw(serde_json::json!(1))]),
        options: Json::encode(&StepOptions::default()),
        wait: false,
    };
    send(
        &mut socket,
        &AgentFrame::Request {
            id: 1,
            request: submit,
        },
    )
    .await;
    let mut child = None;
    let mut child_assigned = None;
    while child.is_none() || child_assigned.is_none() {
        match recv(&mut socket).await.unwrap() {
            ServerFrame::Reply { id: 1, result } => match result.unwrap() {
                ReplyBody::Submitted(id) => child = Some(id),
                other => panic!("unexpected {other:?}"),
            },
            ServerFrame::Execute { execution, .. } => child_assigned = Some(execution),
            other => panic!("unexpected {other:?}"),
        }
    }
    let child = child.unwrap();
    assert_eq!(child_assigned, Some(child));
    let wait = AgentRequest::Wait {
        execution: child,
        from: parent,
    };
    send(
        &mut socket,
        &AgentFrame::Request {
            id: 2,
            request: wait,
        },
    )
    .await;
    report_value(&mut socket, child, 5).await;
    let mut waited = None;
    while waited.is_none() {
        match recv(&mut socket).await.unwrap() {
            ServerFrame::Reply { id: 2, result } => waited = Some(result.unwrap()),
            ServerFrame::Recorded { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(waited.unwrap(), ReplyBody::Result(value(5)));
    report_value(&mut socket, parent, 6).await;
    assert!(matches!(
        run.raw_result().await.unwrap(),
        ExecutionResult::Value { .. }
    ));
}

#[actix_rt::test]
async fn agent_protocol_a_resent_submission_creates_one_child() {
    let server = start(Duration::from_secs(30)).await;
    let (mut socket, _, _) = open(&server.url, None).await;
    let run = submit(&server, None).await;
    let parent = next_execute(&mut socket).await;
    let request = |call| AgentRequest::Submit {
        parent,
        call,
        target: TargetRef::new("flows", "main"),
        kind: TargetKind::Task,
        arguments: Json::encode(&Vec::<Value>::new()),
        options: Json::encode(&StepOptions::default()),
        wait: false,
    };
    // The same request twice (a reconnect to the same session), the same call under another
    // request id (as a new session after a server restart gets it), then a second call.
    for (id, call) in [(5, 1), (5, 1), (6, 1), (7, 2)] {
        let frame = AgentFrame::Request {
            id,
            request: request(call),
        };
        send(&mut socket, &frame).await;
    }
    let mut children = std::collections::BTreeMap::<u64, Vec<ReplyBody>>::new();
    while children.values().map(Vec::len).sum::<usize>() < 4 {
        if let ServerFrame::Reply { id, result } = recv(&mut socket).await.unwrap() {
            children.entry(id).or_default().push(result.unwrap());
        }
    }
    assert_eq!(
        children[&5][0], children[&5][1],
        "the same child both times"
    );
    assert_eq!(
        children[&5][0], children[&6][0],
        "the same call, the same child"
    );
    assert_ne!(
        children[&5][0], children[&7][0],
        "another call, another child"
    );
    let view = run.inspect().await.unwrap();
    assert_eq!(view.steps.len(), 3, "the workflow and two children");
}

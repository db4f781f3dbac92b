//! Bad and unusual frames: foreign executions, malformed frames and hellos, duplicates, reordering.

use std::time::Duration;

use awc::ws::Message;
use coflux_core::model::{ExecutionId, ExecutionResult, Value};
use coflux_core::protocol::agent::{AgentFrame, PROTOCOL_VERSION, ServerFrame};
use coflux_core::protocol::codec;
use futures::SinkExt;

use super::{connect, hello, next_execute, open, recv, report_value, send, start, submit, value};

#[actix_rt::test]
async fn agent_protocol_closes_on_foreign_executions_and_malformed_frames() {
    let server = start(Duration::from_secs(30)).await;
    let (mut socket, _, _) = open(&server.url, None).await;
    let foreign: ExecutionId = "R9:1:1".parse().unwrap();
    report_value(&mut socket, foreign, 1).await;
    assert_eq!(recv(&mut socket).await.unwrap_err(), "execution_invalid");

    let (mut socket, _, _) = open(&server.url, None).await;
    socket
        .send(Message::Binary(vec![0xff, 0xfe, 0xfd].into()))
        .await
        .unwrap();
    assert_eq!(recv(&mut socket).await.unwrap_err(), "malformed_frame");

    // A bad hello: unknown project, wrong version.
    let mut socket = connect(&server.url).await;
    let mut h = hello(None);
    h.project = "nope".into();
    send(&mut socket, &AgentFrame::Hello(h)).await;
    assert_eq!(recv(&mut socket).await.unwrap_err(), "project_not_found");
    let mut socket = connect(&server.url).await;
    let mut h = hello(None);
    h.version = 999;
    send(&mut socket, &AgentFrame::Hello(h)).await;
    assert_eq!(recv(&mut socket).await.unwrap_err(), "version_mismatch");
    // An older agent whose hello has other fields hears about its version, not a bad frame.
    #[derive(serde::Serialize)]
    enum OldFrame {
        Hello { version: u32, project: String },
    }
    let mut socket = connect(&server.url).await;
    let old = OldFrame::Hello {
        version: PROTOCOL_VERSION - 1,
        project: "acme".into(),
    };
    let bytes = codec::encode(&old).unwrap();
    socket.send(Message::Binary(bytes.into())).await.unwrap();
    assert_eq!(recv(&mut socket).await.unwrap_err(), "version_mismatch");
    // Garbage is still a bad frame.
    let mut socket = connect(&server.url).await;
    socket
        .send(Message::Binary(vec![7, 1, 2].into()))
        .await
        .unwrap();
    assert_eq!(recv(&mut socket).await.unwrap_err(), "malformed_frame");

    // Other connections are unaffected: a run still completes on a fresh agent.
    let (mut socket, _, _) = open(&server.url, None).await;
    let run = submit(&server, None).await;
    let execution = next_execute(&mut socket).await;
    report_value(&mut socket, execution, 3).await;
    assert!(matches!(
        run.raw_result().await.unwrap(),
        ExecutionResult::Value { .. }
    ));
}

#[actix_rt::test]
async fn agent_protocol_duplicated_and_reordered_frames_are_harmless() {
    let server = start(Duration::from_secs(30)).await;
    let (mut socket, _, _) = open(&server.url, None).await;
    for (round, n) in [(0, 42), (1, 43)] {
        let run = submit(&server, None).await;
        let execution = next_execute(&mut socket).await;
        // The result before `Started`, then everything again, late and out of order.
        let frames = [
            AgentFrame::Result {
                execution,
                result: value(n),
            },
            AgentFrame::Started { execution },
            AgentFrame::Waiting {
                execution,
                waiting: true,
            },
            AgentFrame::Result {
                execution,
                result: value(-1),
            },
            AgentFrame::Started { execution },
            AgentFrame::Waiting {
                execution,
                waiting: false,
            },
            AgentFrame::Heartbeat {
                executing: vec![execution],
            },
            AgentFrame::Result {
                execution,
                result: value(-2),
            },
        ];
        for frame in &frames {
            send(&mut socket, frame).await;
        }
        // One acknowledgement per result frame, the first result kept.
        for _ in 0..3 {
            assert_eq!(
                recv(&mut socket).await.unwrap(),
                ServerFrame::Recorded { execution },
                "round {round}"
            );
        }
        assert_eq!(
            run.raw_result().await.unwrap(),
            ExecutionResult::Value {
                value: Value::raw(serde_json::json!(n))
            }
        );
    }
    // The connection still works: a third run is assigned and finishes.
    let run = submit(&server, None).await;
    let execution = next_execute(&mut socket).await;
    report_value(&mut socket, execution, 7).await;
    assert_eq!(
        run.raw_result().await.unwrap(),
        ExecutionResult::Value {
            value: Value::raw(serde_json::json!(7))
        }
    );
}

//! The agent WebSocket protocol, driven by a scripted agent speaking raw frames: assignment,
//! results, requests, ownership checks, malformed, duplicated and reordered frames, and
//! sessions that survive a short disconnect or expire and abandon their executions.

use std::time::Duration;

use actix_web::{HttpServer, web};
use awc::ws::{Frame, Message};
use coflux_core::model::{
    ExecutionId, ExecutionResult, RetryPolicy, StepOptions, TargetKind, TargetRef, Value,
};
use coflux_core::protocol::agent::{
    AgentFrame, AgentRequest, DeclaredTarget, Hello, Json, PROTOCOL_VERSION, ReplyBody, ServerFrame,
};
use coflux_core::protocol::codec;
use coflux_server::{AppState, ServerConfig, create_app};
use futures::{SinkExt, StreamExt};

type Socket = actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>;

struct Server {
    state: web::Data<AppState>,
    url: String,
    _dir: tempfile::TempDir,
}

async fn start(reconnect_timeout: Duration) -> Server {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path());
    config.reconnect_timeout = reconnect_timeout;
    let state = web::Data::new(AppState::open(&config).await.unwrap());
    let s = state.clone();
    let server = HttpServer::new(move || create_app(s.clone()))
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
    let addr = server.addrs()[0];
    actix_rt::spawn(server.run());
    let project = state.coflux.project("acme").await.unwrap();
    project
        .create_environment("production", None)
        .await
        .unwrap();
    Server {
        state,
        url: format!("ws://{addr}/agent"),
        _dir: dir,
    }
}

fn hello(session: Option<String>) -> Hello {
    Hello {
        version: PROTOCOL_VERSION,
        project: "acme".into(),
        environment: "production".into(),
        session,
        provides: vec![],
        accepts: vec![],
        concurrency: 4,
        targets: vec![DeclaredTarget {
            target: TargetRef::new("flows", "main"),
            kind: TargetKind::Workflow,
        }],
        claims: vec![],
        previous_session: None,
    }
}

async fn connect(url: &str) -> Socket {
    let (_, socket) = awc::Client::new()
        .ws(url)
        .max_frame_size(codec::MAX_FRAME_BYTES)
        .connect()
        .await
        .unwrap();
    socket
}

async fn send(socket: &mut Socket, frame: &AgentFrame) {
    let bytes = codec::encode(frame).unwrap();
    socket.send(Message::Binary(bytes.into())).await.unwrap();
}

/// The next server frame, or the close reason.
async fn recv(socket: &mut Socket) -> Result<ServerFrame, String> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("no frame within 10 s");
        match frame {
            Some(Ok(Frame::Binary(bytes))) => return Ok(codec::decode(&bytes).unwrap()),
            Some(Ok(Frame::Close(reason))) => {
                return Err(reason.and_then(|r| r.description).unwrap_or_default());
            }
            Some(Ok(_)) => continue,
            other => return Err(format!("connection ended: {other:?}")),
        }
    }
}

async fn open(url: &str, session: Option<String>) -> (Socket, String, Vec<ExecutionId>) {
    let mut socket = connect(url).await;
    send(&mut socket, &AgentFrame::Hello(hello(session))).await;
    match recv(&mut socket).await.expect("welcome") {
        ServerFrame::Welcome { session, in_flight } => (socket, session, in_flight),
        other => panic!("expected a welcome, got {other:?}"),
    }
}

async fn next_execute(socket: &mut Socket) -> ExecutionId {
    loop {
        if let ServerFrame::Execute { execution, .. } = recv(socket).await.unwrap() {
            return execution;
        }
    }
}

fn value(n: i64) -> Json {
    Json::encode(&ExecutionResult::Value {
        value: Value::raw(serde_json::json!(n)),
    })
}

async fn submit(server: &Server, retries: Option<RetryPolicy>) -> coflux_core::RunHandle {
    let project = server.state.coflux.existing_project("acme").await.unwrap();
    let options = StepOptions {
        retries,
        ..StepOptions::default()
    };
    project
        .submit_target(
            "production",
            TargetRef::new("flows", "main"),
            vec![],
            options,
        )
        .await
        .unwrap()
}

#[actix_rt::test]
async fn agent_protocol_runs_an_assigned_execution_and_records_its_result_once() {
    let server = start(Duration::from_secs(30)).await;
    let (mut socket, _, in_flight) = open(&server.url, None).await;
    assert!(in_flight.is_empty());
    let run = submit(&server, None).await;
    let execution = next_execute(&mut socket).await;
    assert_eq!(execution, run.execution);
    send(
        &mut socket,
        &AgentFrame::Result {
            execution,
            result: value(42),
        },
    )
    .await;
    assert_eq!(
        recv(&mut socket).await.unwrap(),
        ServerFrame::Recorded { execution }
    );
    // A repeat is acknowledged and ignored.
    send(
        &mut socket,
        &AgentFrame::Result {
            execution,
            result: value(7),
        },
    )
    .await;
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
    send(
        &mut socket,
        &AgentFrame::Result {
            execution: child,
            result: value(5),
        },
    )
    .await;
    let mut waited = None;
    while waited.is_none() {
        match recv(&mut socket).await.unwrap() {
            ServerFrame::Reply { id: 2, result } => waited = Some(result.unwrap()),
            ServerFrame::Recorded { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(waited.unwrap(), ReplyBody::Result(value(5)));
    send(
        &mut socket,
        &AgentFrame::Result {
            execution: parent,
            result: value(6),
        },
    )
    .await;
    assert!(matches!(
        run.raw_result().await.unwrap(),
        ExecutionResult::Value { .. }
    ));
}

#[actix_rt::test]
async fn agent_protocol_closes_on_foreign_executions_and_malformed_frames() {
    let server = start(Duration::from_secs(30)).await;
    let (mut socket, _, _) = open(&server.url, None).await;
    let foreign: ExecutionId = "R9:1:1".parse().unwrap();
    send(
        &mut socket,
        &AgentFrame::Result {
            execution: foreign,
            result: value(1),
        },
    )
    .await;
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
    send(
        &mut socket,
        &AgentFrame::Result {
            execution,
            result: value(3),
        },
    )
    .await;
    assert!(matches!(
        run.raw_result().await.unwrap(),
        ExecutionResult::Value { .. }
    ));
}

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
    send(
        &mut socket,
        &AgentFrame::Result {
            execution,
            result: value(11),
        },
    )
    .await;
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
    send(
        &mut second,
        &AgentFrame::Result {
            execution: retry,
            result: value(1),
        },
    )
    .await;
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
    send(
        &mut new,
        &AgentFrame::Result {
            execution,
            result: value(8),
        },
    )
    .await;
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
    send(
        &mut socket,
        &AgentFrame::Result {
            execution,
            result: value(9),
        },
    )
    .await;
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
    send(
        &mut socket,
        &AgentFrame::Result {
            execution,
            result: value(7),
        },
    )
    .await;
    assert_eq!(
        run.raw_result().await.unwrap(),
        ExecutionResult::Value {
            value: Value::raw(serde_json::json!(7))
        }
    );
}

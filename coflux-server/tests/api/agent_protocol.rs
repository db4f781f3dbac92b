//! The agent WebSocket protocol, driven by a scripted agent speaking raw frames: assignment,
//! results, requests, ownership checks, malformed, duplicated and reordered frames, and
//! sessions that survive a short disconnect or expire and abandon their executions.
//! The scripted agent's helpers are here; the tests are in the topic modules below.

use std::time::Duration;

use actix_web::{HttpServer, web};
use awc::ws::{Frame, Message};
use coflux_core::model::{
    ExecutionId, ExecutionResult, RetryPolicy, StepOptions, TargetKind, TargetRef, Value,
};
use coflux_core::protocol::agent::{
    AgentFrame, DeclaredTarget, Hello, Json, PROTOCOL_VERSION, ServerFrame,
};
use coflux_core::protocol::codec;
use coflux_server::{AppState, ServerConfig, create_app};
use futures::{SinkExt, StreamExt};

mod frames;
mod runs;
mod sessions;

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

/// Reports `execution`'s result: the value `n`.
async fn report_value(socket: &mut Socket, execution: ExecutionId, n: i64) {
    send(
        socket,
        &AgentFrame::Result {
            execution,
            result: value(n),
        },
    )
    .await;
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

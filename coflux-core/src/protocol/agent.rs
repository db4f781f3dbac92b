//! Agent ⇄ server frames, sent as binary WebSocket messages through [`super::codec`].
//!
//! A connection starts with [`AgentFrame::Hello`]; the server answers [`ServerFrame::Welcome`]
//! (or closes with a [`CloseReason`]). Model payloads that carry free-form JSON (values,
//! results, options) travel as [`Json`] text inside the binary frame, because the binary codec
//! has no schema for arbitrary JSON.
//!
//! Sessions: `Welcome` carries a session token. An agent that loses its connection reconnects
//! with that token within the server's reconnection timeout and gets the same session back,
//! with the executions the server still considers assigned to it; it then re-sends the results
//! it buffered for those executions (each result is recorded once; repeats are acknowledged
//! and ignored). After the timeout the session's executions are abandoned.
//!
//! In a cluster, the node sends [`ServerFrame::Nodes`] (the live nodes' URLs) after `Welcome`,
//! so that an agent configured with one node's address can reach another when that one dies.
//!
//! Requests carry no session-bound state: a submission is identified by its parent execution
//! and call number, waits and cancels are idempotent, so an agent sends every request still
//! unanswered again on its next connection, to the same session or to a new one (after a
//! server restart, once the new session has claimed the parent execution).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::model::{ExecutionId, InputId, TargetKind, TargetRef};

/// The version of this protocol; the server refuses other versions with
/// [`CloseReason::VersionMismatch`].
pub const PROTOCOL_VERSION: u32 = 11;

/// A model value encoded as JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Json(pub String);

impl Json {
    /// Encodes a model value.
    pub fn encode<T: Serialize>(value: &T) -> Self {
        // Model types always serialise to JSON (no non-string map keys, no failing impls).
        Self(serde_json::to_string(value).unwrap_or_else(|_| "null".into()))
    }

    /// Decodes a model value.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }
}

/// A target an agent hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclaredTarget {
    /// Module and name.
    pub target: TargetRef,
    /// Workflow or task.
    pub kind: TargetKind,
}

/// The first frame of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the agent.
    pub version: u32,
    /// The project.
    pub project: String,
    /// The environment.
    pub environment: String,
    /// The session to resume, if reconnecting.
    pub session: Option<String>,
    /// Tags the agent provides (`key → values`), for `requires` routing.
    pub provides: Vec<(String, Vec<String>)>,
    /// Tags an execution's `requires` must include for it to be assigned to this agent
    /// (`key → values`, one of them per key; empty: any execution).
    #[serde(default)]
    pub accepts: Vec<(String, Vec<String>)>,
    /// How many executions it runs at once.
    pub concurrency: u32,
    /// The targets it hosts.
    pub targets: Vec<DeclaredTarget>,
    /// For a new session: executions the agent still runs (or holds unconfirmed results of)
    /// from a session the server no longer knows (e.g. after a server restart). Those the
    /// server still expects become this session's, and are listed in the welcome.
    pub claims: Vec<ExecutionId>,
    /// For a new session: the token of the session the server no longer knows. What was
    /// assigned to it and is not claimed is abandoned (and retried) at once instead of when
    /// the reconnect grace period ends.
    #[serde(default)]
    pub previous_session: Option<String>,
}

/// A request from an agent that gets a [`ServerFrame::Reply`] with the same id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AgentRequest {
    /// Submit a child step of a running execution (`SubmitRequest` fields).
    Submit {
        /// The calling execution.
        parent: ExecutionId,
        /// The call's number within `parent` (1, 2, ...): the submission's identity across
        /// connections and sessions. The server answers a repeat with the first answer, so the
        /// agent may send a submission again whenever it is unsure it arrived.
        call: u32,
        /// The target.
        target: TargetRef,
        /// Workflow or task.
        kind: TargetKind,
        /// `Vec<Value>` as JSON.
        arguments: Json,
        /// `StepOptions` as JSON.
        options: Json,
        /// Also send the child's final result, as [`ServerFrame::Resolved`], once known (saves
        /// the round trip of a later `Wait`).
        wait: bool,
    },
    /// Wait for the final result of an execution's chain.
    Wait {
        /// The execution waited on.
        execution: ExecutionId,
        /// The execution waiting (must be assigned to this session).
        from: ExecutionId,
    },
    /// Change the checkpoints of a running execution's step; answered with
    /// [`ReplyBody::Checkpointed`] once committed (`checkpoint_rejected` once it has ended).
    Checkpoint {
        /// The execution.
        execution: ExecutionId,
        /// `BTreeMap<String, Value>` as JSON: names given a value.
        set: Json,
        /// Names cleared.
        reset: Vec<String>,
    },
    /// A stream operation (`coflux_core::model::StreamOp` as JSON), answered with
    /// [`ReplyBody::Stream`]. Not tied to the session: a producer appends after its result
    /// is recorded, and re-sends its operations to a new session after a server restart.
    Stream {
        /// The execution asking (producer or consumer).
        execution: ExecutionId,
        /// The operation.
        op: Json,
    },
    /// An input operation (`coflux_core::model::InputOp` as JSON: `submit`, `wait`, `get` or
    /// `cancel`) of a running execution, answered with [`ReplyBody::Input`] (a wait once the
    /// input is answered, dismissed or cancelled).
    Input {
        /// The execution asking.
        execution: ExecutionId,
        /// The operation.
        op: Json,
    },
    /// Cancel an execution and its descendants.
    Cancel {
        /// The execution to cancel.
        execution: ExecutionId,
        /// The execution asking (must be assigned to this session).
        from: ExecutionId,
    },
}

/// A log record from an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The execution that logged.
    pub execution: ExecutionId,
    /// Unix milliseconds.
    pub timestamp_ms: u64,
    /// 0 debug, 1 stdout, 2 info, 3 stderr, 4 warning, 5 error.
    pub level: u8,
    /// The message template (`{name}` placeholders).
    pub template: Option<String>,
    /// `BTreeMap<String, Value>` as JSON.
    pub values: Json,
}

/// A metric definition or point of an execution (`cf.Metric`, `cf.progress`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetricEntry {
    /// A metric's definition (before its first point; a later one replaces it).
    Define {
        /// The execution.
        execution: ExecutionId,
        /// The metric's key.
        key: String,
        /// `coflux_core::sdk::MetricDefinition` as JSON.
        definition: Json,
    },
    /// A point.
    Point {
        /// The execution.
        execution: ExecutionId,
        /// The metric's key.
        key: String,
        /// The value.
        value: f64,
        /// The x-axis position (seconds since the execution started, unless the code gave one).
        at: f64,
        /// Unix milliseconds when the agent received it.
        timestamp_ms: u64,
    },
}

impl MetricEntry {
    /// The execution it is about.
    pub fn execution(&self) -> ExecutionId {
        match self {
            Self::Define { execution, .. } | Self::Point { execution, .. } => *execution,
        }
    }
}

/// Agent → server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AgentFrame {
    /// Opens (or resumes) a session.
    Hello(Hello),
    /// An assigned execution started.
    Started {
        /// The execution.
        execution: ExecutionId,
    },
    /// How an assigned execution ended (`ExecutionResult` as JSON); acknowledged with
    /// [`ServerFrame::Recorded`] once committed.
    Result {
        /// The execution.
        execution: ExecutionId,
        /// The result.
        result: Json,
    },
    /// An assigned execution suspended itself (it no longer runs here): a new attempt of its
    /// step runs after `execute_after` (unix ms), once `dependencies` and `inputs` (all, or
    /// `any` one) have finished. Acknowledged with [`ServerFrame::Recorded`] like a result.
    Suspended {
        /// The execution.
        execution: ExecutionId,
        /// Not before this time.
        execute_after: Option<i64>,
        /// Executions to wait for first.
        dependencies: Vec<ExecutionId>,
        /// Inputs of the run to wait for first (to be answered, dismissed or cancelled).
        inputs: Vec<InputId>,
        /// Whether one of them finishing is enough.
        any: bool,
    },
    /// A request.
    Request {
        /// Chosen by the agent, echoed in the reply.
        id: u64,
        /// What is asked.
        request: AgentRequest,
    },
    /// Log records.
    Logs(Vec<LogEntry>),
    /// Metric definitions and points, in the order they were reported.
    Metrics(Vec<MetricEntry>),
    /// An assigned execution started (`true`) or stopped (`false`) waiting for others: while
    /// it waits it does not count against the agent's capacity.
    Waiting {
        /// The execution.
        execution: ExecutionId,
        /// Whether it waits.
        waiting: bool,
    },
    /// The executions the agent is running (sent periodically).
    Heartbeat {
        /// Running executions.
        executing: Vec<ExecutionId>,
    },
    /// The agent takes no new work (it is shutting down).
    Draining,
}

/// An error answer to a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// A stable code.
    pub code: String,
    /// A human-readable message.
    pub message: String,
}

/// A successful answer to a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ReplyBody {
    /// The child's execution id.
    Submitted(ExecutionId),
    /// The final result (`ExecutionResult` as JSON).
    Result(Json),
    /// The cancellation was accepted.
    Cancelled,
    /// The checkpoint change is committed.
    Checkpointed,
    /// The answer to a stream operation (`coflux_core::model::StreamReply` as JSON).
    Stream(Json),
    /// The input as it stands after an input operation (`coflux_core::model::InputRecord`).
    Input(Json),
}

/// Server → agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The session is open.
    Welcome {
        /// The session token (present it in `Hello.session` to resume).
        session: String,
        /// Executions the server considers assigned to this session.
        in_flight: Vec<ExecutionId>,
    },
    /// Run an execution.
    Execute {
        /// The execution.
        execution: ExecutionId,
        /// The target.
        target: TargetRef,
        /// `Vec<Value>` as JSON.
        arguments: Json,
        /// Kill it after this long.
        timeout_ms: Option<u64>,
        /// `BTreeMap<String, Value>` as JSON: its step's checkpoint state.
        checkpoints: Json,
        /// `Option<StreamDefaults>` as JSON: the call site's stream settings.
        streams: Json,
    },
    /// Stop an execution (its result is no longer wanted).
    Abort {
        /// The execution.
        execution: ExecutionId,
    },
    /// The answer to a request.
    Reply {
        /// The request's id.
        id: u64,
        /// The answer.
        result: Result<ReplyBody, WireError>,
    },
    /// The final result of a child submitted with `wait` (`ExecutionResult` as JSON). Sent on
    /// the connection that submitted it; lost if that connection drops (ask with `Wait` then).
    Resolved {
        /// The child.
        execution: ExecutionId,
        /// Its final result.
        result: Json,
    },
    /// A reported result is committed (or was already recorded), so the agent may forget it.
    Recorded {
        /// The execution.
        execution: ExecutionId,
    },
    /// Stop taking work (the environment was archived or the server is shutting down).
    Stop {
        /// Why.
        reason: String,
    },
    /// The cluster's live nodes (their advertise URLs, `http(s)://host:port`), sent by a node of
    /// a cluster right after `Welcome`: the agent keeps them as fallbacks after the addresses it
    /// was configured with, for when its node is unreachable. A single node sends none. Added
    /// as the last variant without a version bump: an older agent logs it as malformed and
    /// goes on; an older server never sends it.
    Nodes {
        /// The live nodes' URLs.
        urls: Vec<String>,
    },
}

/// Why the server closes a connection (sent as the WebSocket close reason, code 4000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The first frame was not a valid `Hello`.
    HelloExpected,
    /// The agent speaks another protocol version.
    VersionMismatch,
    /// No such project.
    ProjectNotFound,
    /// No such environment (or it is archived).
    EnvironmentNotFound,
    /// The session to resume does not exist (expired or the server restarted).
    SessionInvalid,
    /// The agent reported on an execution not assigned to its session.
    ExecutionInvalid,
    /// A frame could not be decoded, or was too large.
    MalformedFrame,
    /// Another connection resumed this session.
    Replaced,
    /// The agent's token does not allow this project or environment.
    Forbidden,
    /// Another node of the cluster owns the project: the agent connects there (the close
    /// frame's description is `moved <url>`, see [`moved_description`]).
    Moved,
    /// The project cannot be served now (e.g. its ownership is moving): try again.
    Unavailable,
}

/// The close description telling an agent to connect to the node at `url` instead.
pub fn moved_description(url: &str) -> String {
    format!("moved {url}")
}

/// The node URL of a `moved` close description.
pub fn moved_target(description: &str) -> Option<&str> {
    description
        .strip_prefix("moved ")
        .map(str::trim)
        .filter(|u| !u.is_empty())
}

impl CloseReason {
    /// The reason string sent in the close frame.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HelloExpected => "hello_expected",
            Self::VersionMismatch => "version_mismatch",
            Self::ProjectNotFound => "project_not_found",
            Self::EnvironmentNotFound => "environment_not_found",
            Self::SessionInvalid => "session_invalid",
            Self::ExecutionInvalid => "execution_invalid",
            Self::MalformedFrame => "malformed_frame",
            Self::Replaced => "replaced",
            Self::Forbidden => "forbidden",
            Self::Moved => "moved",
            Self::Unavailable => "unavailable",
        }
    }

    /// Parses a close reason; `None` for reasons this version does not know.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::HelloExpected,
            Self::VersionMismatch,
            Self::ProjectNotFound,
            Self::EnvironmentNotFound,
            Self::SessionInvalid,
            Self::ExecutionInvalid,
            Self::MalformedFrame,
            Self::Replaced,
            Self::Forbidden,
            Self::Unavailable,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
        .or_else(|| moved_target(text).map(|_| Self::Moved))
    }

    /// Whether an agent should give up instead of reconnecting.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            Self::VersionMismatch
                | Self::ProjectNotFound
                | Self::EnvironmentNotFound
                | Self::Forbidden
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::{self, CodecError, MAX_FRAME_BYTES};
    use super::*;
    use crate::model::{ExecutionResult, StepOptions, Value};

    fn execution() -> ExecutionId {
        "R1:2:1".parse().unwrap()
    }

    #[test]
    fn protocol_agent_frames_round_trip_through_the_codec() {
        let frames = vec![
            AgentFrame::Hello(Hello {
                version: PROTOCOL_VERSION,
                project: "acme".into(),
                environment: "production".into(),
                session: Some("abc".into()),
                provides: vec![("gpu".into(), vec!["a100".into()])],
                accepts: vec![],
                concurrency: 4,
                targets: vec![DeclaredTarget {
                    target: TargetRef::new("flows", "main"),
                    kind: TargetKind::Workflow,
                }],
                claims: vec![execution()],
                previous_session: Some("a1.b2".into()),
            }),
            AgentFrame::Result {
                execution: execution(),
                result: Json::encode(&ExecutionResult::Value {
                    value: Value::raw(serde_json::json!({"type": "dict", "items": ["a", 1]})),
                }),
            },
            AgentFrame::Request {
                id: 7,
                request: AgentRequest::Submit {
                    parent: execution(),
                    call: 1,
                    target: TargetRef::new("flows", "add"),
                    kind: TargetKind::Task,
                    arguments: Json::encode(&vec![Value::raw(serde_json::json!(1))]),
                    options: Json::encode(&StepOptions::default()),
                    wait: true,
                },
            },
            AgentFrame::Heartbeat {
                executing: vec![execution()],
            },
            AgentFrame::Metrics(vec![
                MetricEntry::Define {
                    execution: execution(),
                    key: "progress".into(),
                    definition: Json(r#"{"progress":true,"upper":10.0}"#.into()),
                },
                MetricEntry::Point {
                    execution: execution(),
                    key: "progress".into(),
                    value: 3.0,
                    at: 0.25,
                    timestamp_ms: 1_700_000_000_000,
                },
            ]),
            AgentFrame::Draining,
        ];
        for frame in frames {
            let bytes = codec::encode(&frame).unwrap();
            let back: AgentFrame = codec::decode(&bytes).unwrap();
            assert_eq!(back, frame);
        }
        let reply = ServerFrame::Reply {
            id: 3,
            result: Err(WireError {
                code: "not_found".into(),
                message: "no".into(),
            }),
        };
        let back: ServerFrame = codec::decode(&codec::encode(&reply).unwrap()).unwrap();
        assert_eq!(back, reply);
    }

    #[test]
    fn protocol_agent_rejects_garbage_and_oversized_frames() {
        let err = codec::decode::<AgentFrame>(&[0xff, 0xff, 0xff, 0xff, 0x01]).unwrap_err();
        assert_eq!(err.code(), "malformed_frame");
        let big = vec![0u8; MAX_FRAME_BYTES + 1];
        assert!(matches!(
            codec::decode::<AgentFrame>(&big),
            Err(CodecError::TooLarge(_))
        ));
        // Trailing bytes after a valid frame are rejected too.
        let mut bytes = codec::encode(&AgentFrame::Draining).unwrap();
        bytes.push(0);
        assert!(codec::decode::<AgentFrame>(&bytes).is_err());
    }

    #[test]
    fn protocol_agent_close_reasons_parse_back() {
        for reason in [CloseReason::SessionInvalid, CloseReason::ExecutionInvalid] {
            assert_eq!(CloseReason::parse(reason.as_str()), Some(reason));
        }
        assert!(CloseReason::ProjectNotFound.is_fatal());
        assert!(!CloseReason::SessionInvalid.is_fatal());
    }

    #[test]
    fn protocol_agent_moved_close_names_the_owner_and_is_not_fatal() {
        let description = moved_description("http://10.0.0.2:7777");
        assert_eq!(moved_target(&description), Some("http://10.0.0.2:7777"));
        assert_eq!(CloseReason::parse(&description), Some(CloseReason::Moved));
        assert_eq!(moved_target("moved "), None);
        assert_eq!(moved_target("forbidden"), None);
        assert!(!CloseReason::Moved.is_fatal());
        assert!(!CloseReason::Unavailable.is_fatal());
        assert_eq!(
            CloseReason::parse("unavailable"),
            Some(CloseReason::Unavailable)
        );
    }
}

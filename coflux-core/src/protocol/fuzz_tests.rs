//! Property-based fuzzing of everything that decodes input from outside the process: agent
//! frames, executor protocol lines, values, manifests, and the id, name, path, key and cron
//! validators. Each target feeds arbitrary input and mutations of valid input, and asserts the
//! decoder answers (`Ok` or `Err`) without panicking, plus round trips where they exist.
//!
//! `cargo test -p coflux-core fuzz_` runs them with 256 cases each (CI); a longer session:
//! `PROPTEST_CASES=100000 cargo test --release -p coflux-core fuzz_`. Failing inputs are kept
//! in `proptest-regressions/` next to this file and replayed first on every run (commit them).

use proptest::prelude::*;
use serde_json::{Value as Json, json};

use super::agent::{AgentFrame, AgentRequest, Hello, Json as WireJson, LogEntry, ServerFrame};
use super::codec;
use super::executor::{Manifest, WireValue, parse_adapter_line, parse_worker_line};
use crate::model::asset::validate_path;
use crate::model::{
    EnvironmentName, ExecutionId, ProjectName, RunId, StepId, TargetKind, TargetRef,
};

/// Valid agent frames, encoded: the seeds that mutations start from.
fn valid_frames() -> Vec<Vec<u8>> {
    let execution: ExecutionId = "R1:2:1".parse().unwrap();
    let frames = [
        AgentFrame::Hello(Hello {
            version: super::agent::PROTOCOL_VERSION,
            project: "acme".into(),
            environment: "production".into(),
            session: Some("token".into()),
            provides: vec![("gpu".into(), vec!["a100".into()])],
            accepts: vec![],
            concurrency: 4,
            targets: vec![],
            claims: vec![execution],
            previous_session: None,
        }),
        AgentFrame::Request {
            id: 3,
            request: AgentRequest::Submit {
                parent: execution,
                call: 2,
                target: TargetRef::new("flows", "add"),
                kind: TargetKind::Task,
                arguments: WireJson("[1,2]".into()),
                options: WireJson("{}".into()),
                wait: true,
            },
        },
        AgentFrame::Logs(vec![LogEntry {
            execution,
            timestamp_ms: 1,
            level: 2,
            template: Some("hi {x}".into()),
            values: WireJson(r#"{"x":1}"#.into()),
        }]),
        AgentFrame::Result {
            execution,
            result: WireJson(r#"{"type":"value","value":{"data":1}}"#.into()),
        },
    ];
    frames.iter().map(|f| codec::encode(f).unwrap()).collect()
}

/// Valid executor protocol lines (coflux 0.12.0), the seeds for line mutations.
const LINES: &[&str] = &[
    r#"{"method":"ready","params":{"version":"0.12"}}"#,
    r#"{"method":"log","params":{"execution_id":"E1","level":2,"template":"starting with {n}","values":{"n":{"type":"inline","format":"json","value":5,"references":[]}}}}"#,
    r#"{"method":"execution_result","params":{"execution_id":"E1","result":{"type":"inline","format":"json","value":{"type":"dict","items":["x",6]},"references":[]}}}"#,
    r#"{"id":4,"method":"submit_execution","params":{"execution_id":"E1","module":"m","target":"t","type":"task","arguments":[{"type":"inline","format":"json","value":1,"references":[]}]}}"#,
    r#"{"method":"execute","params":{"arguments":[{"format":"json","references":[],"type":"inline","value":5}],"execution_id":"R1:1:1","module":"myflows","target":"double"}}"#,
    r#"{"id":1,"result":{"type":"inline","format":"json","value":2,"references":[]}}"#,
];

/// A valid manifest line as `python -m coflux discover` prints it.
const MANIFEST: &str = r#"{"targets":[{"module":"flows","name":"add","type":"task","parameters":[{"name":"a","annotation":"<class 'int'>","default":null}],"cache":{"params":true},"retries":{"limit":2},"memo":[0],"requires":{"gpu":["true"]}},{"module":"flows","name":"main","type":"workflow","parameters":[],"wait_for":[0],"defer":{"params":[1]},"delay":500,"timeout":60000,"recurrent":true}]}"#;

/// A byte edit: (position seed, operation, byte).
type Edit = (usize, u8, u8);

/// Applies edits (overwrite, insert, delete, truncate) to bytes.
fn mutate(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for &(at, op, byte) in edits {
        let len = bytes.len();
        match op % 4 {
            0 if len > 0 => bytes[at % len] = byte,
            1 => bytes.insert(at % (len + 1), byte),
            2 if len > 0 => {
                bytes.remove(at % len);
            }
            3 => bytes.truncate(at % (len + 1)),
            _ => {}
        }
    }
    bytes
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8)
}

/// Arbitrary JSON, nested a few levels.
fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::from),
        any::<i64>().prop_map(Json::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)),
        "[a-z\"\\\\{}\\[\\]:,]{0,12}".prop_map(Json::from),
        prop_oneof![
            Just("type"),
            Just("dict"),
            Just("set"),
            Just("tuple"),
            Just("ref")
        ]
        .prop_map(Json::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("type".to_string()),
                    Just("items".to_string()),
                    Just("index".to_string()),
                    Just("value".to_string()),
                    Just("format".to_string()),
                    Just("references".to_string()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn fuzz_agent_frame_decoder_survives_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = codec::decode::<AgentFrame>(&bytes);
        let _ = codec::decode::<ServerFrame>(&bytes);
    }

    #[test]
    fn fuzz_agent_frame_decoder_survives_mutated_frames(seed in 0usize..4, edits in edits()) {
        let frames = valid_frames();
        let bytes = mutate(frames[seed % frames.len()].clone(), &edits);
        if let Ok(frame) = codec::decode::<AgentFrame>(&bytes) {
            // What decodes encodes back to something that decodes to the same frame.
            let again = codec::encode(&frame).unwrap();
            prop_assert_eq!(codec::decode::<AgentFrame>(&again).unwrap(), frame);
        }
    }

    #[test]
    fn fuzz_executor_lines_survive_arbitrary_text(line in "\\PC{0,300}") {
        let _ = parse_adapter_line(&line);
        let _ = parse_worker_line(&line);
    }

    #[test]
    fn fuzz_executor_lines_survive_mutated_lines(seed in 0usize..LINES.len(), edits in edits()) {
        let bytes = mutate(LINES[seed].as_bytes().to_vec(), &edits);
        let line = String::from_utf8_lossy(&bytes);
        let _ = parse_adapter_line(&line);
        let _ = parse_worker_line(&line);
    }

    #[test]
    fn fuzz_executor_lines_survive_arbitrary_params(method in prop_oneof![
        Just("execute"), Just("log"), Just("execution_result"), Just("submit_execution"),
        Just("checkpoint_update"), Just("define_metric"), Just("metric"), Just("ready")
    ], id in proptest::option::of(any::<u64>()), params in json_value()) {
        let mut line = json!({"method": method, "params": params});
        if let Some(id) = id {
            line["id"] = json!(id);
        }
        let _ = parse_adapter_line(&line.to_string());
        let _ = parse_worker_line(&line.to_string());
    }

    #[test]
    fn fuzz_value_decoders_survive_arbitrary_json(data in json_value(), references in json_value()) {
        let _ = crate::sdk::decode_json(data.clone());
        let wire = json!({"type": "inline", "format": "json", "value": data, "references": references});
        if let Ok(value) = serde_json::from_value::<WireValue>(wire) {
            let stored = futures::executor::block_on(super::executor::value_from_wire(
                value,
                |_| async { Ok::<_, std::io::Error>(("0".repeat(64), 0)) },
            ));
            let _ = stored;
        }
    }

    #[test]
    fn fuzz_manifest_parsing_survives_mutations(edits in edits(), noise in "\\PC{0,40}") {
        let bytes = mutate(MANIFEST.as_bytes().to_vec(), &edits);
        let text = format!("{noise}\n{}", String::from_utf8_lossy(&bytes));
        if let Some(Ok(manifest)) = Manifest::from_discovery_output(&text) {
            let _ = manifest.into_definitions();
        }
    }

    #[test]
    fn fuzz_validators_survive_arbitrary_text(text in "\\PC{0,80}") {
        let _ = text.parse::<RunId>();
        let _ = text.parse::<StepId>();
        let _ = text.parse::<ExecutionId>();
        let _ = EnvironmentName::new(&text);
        let _ = ProjectName::new(&text);
        let _ = crate::model::CronSpec::parse(&text);
        if validate_path(&text).is_ok() {
            prop_assert!(!text.starts_with('/'));
            prop_assert!(text.split('/').all(|c| !c.is_empty() && c != "." && c != ".."));
        }
    }

    #[test]
    fn fuzz_ids_round_trip(run in 1u64..1_000_000_000, step in 1u32..100_000, attempt in 1u32..1000) {
        let id = StepId { run: RunId(run), number: step }.execution(attempt);
        prop_assert_eq!(id.to_string().parse::<ExecutionId>().unwrap(), id);
        prop_assert_eq!(id.step.to_string().parse::<StepId>().unwrap(), id.step);
    }
}

#[test]
fn fuzz_known_nasty_inputs_are_refused_cleanly() {
    for line in [
        "",
        "{",
        "null",
        "[]",
        r#"{"method":null}"#,
        r#"{"id":-1,"method":"execute","params":{}}"#,
        &format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
        &format!(r#"{{"method":"log","params":{}}}"#, "{\"a\":".repeat(5_000)),
    ] {
        assert!(
            parse_adapter_line(line).is_err(),
            "{}",
            &line[..line.len().min(60)]
        );
    }
    for id in [
        "R0",
        "R1:0",
        "R1:1:0",
        "R:1:1",
        "R1:1:1:1",
        "Rz",
        "R1:-1",
        "R99999999999999999999",
    ] {
        assert!(id.parse::<ExecutionId>().is_err(), "{id}");
    }
    for path in [
        "../x",
        "a/../b",
        "/etc/passwd",
        "a//b",
        "a\\b",
        "a\u{0}b",
        ".",
    ] {
        assert!(validate_path(path).is_err(), "{path:?}");
    }
}

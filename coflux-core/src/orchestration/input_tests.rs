//! Inputs through the deterministic [`Harness`]: deduplication by key, a wait answered by a
//! response or a dismissal, schema checks, and a pending input kept across a restart.

use serde_json::{Value as Json, json};

use super::harness::Harness;
use super::messages::{Envelope, Reply, ReplyTo, RunMsg};
use crate::model::{
    ExecutionId, InputId, InputOp, InputRecord, InputSpec, InputState, StepOptions, TargetRef,
};
use crate::store::Durability;
use crate::store::sqlite::SqliteStore;

fn setup(dir: &tempfile::TempDir) -> (Harness, ExecutionId) {
    let store = SqliteStore::open(&dir.path().join("p.sqlite"), Durability::Normal).unwrap();
    let mut h = Harness::new(store).unwrap();
    let prod = h.create_environment("production", None).unwrap().id;
    let wf = TargetRef::new("app", "main");
    h.connect_worker(prod, 1, std::slice::from_ref(&wf), 100);
    let (_, root) = h
        .submit("production", &wf, vec![], StepOptions::default())
        .unwrap();
    (h, root)
}

fn send(h: &mut Harness, op: InputOp) -> ReplyTo {
    let run = op.run();
    h.request_later(|reply| Envelope::Run(run, RunMsg::Input { op, reply }))
}

fn answer(h: &mut Harness, to: ReplyTo) -> Option<Result<InputRecord, String>> {
    match h.reply(to)? {
        Reply::Input(r) => Some(r.map_err(|e| e.code().to_string())),
        other => panic!("unexpected reply {other:?}"),
    }
}

fn now(h: &mut Harness, op: InputOp) -> Result<InputRecord, String> {
    let to = send(h, op);
    answer(h, to).expect("answered at once")
}

fn ask(h: &mut Harness, execution: ExecutionId, key: &str, schema: Option<Json>) -> InputId {
    let spec = InputSpec {
        template: "Deploy {service}?".into(),
        key: key.into(),
        schema,
        ..InputSpec::default()
    };
    now(h, InputOp::Submit { execution, spec }).unwrap().id
}

#[test]
fn input_wait_is_answered_by_a_response_and_the_same_key_gives_the_same_input() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, root) = setup(&dir);
    let schema = json!({"type": "object", "required": ["ok"]});
    let input = ask(&mut h, root, "k1", Some(schema));
    assert_eq!(ask(&mut h, root, "k1", None), input);
    assert_ne!(ask(&mut h, root, "k2", None), input);
    let waiting = send(&mut h, InputOp::Wait { input });
    assert!(answer(&mut h, waiting).is_none());
    let wrong = InputOp::Respond {
        input,
        value: json!({"nope": 1}),
    };
    assert_eq!(now(&mut h, wrong).unwrap_err(), "invalid_request");
    let right = InputOp::Respond {
        input,
        value: json!({"ok": true}),
    };
    now(&mut h, right).unwrap();
    let done = answer(&mut h, waiting).unwrap().unwrap();
    assert!(
        matches!(done.state, InputState::Responded { ref value, .. } if value == &json!({"ok": true}))
    );
    // A final input is not answered twice.
    assert_eq!(
        now(&mut h, InputOp::Dismiss { input }).unwrap_err(),
        "input_rejected"
    );
}

#[test]
fn input_pending_is_cancelled_with_the_execution_that_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, root) = setup(&dir);
    let input = ask(&mut h, root, "k", None);
    let waiting = send(&mut h, InputOp::Wait { input });
    h.cancel(root);
    let done = answer(&mut h, waiting).unwrap().unwrap();
    assert!(
        matches!(done.state, InputState::Cancelled { .. }),
        "{done:?}"
    );
    let mut h = h.restart().unwrap();
    let stored = now(&mut h, InputOp::Get { input }).unwrap();
    assert!(matches!(stored.state, InputState::Cancelled { .. }));
}

#[test]
fn input_pending_survives_a_restart_and_can_be_dismissed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, root) = setup(&dir);
    let input = ask(&mut h, root, "k", None);
    let mut h = h.restart().unwrap();
    let pending = now(&mut h, InputOp::Get { input }).unwrap();
    assert_eq!(pending.state, InputState::Pending);
    assert_eq!(pending.spec.template, "Deploy {service}?");
    let waiting = send(&mut h, InputOp::Wait { input });
    now(&mut h, InputOp::Dismiss { input }).unwrap();
    let done = answer(&mut h, waiting).unwrap().unwrap();
    assert!(matches!(done.state, InputState::Dismissed { .. }));
    let missing = InputId {
        run: input.run,
        number: 9,
    };
    assert_eq!(
        now(&mut h, InputOp::Get { input: missing }).unwrap_err(),
        "input_not_found"
    );
}

//! Inputs through the deterministic [`Harness`]: deduplication by key, a wait answered by a
//! response or a dismissal, schema checks, a pending input kept across a restart, and a step
//! suspended on an input held until it is final (also across a restart).

use serde_json::{Value as Json, json};

use super::harness::Harness;
use super::messages::{Envelope, Reply, ReplyTo, RunMsg};
use crate::model::{
    Dependencies, ExecutionId, InputId, InputOp, InputRecord, InputSpec, InputState, StepOptions,
    TargetRef,
};
use crate::store::Durability;
use crate::store::sqlite::SqliteStore;

fn wf() -> TargetRef {
    TargetRef::new("app", "main")
}

fn setup(dir: &tempfile::TempDir) -> (Harness, ExecutionId) {
    let store = SqliteStore::open(&dir.path().join("p.sqlite"), Durability::Normal).unwrap();
    let mut h = Harness::new(store).unwrap();
    let prod = h.create_environment("production", None).unwrap().id;
    let wf = wf();
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

fn assigned(h: &mut Harness) -> Vec<ExecutionId> {
    h.take_assigned().iter().map(|a| a.execution).collect()
}

/// The execution asks for an input and suspends waiting for it (as `cf.Prompt` does).
fn suspend_on_input(h: &mut Harness, execution: ExecutionId) -> InputId {
    let input = ask(h, execution, "approval", None);
    h.suspend(execution, None, Dependencies::any_of(vec![], vec![input]))
        .unwrap();
    input
}

/// The resumed attempt asks again (same key: same input) and gets its final state at once.
fn resumed_sees(h: &mut Harness, resumed: ExecutionId, input: InputId) -> InputState {
    assert_eq!(ask(h, resumed, "approval", None), input);
    let to = send(h, InputOp::Wait { input });
    answer(h, to)
        .expect("final: answered at once")
        .unwrap()
        .state
}

#[test]
fn input_a_step_suspended_on_it_runs_again_once_it_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, root) = setup(&dir);
    assert_eq!(assigned(&mut h), vec![root]);
    let input = suspend_on_input(&mut h, root);
    // The execution left its worker; its step is held while nobody answers.
    h.advance(60_000);
    assert!(assigned(&mut h).is_empty());
    let answer_value = json!({"approved": true});
    now(
        &mut h,
        InputOp::Respond {
            input,
            value: answer_value.clone(),
        },
    )
    .unwrap();
    let resumed = root.step.execution(2);
    assert_eq!(assigned(&mut h), vec![resumed]);
    assert!(
        matches!(resumed_sees(&mut h, resumed, input), InputState::Responded { value, .. } if value == answer_value)
    );
}

#[test]
fn input_a_step_suspended_on_it_runs_again_once_it_is_dismissed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, root) = setup(&dir);
    assigned(&mut h);
    let input = suspend_on_input(&mut h, root);
    assert!(assigned(&mut h).is_empty());
    now(&mut h, InputOp::Dismiss { input }).unwrap();
    let resumed = root.step.execution(2);
    assert_eq!(assigned(&mut h), vec![resumed]);
    assert!(matches!(
        resumed_sees(&mut h, resumed, input),
        InputState::Dismissed { .. }
    ));
}

#[test]
fn input_a_step_suspended_on_it_stays_held_across_a_restart_and_an_answer_wakes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, root) = setup(&dir);
    assigned(&mut h);
    let input = suspend_on_input(&mut h, root);
    let queued = |h: &Harness| {
        let stored = h.store().load().unwrap();
        let prod = stored.environments[0].id;
        let tickets = super::run::RunCore::queued_tickets(&stored.active_runs[0], prod);
        tickets.iter().map(|t| t.execution).collect::<Vec<_>>()
    };
    // A re-created environment actor does not queue it either.
    assert!(queued(&h).is_empty());
    let mut h = h.restart().unwrap();
    let prod = h.store().load().unwrap().environments[0].id;
    let worker = h.connect_worker(prod, 2, &[wf()], 100);
    // Rebuilt from the store: still held.
    assert!(assigned(&mut h).is_empty());
    h.disconnect_worker(prod, worker);
    now(
        &mut h,
        InputOp::Respond {
            input,
            value: json!("yes"),
        },
    )
    .unwrap();
    let resumed = root.step.execution(2);
    assert_eq!(queued(&h), vec![resumed], "answered: queued");
    h.connect_worker(prod, 3, &[wf()], 100);
    assert_eq!(assigned(&mut h), vec![resumed]);
    assert!(matches!(
        resumed_sees(&mut h, resumed, input),
        InputState::Responded { .. }
    ));
}

#[test]
fn input_of_another_run_or_already_final_does_not_hold_a_suspended_step() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, root) = setup(&dir);
    assigned(&mut h);
    let input = ask(&mut h, root, "done", None);
    now(&mut h, InputOp::Dismiss { input }).unwrap();
    // Already final: the step runs again at once.
    h.suspend(root, None, Dependencies::any_of(vec![], vec![input]))
        .unwrap();
    let second = root.step.execution(2);
    assert_eq!(assigned(&mut h), vec![second]);
    // An input of another run is waited for in the process, not by holding the step.
    let (_, other) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    assigned(&mut h);
    let foreign = ask(&mut h, other, "elsewhere", None);
    h.suspend(second, None, Dependencies::any_of(vec![], vec![foreign]))
        .unwrap();
    assert_eq!(assigned(&mut h), vec![root.step.execution(3)]);
}

#[test]
fn input_a_step_suspended_on_it_cancelled_cancels_the_input_too() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, root) = setup(&dir);
    assigned(&mut h);
    let input = suspend_on_input(&mut h, root);
    // Cancelling the suspended execution cancels the held one that replaced it, and nobody
    // will wait for the input any more.
    h.cancel(root);
    let waiting = send(&mut h, InputOp::Wait { input });
    let done = answer(&mut h, waiting).expect("final").unwrap();
    assert!(
        matches!(done.state, InputState::Cancelled { .. }),
        "{done:?}"
    );
    assert!(assigned(&mut h).is_empty());
}

//! Orchestration semantics beyond calls and results: dependencies (`wait_for`), suspension,
//! recurrence, deferring, run-level memo and spawned runs, driven through the [`Harness`].

use serde_json::json;

use super::harness::Harness;
use crate::model::{
    DeferConfig, EnvironmentId, ExecutionId, ExecutionResult, ParamSelection, Reference,
    ResultKind, StepOptions, TargetKind, TargetRef, Value,
};
use crate::store::Durability;
use crate::store::sqlite::SqliteStore;

fn wf() -> TargetRef {
    TargetRef::new("app", "main")
}
fn task() -> TargetRef {
    TargetRef::new("app", "work")
}
fn value(data: serde_json::Value) -> ExecutionResult {
    ExecutionResult::Value {
        value: Value::raw(data),
    }
}
/// A value holding a handle to `execution` (as the SDKs pass `Execution` objects).
fn handle(execution: ExecutionId) -> Value {
    Value::Raw {
        data: json!({"type": "ref", "index": 0}),
        references: vec![Reference::Execution {
            execution,
            module: "app".into(),
            target: "work".into(),
        }],
    }
}

struct Fixture {
    h: Harness,
    _dir: tempfile::TempDir,
    prod: EnvironmentId,
}

fn setup() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("p.sqlite"), Durability::Normal).unwrap();
    let mut h = Harness::new(store).unwrap();
    let prod = h.create_environment("production", None).unwrap().id;
    h.connect_worker(prod, 1, &[wf(), task()], 100);
    Fixture { h, _dir: dir, prod }
}

fn assigned(h: &mut Harness) -> Vec<ExecutionId> {
    h.take_assigned().iter().map(|a| a.execution).collect()
}

fn start(h: &mut Harness, options: StepOptions) -> ExecutionId {
    let (_, root) = h.submit("production", &wf(), vec![], options).unwrap();
    assert_eq!(assigned(h), vec![root]);
    root
}

#[test]
fn wait_for_holds_a_step_until_the_executions_in_its_arguments_finish() {
    let Fixture { mut h, .. } = setup();
    let root = start(&mut h, StepOptions::default());
    let first = h
        .call(root, &task(), vec![], StepOptions::default())
        .unwrap();
    let inner = h
        .call(root, &task(), vec![], StepOptions::default())
        .unwrap();
    assert_eq!(assigned(&mut h), vec![first, inner]);
    let waits = StepOptions {
        wait_for: vec![0],
        ..Default::default()
    };
    let held = h.call(root, &task(), vec![handle(first)], waits).unwrap();
    assert!(
        assigned(&mut h).is_empty(),
        "held while its dependency runs"
    );
    // `first` returns a handle to `inner`: that is waited for too.
    h.report(
        first,
        ExecutionResult::Value {
            value: handle(inner),
        },
    );
    assert!(
        assigned(&mut h).is_empty(),
        "held while the referenced execution runs"
    );
    h.complete(inner, json!(1));
    assert_eq!(assigned(&mut h), vec![held]);
}

#[test]
fn a_held_step_stays_held_across_a_restart() {
    let Fixture { mut h, prod, .. } = setup();
    let root = start(&mut h, StepOptions::default());
    let first = h
        .call(root, &task(), vec![], StepOptions::default())
        .unwrap();
    assert_eq!(assigned(&mut h), vec![first]);
    let waits = StepOptions {
        wait_for: vec![0],
        ..Default::default()
    };
    let held = h.call(root, &task(), vec![handle(first)], waits).unwrap();
    // The server restarts; the worker reconnects and claims what it still runs.
    let mut h = h.restart_with_grace(60_000).unwrap();
    h.connect_worker(prod, 1, &[wf(), task()], 100);
    assert_eq!(h.claim(prod, 1, vec![root, first]), vec![root, first]);
    assert!(assigned(&mut h).is_empty(), "still held after the restart");
    h.complete(first, json!(1));
    assert_eq!(assigned(&mut h), vec![held]);
}

#[test]
fn a_suspended_execution_resumes_as_a_new_attempt_after_its_delay() {
    let Fixture { mut h, .. } = setup();
    let root = start(&mut h, StepOptions::default());
    let waiter = h.wait(root);
    let at = h.now() + 1_000;
    h.suspend(root, Some(at), vec![]).unwrap();
    let next = root.step.execution(2);
    let w1 = h.wait(root);
    assert_eq!(h.result_of(w1), None, "waiters follow the chain");
    assert!(
        h.aborted().contains(&root),
        "the suspended executor is stopped"
    );
    h.advance(999);
    assert!(assigned(&mut h).is_empty());
    h.advance(1);
    assert_eq!(assigned(&mut h), vec![next]);
    h.complete(next, json!("done"));
    assert_eq!(h.result_of(waiter), Some(value(json!("done"))));
    let snapshot = h.store().load_run(root.run()).unwrap().unwrap();
    assert_eq!(
        snapshot.executions[0]
            .result
            .as_ref()
            .map(|(r, _)| r.kind()),
        Some(ResultKind::Suspended)
    );
}

#[test]
fn a_suspended_select_resumes_once_every_handle_has_finished() {
    let Fixture { mut h, .. } = setup();
    let root = start(&mut h, StepOptions::default());
    let a = h
        .call(root, &task(), vec![], StepOptions::default())
        .unwrap();
    let b = h
        .call(root, &task(), vec![], StepOptions::default())
        .unwrap();
    assigned(&mut h);
    h.suspend(root, None, vec![a, b]).unwrap();
    h.complete(a, json!(1));
    assert!(assigned(&mut h).is_empty());
    h.complete(b, json!(2));
    assert_eq!(assigned(&mut h), vec![root.step.execution(2)]);
    // The resumed attempt reuses the children its predecessor submitted (memo on handles is
    // up to the SDK); suspending an execution that already ended changes nothing.
    h.suspend(root, None, vec![]).unwrap();
    assert!(assigned(&mut h).is_empty());
}

#[test]
fn a_recurrent_step_runs_again_after_its_delay_until_it_returns_a_value() {
    let Fixture { mut h, .. } = setup();
    let options = StepOptions {
        recurrent: true,
        delay_ms: Some(500),
        ..Default::default()
    };
    let (run, root) = h.submit("production", &wf(), vec![], options).unwrap();
    h.advance(500);
    assert_eq!(assigned(&mut h), vec![root]);
    let result = h.wait_run(run);
    h.complete(root, json!(null));
    h.advance(499);
    assert!(assigned(&mut h).is_empty());
    h.advance(1);
    let second = root.step.execution(2);
    assert_eq!(assigned(&mut h), vec![second]);
    h.complete(second, json!("stop"));
    assert_eq!(h.result_of(result), Some(value(json!("stop"))));
    let snapshot = h.store().load_run(run).unwrap().unwrap();
    let kinds: Vec<_> = snapshot
        .executions
        .iter()
        .map(|e| e.result.as_ref().map(|(r, _)| r.kind()))
        .collect();
    assert_eq!(
        kinds,
        vec![Some(ResultKind::Recurred), Some(ResultKind::Value)]
    );
}

#[test]
fn deferred_executions_with_the_same_key_collapse_into_the_latest() {
    let Fixture { mut h, .. } = setup();
    let root = start(&mut h, StepOptions::default());
    let deferred = StepOptions {
        defer: Some(DeferConfig {
            params: ParamSelection::All(true),
        }),
        delay_ms: Some(1_000),
        ..Default::default()
    };
    let arg = || vec![Value::raw(json!("k"))];
    let first = h.call(root, &task(), arg(), deferred.clone()).unwrap();
    let w1 = h.wait(first);
    h.advance(400);
    let second = h.call(root, &task(), arg(), deferred.clone()).unwrap();
    let other = h
        .call(root, &task(), vec![Value::raw(json!("other"))], deferred)
        .unwrap();
    h.advance(1_000);
    let ran = assigned(&mut h);
    assert!(ran.contains(&second) && ran.contains(&other), "{ran:?}");
    assert!(!ran.contains(&first));
    h.complete(second, json!(2));
    assert_eq!(
        h.result_of(w1),
        Some(value(json!(2))),
        "the deferred caller gets it"
    );
    let snapshot = h.store().load_run(root.run()).unwrap().unwrap();
    let first_result = snapshot.executions.iter().find(|e| e.id == first).unwrap();
    assert_eq!(
        first_result.result.as_ref().map(|(r, _)| r.clone()),
        Some(ExecutionResult::Deferred { successor: second })
    );
}

#[test]
fn a_memoising_workflow_memoises_its_calls() {
    let Fixture { mut h, .. } = setup();
    let root = start(
        &mut h,
        StepOptions {
            memo: Some(ParamSelection::All(true)),
            ..Default::default()
        },
    );
    let args = || vec![Value::raw(json!(7))];
    let a = h
        .call(root, &task(), args(), StepOptions::default())
        .unwrap();
    let b = h
        .call(root, &task(), args(), StepOptions::default())
        .unwrap();
    let c = h
        .call(
            root,
            &task(),
            vec![Value::raw(json!(8))],
            StepOptions::default(),
        )
        .unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn a_workflow_called_from_an_execution_runs_as_a_spawned_run_linked_to_it() {
    let Fixture { mut h, prod, .. } = setup();
    let root = start(&mut h, StepOptions::default());
    let spawned = h
        .call_kind(
            root,
            &wf(),
            TargetKind::Workflow,
            vec![],
            StepOptions::default(),
        )
        .unwrap();
    assert_ne!(spawned.run(), root.run(), "a run of its own");
    assert_eq!(assigned(&mut h), vec![spawned]);
    let snapshot = h.store().load_run(spawned.run()).unwrap().unwrap();
    assert_eq!(snapshot.run.parent_execution, Some(root));
    assert_eq!(snapshot.run.environment, prod);
    let w = h.wait(spawned);
    h.complete(spawned, json!("inner"));
    assert_eq!(h.result_of(w), Some(value(json!("inner"))));
    let parent = h.store().load_run(root.run()).unwrap().unwrap();
    assert!(parent.children.contains(&(root, spawned)));
}

#[test]
fn cancelling_an_execution_cancels_the_runs_it_spawned() {
    let Fixture { mut h, .. } = setup();
    let root = start(&mut h, StepOptions::default());
    let spawned = h
        .call_kind(
            root,
            &wf(),
            TargetKind::Workflow,
            vec![],
            StepOptions::default(),
        )
        .unwrap();
    let grandchild = h
        .call(spawned, &task(), vec![], StepOptions::default())
        .unwrap();
    assert_eq!(assigned(&mut h), vec![spawned, grandchild]);
    let w = h.wait(grandchild);
    h.cancel(root);
    assert_eq!(h.result_of(w), Some(ExecutionResult::Cancelled));
    assert!(h.aborted().contains(&spawned) && h.aborted().contains(&grandchild));
    // Cancelled results are final: nothing is retried.
    assert!(assigned(&mut h).is_empty());
}

//! Orchestration semantics beyond calls and results: dependencies (`wait_for`), suspension,
//! recurrence, deferring, run-level memo and spawned runs, driven through the [`Harness`].

use serde_json::json;

use super::harness::Harness;
use crate::model::{
    DeferConfig, Dependencies, EnvironmentId, ExecutionId, ExecutionResult, ParamSelection,
    Reference, ResultKind, StepOptions, TargetKind, TargetRef, Value,
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
    h.suspend(root, Some(at), Dependencies::default()).unwrap();
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
fn a_resumed_execution_gets_its_predecessors_children_call_by_call() {
    let Fixture { mut h, .. } = setup();
    let root = start(&mut h, StepOptions::default());
    let same = || vec![Value::raw(json!(1))];
    let first: Vec<ExecutionId> = (0..3)
        .map(|_| {
            h.call(root, &task(), same(), StepOptions::default())
                .unwrap()
        })
        .collect();
    let other = h
        .call(
            root,
            &task(),
            vec![Value::raw(json!(2))],
            StepOptions::default(),
        )
        .unwrap();
    h.suspend(root, None, Dependencies::default()).unwrap();
    let next = root.step.execution(2);
    // The resumed attempt repeats its calls: the k-th identical call gets the k-th child.
    let again = |h: &mut Harness, arguments| {
        h.call(next, &task(), arguments, StepOptions::default())
            .unwrap()
    };
    assert_eq!(again(&mut h, vec![Value::raw(json!(2))]), other);
    for child in &first {
        assert_eq!(again(&mut h, same()), *child);
    }
    let fourth = again(&mut h, same());
    assert!(
        !first.contains(&fourth) && fourth != other,
        "a new call makes a new child"
    );
    assert_eq!(
        again(&mut h, vec![Value::raw(json!(2))]).step.number,
        fourth.step.number + 1
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
    h.suspend(root, None, Dependencies::all(vec![a, b]))
        .unwrap();
    h.complete(a, json!(1));
    assert!(assigned(&mut h).is_empty());
    h.complete(b, json!(2));
    let resumed = root.step.execution(2);
    assert_eq!(assigned(&mut h), vec![resumed]);
    // Suspending an execution that already ended changes nothing.
    h.suspend(root, None, Dependencies::default()).unwrap();
    assert!(assigned(&mut h).is_empty());
    // The resumed attempt runs its code again: its repeated calls get the same children.
    let again = |h: &mut Harness| h.call(resumed, &task(), vec![], StepOptions::default());
    assert_eq!(again(&mut h).unwrap(), a);
    assert_eq!(again(&mut h).unwrap(), b);
    let new = again(&mut h).unwrap();
    assert!(new != a && new != b, "a third call is new");
    assert_eq!(assigned(&mut h), vec![new]);
}

#[test]
fn a_select_suspended_on_any_handle_resumes_when_the_first_finishes() {
    let Fixture { mut h, .. } = setup();
    let root = start(&mut h, StepOptions::default());
    let a = h
        .call(root, &task(), vec![], StepOptions::default())
        .unwrap();
    let b = h
        .call(root, &task(), vec![], StepOptions::default())
        .unwrap();
    assigned(&mut h);
    h.suspend(root, None, Dependencies::any(vec![a, b]))
        .unwrap();
    h.complete(b, json!(2));
    assert_eq!(assigned(&mut h), vec![root.step.execution(2)]);
    h.complete(a, json!(1));
    assert!(assigned(&mut h).is_empty(), "released once");
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

#[test]
fn a_concurrency_limit_caps_running_executions_of_a_target_across_restarts() {
    let Fixture { mut h, prod, .. } = setup();
    h.set_limit("production", &task(), Some(1)).unwrap();
    let root = start(&mut h, StepOptions::default());
    let calls: Vec<_> = (0..3)
        .map(|i| {
            h.call(
                root,
                &task(),
                vec![Value::raw(json!(i))],
                StepOptions::default(),
            )
            .unwrap()
        })
        .collect();
    assert_eq!(assigned(&mut h), vec![calls[0]], "one at a time");
    h.complete(calls[0], json!(0));
    assert_eq!(assigned(&mut h), vec![calls[1]]);
    // The limit is stored: after a restart it still holds.
    let mut h = h.restart_with_grace(60_000).unwrap();
    h.connect_worker(prod, 1, &[wf(), task()], 100);
    assert!(assigned(&mut h).is_empty(), "the running one still counts");
    assert_eq!(h.claim(prod, 1, vec![root, calls[1]]).len(), 2);
    assert!(assigned(&mut h).is_empty());
    h.complete(calls[1], json!(1));
    assert_eq!(assigned(&mut h), vec![calls[2]]);
    // Lifting the limit lets everything run.
    h.set_limit("production", &task(), None).unwrap();
    let more: Vec<_> = (0..2)
        .map(|i| {
            h.call(
                root,
                &task(),
                vec![Value::raw(json!(10 + i))],
                StepOptions::default(),
            )
            .unwrap()
        })
        .collect();
    assert_eq!(assigned(&mut h), more);
    assert!(h.set_limit("nowhere", &task(), Some(1)).is_err());
}

#[test]
fn a_schedule_starts_runs_on_its_ticks_and_reports_ticks_missed_while_down() {
    let Fixture { mut h, .. } = setup();
    assert!(h.create_schedule("production", &wf(), "not cron").is_err());
    assert!(h.create_schedule("nowhere", &wf(), "* * * * *").is_err());
    let start = h.now();
    let schedule = h
        .create_schedule("production", &wf(), "*/10 * * * * *")
        .unwrap();
    let first_tick = (start / 10_000 + 1) * 10_000;
    assert_eq!(h.next_timer(), Some(first_tick));
    h.advance(first_tick - h.now() - 1);
    assert!(assigned(&mut h).is_empty(), "not before its tick");
    h.advance(1);
    assert_eq!(assigned(&mut h).len(), 1, "one run at the first tick");
    h.advance(10_000);
    assert_eq!(assigned(&mut h).len(), 1, "and one at the next");
    let runs = h.store().list_runs(None, 10).unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.target == wf()));

    // Down for 65 s: of the six ticks that passed, the latest (5 s ago) still runs; the five
    // before it are not run but counted and stored.
    let mut h = h.restart_after(65_000).unwrap();
    h.connect_worker(EnvironmentId(1), 1, &[wf(), task()], 100);
    h.advance(0);
    assert_eq!(
        assigned(&mut h).len(),
        1,
        "the latest tick, within the tolerance"
    );
    let stored = &h.store_schedules()[0];
    assert_eq!(stored.id, schedule.id);
    assert_eq!(stored.missed, 5, "{stored:?}");
    // On time again afterwards.
    h.advance(5_000);
    assert_eq!(assigned(&mut h).len(), 1);
    // Down again for 45 s: four ticks passed; the latest runs, the three before it are missed.
    let mut h = h.restart_after(45_000).unwrap();
    h.connect_worker(EnvironmentId(1), 1, &[wf(), task()], 100);
    h.advance(0);
    let stored = &h.store_schedules()[0];
    assert_eq!(stored.missed, 5 + 3, "{stored:?}");
    assert_eq!(assigned(&mut h).len(), 1, "the tick 5 s ago runs");
    // Removed: no more runs.
    h.delete_schedule(schedule.id).unwrap();
    h.advance(30_000);
    assert!(assigned(&mut h).is_empty());
    assert!(h.delete_schedule(schedule.id).is_err());
}

#[test]
fn steps_inherit_their_workflows_requires_and_can_override_or_remove_keys() {
    let Fixture { mut h, .. } = setup();
    let tags = |pairs: &[(&str, &[&str])]| -> crate::model::Requires {
        pairs
            .iter()
            .map(|(k, vs)| (k.to_string(), vs.iter().map(|v| v.to_string()).collect()))
            .collect()
    };
    let workflow = StepOptions {
        requires: tags(&[("gpu", &["yes"]), ("region", &["eu"])]),
        ..Default::default()
    };
    let (run, root) = h.submit("production", &wf(), vec![], workflow).unwrap();
    let call = |h: &mut Harness, requires| {
        h.call(
            root,
            &task(),
            vec![],
            StepOptions {
                requires,
                ..Default::default()
            },
        )
        .unwrap()
    };
    let plain = call(&mut h, tags(&[]));
    let overridden = call(&mut h, tags(&[("region", &["us"])]));
    let removed = call(&mut h, tags(&[("gpu", &[])]));
    let steps = h.store().load_run(run).unwrap().unwrap().steps;
    let requires_of = |e: ExecutionId| steps[e.step.number as usize - 1].options.requires.clone();
    assert_eq!(
        requires_of(plain),
        tags(&[("gpu", &["yes"]), ("region", &["eu"])])
    );
    assert_eq!(
        requires_of(overridden),
        tags(&[("gpu", &["yes"]), ("region", &["us"])])
    );
    assert_eq!(requires_of(removed), tags(&[("region", &["eu"])]));
}

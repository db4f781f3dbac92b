//! Numbered calls: a submission sent again by an agent (after a reconnect, or to a new session
//! after a restart) gets the child of the first, for tasks and for spawned workflows, also
//! after the orchestrator restarted from its store; and executions nobody claims after a restart
//! run again.

use serde_json::json;

use super::harness::Harness;
use crate::model::{EnvironmentId, ExecutionId, RunId, StepOptions, TargetKind, TargetRef, Value};
use crate::store::Durability;
use crate::store::sqlite::SqliteStore;

fn wf() -> TargetRef {
    TargetRef::new("app", "main")
}
fn task() -> TargetRef {
    TargetRef::new("app", "work")
}

fn setup() -> (Harness, tempfile::TempDir, EnvironmentId) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("p.sqlite"), Durability::Normal).unwrap();
    let mut h = Harness::new(store).unwrap();
    let prod = h.create_environment("production", None).unwrap().id;
    h.connect_worker(prod, 1, &[wf(), task()], 100);
    (h, dir, prod)
}

fn call(h: &mut Harness, parent: ExecutionId, call: u32, kind: TargetKind, x: i64) -> ExecutionId {
    let target = match kind {
        TargetKind::Workflow => wf(),
        _ => task(),
    };
    let arguments = vec![Value::raw(json!(x))];
    h.call_numbered(
        parent,
        Some(call),
        &target,
        kind,
        arguments,
        StepOptions::default(),
    )
    .unwrap()
}

#[test]
fn calls_a_repeated_numbered_call_gets_the_first_child() {
    let (mut h, _dir, _) = setup();
    let (run, root) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    let first = call(&mut h, root, 1, TargetKind::Task, 1);
    assert_eq!(call(&mut h, root, 1, TargetKind::Task, 1), first);
    let second = call(&mut h, root, 2, TargetKind::Task, 1);
    assert_ne!(
        second, first,
        "the same arguments in another call: another child"
    );
    let snapshot = h.store().load_run(run).unwrap().unwrap();
    assert_eq!(snapshot.steps.len(), 3, "the workflow and two children");
}

#[test]
fn calls_are_recognised_after_a_restart_for_tasks_and_spawned_workflows() {
    let (mut h, _dir, prod) = setup();
    let (run, root) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    assert_eq!(h.take_assigned().len(), 1);
    let child = call(&mut h, root, 1, TargetKind::Task, 7);
    let spawned = call(&mut h, root, 2, TargetKind::Workflow, 8);
    assert_ne!(spawned.run(), run, "a workflow runs as a run of its own");
    let mut h = h.restart_with_grace(5_000).unwrap();
    h.connect_worker(prod, 2, &[wf(), task()], 100);
    assert_eq!(h.claim(prod, 2, vec![root]), vec![root]);
    // The agent sends both calls again, to its new session.
    assert_eq!(call(&mut h, root, 1, TargetKind::Task, 7), child);
    assert_eq!(call(&mut h, root, 2, TargetKind::Workflow, 8), spawned);
    let snapshot = h.store().load_run(run).unwrap().unwrap();
    assert_eq!(snapshot.steps.len(), 2, "no second child");
    let next = RunId(spawned.run().0 + 1);
    assert!(
        h.store().load_run(next).unwrap().is_none(),
        "no second spawned run"
    );
    // A new call still creates a child.
    let third = call(&mut h, root, 3, TargetKind::Task, 7);
    assert_ne!(third, child);
}

#[test]
fn an_execution_nobody_claims_after_a_restart_runs_again_whatever_its_retry_policy() {
    let (mut h, _dir, prod) = setup();
    // No retry policy: a worker that goes away would fail it, a restart must not.
    let (run, root) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    assert_eq!(h.take_assigned().len(), 1);
    let mut h = h.restart_with_grace(5_000).unwrap();
    h.connect_worker(prod, 2, &[wf(), task()], 100);
    // The worker comes back without it (the assignment never reached it).
    assert!(h.claim(prod, 2, vec![]).is_empty());
    h.advance(6_000);
    let again = h.take_assigned();
    assert_eq!(again.len(), 1, "assigned again once the grace period ended");
    assert_eq!(again[0].execution, root.step.execution(2));
    h.complete(again[0].execution, json!(3));
    let waiter = h.wait_run(run);
    assert_eq!(
        h.result_of(waiter),
        Some(crate::model::ExecutionResult::Value {
            value: Value::raw(json!(3))
        })
    );
}

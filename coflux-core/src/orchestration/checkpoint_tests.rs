//! Checkpoints through the deterministic [`Harness`]: later attempts of a step start from the
//! state earlier ones wrote; ended attempts cannot write; re-runs in a child environment fork
//! the state; the store keeps it across a restart.

use serde_json::json;

use super::OrchestrationError;
use super::harness::Harness;
use crate::model::{Checkpoints, RetryPolicy, StepOptions, TargetRef, Value};
use crate::store::Durability;
use crate::store::sqlite::SqliteStore;

fn wf() -> TargetRef {
    TargetRef::new("app", "main")
}
fn task() -> TargetRef {
    TargetRef::new("app", "work")
}
fn state(pairs: &[(&str, serde_json::Value)]) -> Checkpoints {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Value::raw(v.clone())))
        .collect()
}
fn retried() -> StepOptions {
    StepOptions {
        retries: Some(RetryPolicy {
            limit: Some(2),
            backoff_min_ms: 0,
            backoff_max_ms: 0,
        }),
        ..Default::default()
    }
}

fn setup(dir: &tempfile::TempDir) -> Harness {
    let store = SqliteStore::open(&dir.path().join("p.sqlite"), Durability::Normal).unwrap();
    let mut h = Harness::new(store).unwrap();
    let prod = h.create_environment("production", None).unwrap().id;
    h.connect_worker(prod, 1, &[wf(), task()], 100);
    h
}

#[test]
fn checkpoint_a_retry_starts_from_what_the_failed_attempt_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = setup(&dir);
    let (run, root) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    let first = h.call(root, &task(), vec![], retried()).unwrap();
    let assigned = h.take_assigned();
    assert!(assigned.iter().all(|a| a.checkpoints.is_empty()));
    h.checkpoint(
        first,
        state(&[("cursor", json!(1)), ("seen", json!("a"))]),
        vec![],
    )
    .unwrap();
    h.checkpoint(first, state(&[("cursor", json!(2))]), vec!["seen".into()])
        .unwrap();
    h.fail(first, "E", "one");
    let second = h.take_assigned().pop().unwrap();
    assert_eq!(second.execution, first.step.execution(2));
    assert_eq!(second.checkpoints, state(&[("cursor", json!(2))]));

    // An attempt that has ended can no longer write.
    assert!(matches!(
        h.checkpoint(first, state(&[("cursor", json!(9))]), vec![]),
        Err(OrchestrationError::CheckpointRejected(_))
    ));

    // The state is stored: a restart (and the store's snapshot) has it.
    let h = h.restart().unwrap();
    let snapshot = h.store().load_run(run).unwrap().unwrap();
    assert_eq!(snapshot.checkpoints.len(), 1);
    let (step, _, stored) = &snapshot.checkpoints[0];
    assert_eq!(*step, first.step);
    assert_eq!(*stored, state(&[("cursor", json!(2))]));
}

#[test]
fn checkpoint_a_rerun_in_a_child_environment_forks_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = setup(&dir);
    let staging = h
        .create_environment("staging", Some("production"))
        .unwrap()
        .id;
    h.connect_worker(staging, 2, &[wf(), task()], 100);
    let (_, root) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    let child = h
        .call(root, &task(), vec![], StepOptions::default())
        .unwrap();
    h.take_assigned();
    h.checkpoint(child, state(&[("cursor", json!(1))]), vec![])
        .unwrap();
    h.complete(child, json!("done"));

    let in_staging = h.rerun(child.step, Some("staging")).unwrap();
    let assigned = h.take_assigned().pop().unwrap();
    assert_eq!(assigned.execution, in_staging);
    assert_eq!(assigned.checkpoints, state(&[("cursor", json!(1))]));
    h.checkpoint(in_staging, state(&[("cursor", json!(5))]), vec![])
        .unwrap();
    h.complete(in_staging, json!("staged"));

    // The parent environment's state is its own.
    let again = h.rerun(child.step, None).unwrap();
    let assigned = h.take_assigned().pop().unwrap();
    assert_eq!(assigned.execution, again);
    assert_eq!(assigned.checkpoints, state(&[("cursor", json!(1))]));
    h.complete(again, json!("again"));

    // And the child's stays forked.
    h.rerun(child.step, Some("staging")).unwrap();
    let assigned = h.take_assigned().pop().unwrap();
    assert_eq!(assigned.checkpoints, state(&[("cursor", json!(5))]));
}

//! Results as seen from an environment: a re-run in a child environment changes the child's
//! view of a run, never its own environment's (the rule inspection follows too).

use serde_json::json;

use super::harness::Harness;
use crate::model::{EnvironmentId, ExecutionResult, RetryPolicy, StepOptions, TargetRef, Value};
use crate::store::Durability;
use crate::store::sqlite::SqliteStore;

fn wf() -> TargetRef {
    TargetRef::new("app", "main")
}

fn value(data: serde_json::Value) -> ExecutionResult {
    ExecutionResult::Value {
        value: Value::raw(data),
    }
}

struct Fixture {
    h: Harness,
    _dir: tempfile::TempDir,
    prod: EnvironmentId,
    child: EnvironmentId,
    sibling: EnvironmentId,
}

fn setup() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("p.sqlite"), Durability::Normal).unwrap();
    let mut h = Harness::new(store).unwrap();
    let prod = h.create_environment("production", None).unwrap().id;
    let child = h
        .create_environment("child", Some("production"))
        .unwrap()
        .id;
    let sibling = h
        .create_environment("sibling", Some("production"))
        .unwrap()
        .id;
    for (env, worker) in [(prod, 1), (child, 2), (sibling, 3)] {
        h.connect_worker(env, worker, &[wf()], 100);
    }
    Fixture {
        h,
        _dir: dir,
        prod,
        child,
        sibling,
    }
}

#[test]
fn a_rerun_in_a_child_environment_changes_only_the_childs_view_of_the_result() {
    let Fixture {
        mut h,
        prod,
        child,
        sibling,
        ..
    } = setup();
    let (run, root) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    h.take_assigned();
    h.complete(root, json!("production"));
    let rerun = h.rerun(root.step, Some("child")).unwrap();
    h.take_assigned();
    h.complete(rerun, json!("child"));

    let seen = |h: &mut Harness, view: Option<EnvironmentId>| {
        let waiter = h.wait_seen(run, 1, None, view);
        h.result_of(waiter).expect("finished")
    };
    let by_default = h.wait_run(run);
    assert_eq!(h.result_of(by_default), Some(value(json!("production"))));
    assert_eq!(seen(&mut h, Some(prod)), value(json!("production")));
    assert_eq!(seen(&mut h, Some(sibling)), value(json!("production")));
    assert_eq!(seen(&mut h, Some(child)), value(json!("child")));
    // The child's descendants see its re-run too.
    let grandchild = h
        .create_environment("grandchild", Some("child"))
        .unwrap()
        .id;
    assert_eq!(seen(&mut h, Some(grandchild)), value(json!("child")));
    // An attempt named exactly is that attempt, whatever the view.
    let first = h.wait_seen(run, 1, Some(1), Some(child));
    assert_eq!(h.result_of(first), Some(value(json!("production"))));
    let second = h.wait_seen(run, 1, Some(2), None);
    assert_eq!(h.result_of(second), Some(value(json!("child"))));

    // A later re-run in production is what production (and the child) sees next.
    let again = h.rerun(root.step, None).unwrap();
    let pending = h.wait_run(run);
    assert_eq!(h.result_of(pending), None, "waits for the newest attempt");
    h.take_assigned();
    h.complete(again, json!("production 2"));
    assert_eq!(h.result_of(pending), Some(value(json!("production 2"))));
    assert_eq!(seen(&mut h, Some(child)), value(json!("production 2")));
}

#[test]
fn a_step_or_attempt_that_is_not_there_is_refused() {
    let Fixture { mut h, child, .. } = setup();
    let (run, root) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    let missing_step = h.wait_seen(run, 2, None, None);
    assert_eq!(h.error_of(missing_step).unwrap().code(), "step_not_found");
    let missing_attempt = h.wait_seen(run, 1, Some(3), Some(child));
    assert_eq!(
        h.error_of(missing_attempt).unwrap().code(),
        "execution_not_found"
    );
    // A step first run in the child (a child of its re-run) is not seen from production.
    h.take_assigned();
    h.complete(root, json!(1));
    let rerun = h.rerun(root.step, Some("child")).unwrap();
    h.take_assigned();
    let inner = h
        .call(rerun, &wf(), vec![], StepOptions::default())
        .unwrap();
    let from_production = h.wait_seen(run, inner.step.number, None, None);
    assert_eq!(
        h.error_of(from_production).unwrap().code(),
        "step_not_found"
    );
    let from_child = h.wait_seen(run, inner.step.number, None, Some(child));
    assert_eq!(h.result_of(from_child), None, "pending in the child");
}

#[test]
fn an_attempt_named_exactly_reports_its_own_error_not_its_retry() {
    let Fixture { mut h, .. } = setup();
    let options = StepOptions {
        retries: Some(RetryPolicy::limit(1)),
        ..Default::default()
    };
    let (run, root) = h.submit("production", &wf(), vec![], options).unwrap();
    h.take_assigned();
    h.fail(root, "ValueError", "first");
    let retry = h.take_assigned().pop().unwrap().execution;
    h.complete(retry, json!("second"));
    let exact = h.wait_seen(run, 1, Some(1), None);
    match h.result_of(exact) {
        Some(ExecutionResult::Error { error, retry: next }) => {
            assert_eq!(error.message, "first");
            assert_eq!(next, Some(retry));
        }
        other => panic!("{other:?}"),
    }
    let latest = h.wait_run(run);
    assert_eq!(h.result_of(latest), Some(value(json!("second"))));
}

//! Orchestration behaviour, driven event by event through the deterministic [`Harness`].

use std::collections::HashMap;

use serde_json::json;

use super::harness::Harness;
use crate::model::{
    CacheConfig, EnvironmentId, EnvironmentState, ExecutionId, ExecutionResult, ParamSelection,
    ResultKind, RetryPolicy, StepId, StepOptions, TargetRef, Value,
};
use crate::store::Durability;
use crate::store::sqlite::SqliteStore;

struct Fixture {
    h: Harness,
    _dir: tempfile::TempDir,
    prod: EnvironmentId,
}

fn wf() -> TargetRef {
    TargetRef::new("app", "main")
}
fn task() -> TargetRef {
    TargetRef::new("app", "work")
}
fn arg(v: serde_json::Value) -> Vec<Value> {
    vec![Value::raw(v)]
}
fn cached() -> StepOptions {
    StepOptions {
        cache: Some(CacheConfig {
            params: ParamSelection::All(true),
            max_age_ms: None,
            namespace: None,
            version: None,
        }),
        ..Default::default()
    }
}
fn value(data: serde_json::Value) -> ExecutionResult {
    ExecutionResult::Value {
        value: Value::raw(data),
    }
}

fn setup() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("p.sqlite"), Durability::Normal).unwrap();
    let mut h = Harness::new(store).unwrap();
    let prod = h.create_environment("production", None).unwrap().id;
    h.connect_worker(prod, 1, &[wf(), task()], 100);
    Fixture { h, _dir: dir, prod }
}

#[test]
fn a_workflow_calls_tasks_and_the_run_result_is_the_initial_steps_result() {
    let Fixture { mut h, prod, _dir } = setup();
    let (run, root) = h
        .submit("production", &wf(), arg(json!(2)), StepOptions::default())
        .unwrap();
    assert_eq!(root.to_string(), format!("{run}:1:1"));
    let assigned = h.take_assigned();
    assert_eq!(assigned.len(), 1);
    assert_eq!(assigned[0].execution, root);
    let a = h
        .call(root, &task(), arg(json!(1)), StepOptions::default())
        .unwrap();
    let b = h
        .call(root, &task(), arg(json!(2)), StepOptions::default())
        .unwrap();
    assert_eq!((a.step.number, b.step.number), (2, 3));
    let (wa, wb) = (h.wait(a), h.wait(b));
    assert_eq!(
        h.take_assigned()
            .iter()
            .map(|x| x.execution)
            .collect::<Vec<_>>(),
        vec![a, b]
    );
    h.complete(a, json!(10));
    assert_eq!(h.result_of(wa), Some(value(json!(10))));
    assert_eq!(h.result_of(wb), None);
    h.complete(b, json!(20));
    assert_eq!(h.result_of(wb), Some(value(json!(20))));
    let run_waiter = h.wait_run(run);
    h.complete(root, json!(30));
    assert_eq!(h.result_of(run_waiter), Some(value(json!(30))));
    let snapshot = h.store().load_run(run).unwrap().unwrap();
    assert_eq!(snapshot.steps.len(), 3);
    assert_eq!(snapshot.steps[1].parent_execution, Some(root));
    assert!(
        snapshot
            .executions
            .iter()
            .all(|e| e.environment == prod && e.result.is_some())
    );
}

#[test]
fn errors_reach_every_waiter_with_type_and_message() {
    let Fixture { mut h, .. } = setup();
    let (_, root) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    let child = h
        .call(root, &task(), vec![], StepOptions::default())
        .unwrap();
    let (w1, w2) = (h.wait(child), h.wait(child));
    h.fail(child, "builtins.ValueError", "bad value 7");
    for w in [w1, w2] {
        match h.result_of(w) {
            Some(ExecutionResult::Error { error, retry: None }) => {
                assert_eq!(
                    (error.error_type.as_str(), error.message.as_str()),
                    ("builtins.ValueError", "bad value 7")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn retries_follow_the_backoff_and_waiters_get_the_final_result() {
    let Fixture { mut h, .. } = setup();
    let (_, root) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    let options = StepOptions {
        retries: Some(RetryPolicy {
            limit: Some(2),
            backoff_min_ms: 100,
            backoff_max_ms: 300,
        }),
        ..Default::default()
    };
    let first = h.call(root, &task(), vec![], options).unwrap();
    let waiter = h.wait(first);
    h.take_assigned();
    h.fail(first, "E", "one");
    assert_eq!(h.result_of(waiter), None, "still retrying");
    let start = h.now();
    assert_eq!(
        h.next_timer(),
        Some(start + 100),
        "first retry after the minimum backoff"
    );
    assert!(h.take_assigned().is_empty());
    h.advance(100);
    let second = h.take_assigned().pop().unwrap().execution;
    assert_eq!(second, first.step.execution(2));
    h.fail(second, "E", "two");
    assert_eq!(
        h.next_timer(),
        Some(h.now() + 300),
        "last retry after the maximum backoff"
    );
    h.advance(300);
    let third = h.take_assigned().pop().unwrap().execution;
    assert_eq!(third.attempt, 3);
    h.fail(third, "E", "three");
    assert_eq!(h.next_timer(), None, "the limit is reached");
    match h.result_of(waiter) {
        Some(ExecutionResult::Error { error, retry: None }) => assert_eq!(error.message, "three"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn unretryable_errors_and_cancellation_are_not_retried() {
    let Fixture { mut h, .. } = setup();
    let (_, root) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    let options = StepOptions {
        retries: Some(RetryPolicy::limit(3)),
        ..Default::default()
    };
    let child = h.call(root, &task(), vec![], options.clone()).unwrap();
    let w = h.wait(child);
    let mut error = crate::model::ErrorInfo::new("E", "fatal");
    error.retryable = Some(false);
    h.report(child, ExecutionResult::Error { error, retry: None });
    assert!(matches!(
        h.result_of(w),
        Some(ExecutionResult::Error { retry: None, .. })
    ));
    let other = h.call(root, &task(), arg(json!(1)), options).unwrap();
    let w = h.wait(other);
    h.take_assigned();
    h.cancel(other);
    assert_eq!(h.result_of(w), Some(ExecutionResult::Cancelled));
    assert_eq!(h.aborted(), &[other]);
}

#[test]
fn a_manual_rerun_is_a_new_attempt_that_becomes_the_steps_latest() {
    let Fixture { mut h, .. } = setup();
    let (run, root) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    h.complete(root, json!("first"));
    let rerun = h.rerun(root.step, None).unwrap();
    assert_eq!(rerun, root.step.execution(2));
    assert_eq!(h.take_assigned().last().unwrap().execution, rerun);
    h.complete(rerun, json!("second"));
    let w = h.wait_run(run);
    assert_eq!(h.result_of(w), Some(value(json!("second"))));
}

#[test]
fn recovery_with_grace_lets_a_reconnecting_worker_claim_its_executions() {
    let Fixture { mut h, prod, .. } = setup();
    let (run, root) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    assert_eq!(h.take_assigned().len(), 1);
    let mut h = h.restart_with_grace(5_000).unwrap();
    // The agent comes back (a new worker id in the new process) and claims what it runs.
    h.connect_worker(prod, 7, &[wf(), task()], 4);
    let unknown = StepId { run, number: 9 }.execution(1);
    assert_eq!(h.claim(prod, 7, vec![root, unknown]), vec![root]);
    // Nothing is abandoned when the grace period ends, and the claimed result counts.
    h.advance(10_000);
    h.complete(root, json!(5));
    let snapshot = h.store().load_run(run).unwrap().unwrap();
    assert_eq!(snapshot.executions.len(), 1, "no retry was created");
    assert_eq!(
        snapshot.executions[0].result.as_ref().map(|r| r.0.kind()),
        Some(ResultKind::Value)
    );
}

#[test]
fn recovery_with_grace_abandons_unclaimed_executions_when_it_ends() {
    let Fixture { mut h, prod, .. } = setup();
    let options = StepOptions {
        retries: Some(RetryPolicy::limit(1)),
        ..Default::default()
    };
    let (_, root) = h.submit("production", &wf(), vec![], options).unwrap();
    assert_eq!(h.take_assigned().len(), 1);
    let mut h = h.restart_with_grace(5_000).unwrap();
    h.connect_worker(prod, 7, &[wf(), task()], 4);
    h.advance(4_000);
    assert!(h.take_assigned().is_empty(), "still claimable");
    h.advance(2_000);
    let retry = h.take_assigned();
    assert_eq!(retry.len(), 1, "abandoned, then retried");
    assert_eq!(retry[0].execution, root.step.execution(2));
    // A late claim of the abandoned execution gets nothing.
    assert!(h.claim(prod, 7, vec![root]).is_empty());
}

#[test]
fn recovery_requeues_at_once_what_a_reconnecting_worker_was_assigned_but_does_not_run() {
    // The assignment was committed, then the process died before the agent got it: the agent
    // reconnects naming its old session's worker (1) and does not claim the execution.
    let Fixture { mut h, prod, .. } = setup();
    let options = StepOptions {
        retries: Some(RetryPolicy::limit(1)),
        ..Default::default()
    };
    let (_, root) = h.submit("production", &wf(), vec![], options).unwrap();
    assert_eq!(h.take_assigned().len(), 1);
    let mut h = h.restart_with_grace(60_000).unwrap();
    h.connect_worker(prod, 7, &[wf(), task()], 4);
    h.connect_worker(prod, 8, &[wf(), task()], 4);
    // Another agent's old worker (2) leaves worker 1's orphans alone.
    assert!(h.claim_after(prod, 8, vec![], Some(2)).is_empty());
    h.advance(1);
    assert!(
        h.take_assigned().is_empty(),
        "still claimable by its own agent"
    );
    assert!(h.claim_after(prod, 7, vec![], Some(1)).is_empty());
    h.advance(1);
    let retry = h.take_assigned();
    assert_eq!(
        retry.len(),
        1,
        "abandoned and retried without waiting out the grace"
    );
    assert_eq!(retry[0].execution, root.step.execution(2));
}

#[test]
fn recovery_abandons_assigned_work_and_requeues_the_rest() {
    let Fixture { mut h, prod, .. } = setup();
    let (run, root) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    let retried = h
        .call(
            root,
            &task(),
            arg(json!(1)),
            StepOptions {
                retries: Some(RetryPolicy::limit(1)),
                ..Default::default()
            },
        )
        .unwrap();
    h.set_environment_state("production", EnvironmentState::Paused)
        .unwrap();
    let queued = h
        .call(root, &task(), arg(json!(2)), StepOptions::default())
        .unwrap();
    assert_eq!(
        h.take_assigned().len(),
        2,
        "root and the first child were assigned before the pause"
    );
    let mut h = h.restart().unwrap();
    let snapshot = h.store().load_run(run).unwrap().unwrap();
    let result = |id| {
        snapshot
            .executions
            .iter()
            .find(|e| e.id == id)
            .and_then(|e| e.result.clone())
            .map(|r| r.0)
    };
    assert_eq!(
        result(root),
        Some(ExecutionResult::Abandoned { retry: None })
    );
    assert_eq!(
        result(retried),
        Some(ExecutionResult::Abandoned {
            retry: Some(retried.step.execution(2))
        })
    );
    assert_eq!(result(queued), None);
    assert!(
        h.take_assigned().is_empty(),
        "the environment is still paused after the restart"
    );
    h.connect_worker(prod, 1, &[wf(), task()], 100);
    h.set_environment_state("production", EnvironmentState::Active)
        .unwrap();
    let mut assigned: Vec<_> = h.take_assigned().into_iter().map(|a| a.execution).collect();
    assigned.sort();
    assert_eq!(assigned, vec![retried.step.execution(2), queued]);
}

#[test]
fn environments_validate_names_parents_and_archiving() {
    let Fixture { mut h, .. } = setup();
    assert_eq!(
        h.create_environment("production", None).unwrap_err().code(),
        "environment_exists"
    );
    assert_eq!(
        h.create_environment("dev", Some("nope"))
            .unwrap_err()
            .code(),
        "environment_not_found"
    );
    assert_eq!(
        h.create_environment("bad name", None).unwrap_err().code(),
        "invalid_request"
    );
    h.create_environment("dev", Some("production")).unwrap();
    let err = h
        .set_environment_state("production", EnvironmentState::Archived)
        .unwrap_err();
    assert_eq!(err.code(), "environment_has_children");
    h.set_environment_state("dev", EnvironmentState::Archived)
        .unwrap();
    assert_eq!(
        h.submit("dev", &wf(), vec![], StepOptions::default())
            .unwrap_err()
            .code(),
        "environment_not_found"
    );
    h.create_environment("dev", None).unwrap();
}

#[test]
fn a_worker_that_disconnects_has_its_executions_abandoned_and_retried() {
    let Fixture { mut h, prod, .. } = setup();
    let (_, root) = h
        .submit(
            "production",
            &wf(),
            vec![],
            StepOptions {
                retries: Some(RetryPolicy::limit(1)),
                ..Default::default()
            },
        )
        .unwrap();
    let w = h.wait(root);
    h.take_assigned();
    h.disconnect_worker(prod, crate::model::WorkerId(1));
    h.connect_worker(prod, 2, &[wf()], 1);
    let job = h.take_assigned().pop().unwrap();
    assert_eq!((job.execution, job.worker.0), (root.step.execution(2), 2));
    h.complete(job.execution, json!(1));
    assert_eq!(h.result_of(w), Some(value(json!(1))));
}

#[test]
fn cancelling_a_retried_execution_cancels_its_pending_retry() {
    let Fixture { mut h, .. } = setup();
    let (_, root) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    let options = StepOptions {
        retries: Some(RetryPolicy {
            limit: Some(3),
            backoff_min_ms: 60_000,
            backoff_max_ms: 60_000,
        }),
        ..Default::default()
    };
    let first = h.call(root, &task(), vec![], options).unwrap();
    let w = h.wait(first);
    h.take_assigned();
    h.fail(first, "E", "boom");
    h.cancel(first);
    assert_eq!(h.result_of(w), Some(ExecutionResult::Cancelled));
    h.advance(60_000);
    assert!(
        h.take_assigned().is_empty(),
        "the cancelled retry never runs"
    );
}

#[test]
fn a_timeout_cancels_the_pending_children() {
    let Fixture { mut h, .. } = setup();
    let (_, root) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    let child = h
        .call(root, &task(), vec![], StepOptions::default())
        .unwrap();
    let grandchild = h
        .call(child, &task(), arg(json!(1)), StepOptions::default())
        .unwrap();
    let w = h.wait(grandchild);
    h.report(root, ExecutionResult::Timeout { retry: None });
    assert_eq!(h.result_of(w), Some(ExecutionResult::Cancelled));
    assert!(h.aborted().contains(&child) && h.aborted().contains(&grandchild));
}

#[test]
fn idempotency_keys_give_one_run_per_key_and_environment_until_they_expire() {
    let Fixture { mut h, .. } = setup();
    h.create_environment("staging", None).unwrap();
    let submit = |h: &mut Harness, env: &str, key: &str| {
        h.submit_keyed(env, &wf(), vec![], StepOptions::default(), Some(key))
            .unwrap()
    };
    let first = submit(&mut h, "production", "k1");
    assert_eq!(
        submit(&mut h, "production", "k1"),
        first,
        "same key, same run"
    );
    assert_ne!(submit(&mut h, "production", "k2").0, first.0, "another key");
    assert_ne!(
        submit(&mut h, "staging", "k1").0,
        first.0,
        "scoped to the environment"
    );
    // Keys survive a restart (they are written with the run).
    let mut h = h.restart().unwrap();
    assert_eq!(submit(&mut h, "production", "k1"), first);
    // And expire after the retention.
    h.set_key_retention(1_000);
    h.advance(1_500);
    assert_ne!(submit(&mut h, "production", "k1").0, first.0, "expired");
}

#[test]
fn the_orchestrator_times_out_an_execution_its_worker_never_reports() {
    let Fixture { mut h, .. } = setup();
    let options = StepOptions {
        timeout_ms: Some(1_000),
        retries: Some(RetryPolicy::limit(1)),
        ..Default::default()
    };
    let (run, root) = h.submit("production", &wf(), vec![], options).unwrap();
    assert_eq!(h.take_assigned().len(), 1);
    // The worker hangs: within the timeout and its slack nothing happens...
    h.advance(2_500);
    assert!(h.take_assigned().is_empty());
    // ...then the orchestrator records a timeout, aborts it on the worker and retries it.
    h.advance(1_000);
    assert!(h.aborted().contains(&root));
    let retry = h.take_assigned();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].execution, root.step.execution(2));
    let snapshot = h.store().load_run(run).unwrap().unwrap();
    assert_eq!(
        snapshot.executions[0].result.as_ref().map(|r| r.0.kind()),
        Some(ResultKind::Timeout)
    );
    // A worker that reports in time is not timed out.
    h.complete(retry[0].execution, json!(1));
    h.advance(10_000);
    let snapshot = h.store().load_run(run).unwrap().unwrap();
    assert_eq!(
        snapshot.executions[1].result.as_ref().map(|r| r.0.kind()),
        Some(ResultKind::Value)
    );
}

mod cache;

/// Another run waiting on an execution of a run that does not exist (deleted) gets an error
/// result, not silence.
#[test]
fn a_subscription_to_a_missing_run_is_answered_with_an_error() {
    use super::messages::{Envelope, Outbox, RunMsg};
    use super::run::RunCore;
    use crate::model::RunId;

    let mut out = Outbox::default();
    let execution = StepId {
        run: RunId(7),
        number: 2,
    }
    .execution(1);
    RunCore::new(RunId(7)).handle(
        RunMsg::Subscribe {
            execution,
            subscriber: RunId(9),
        },
        0,
        &mut out,
    );
    match &out.messages[..] {
        [
            Envelope::Run(
                RunId(9),
                RunMsg::Resolved {
                    execution: resolved,
                    result: ExecutionResult::Error { error, .. },
                },
            ),
        ] => {
            assert_eq!(*resolved, execution);
            assert_eq!(error.error_type, "coflux.RunNotFound");
        }
        other => panic!("expected an error for the subscriber: {other:?}"),
    }
}

//! The cache: reuse across runs, maximum age, pending executions linked, recursion executed
//! once, lookups along the environment lineage, and re-runs in a child environment.

use super::*;

#[test]
fn cached_results_are_reused_across_runs_and_only_successes_count() {
    let Fixture { mut h, .. } = setup();
    let (_, r1) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    let a = h.call(r1, &task(), arg(json!(5)), cached()).unwrap();
    h.take_assigned();
    h.fail(a, "E", "boom");
    // A failed execution is not a cache source: the next call runs.
    let b = h.call(r1, &task(), arg(json!(5)), cached()).unwrap();
    assert_eq!(h.take_assigned().len(), 1);
    h.complete(b, json!(25));
    // Another run reuses the success without running anything.
    let (_, r2) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    h.take_assigned();
    let c = h.call(r2, &task(), arg(json!(5)), cached()).unwrap();
    let w = h.wait(c);
    assert!(h.take_assigned().is_empty(), "cache hit must not execute");
    assert_eq!(h.result_of(w), Some(value(json!(25))));
    let snapshot = h.store().load_run(r2.run()).unwrap().unwrap();
    let cached_exec = snapshot.executions.iter().find(|e| e.id == c).unwrap();
    assert_eq!(
        cached_exec.result.as_ref().unwrap().0,
        ExecutionResult::Cached { successor: b }
    );
    // Different arguments miss; re-running a cached step bypasses the cache.
    let d = h.call(r2, &task(), arg(json!(6)), cached()).unwrap();
    assert_eq!(h.take_assigned().pop().unwrap().execution, d);
    let again = h.rerun(c.step, None).unwrap();
    assert_eq!(h.take_assigned().pop().unwrap().execution, again);
}

#[test]
fn cache_max_age_limits_reuse() {
    let Fixture { mut h, .. } = setup();
    let mut options = cached();
    options.cache.as_mut().unwrap().max_age_ms = Some(1_000);
    let (_, r1) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    let a = h.call(r1, &task(), vec![], options.clone()).unwrap();
    h.take_assigned();
    h.complete(a, json!(1));
    h.advance(999);
    h.call(r1, &task(), vec![], options.clone()).unwrap();
    assert!(h.take_assigned().is_empty(), "within max age: reused");
    h.advance(2);
    h.call(r1, &task(), vec![], options).unwrap();
    assert_eq!(h.take_assigned().len(), 1, "too old: executed");
}

#[test]
fn a_pending_execution_with_the_same_key_is_linked_not_duplicated() {
    let Fixture { mut h, .. } = setup();
    let (_, r1) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    let (_, r2) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    h.take_assigned();
    let a = h.call(r1, &task(), arg(json!(3)), cached()).unwrap();
    let b = h.call(r2, &task(), arg(json!(3)), cached()).unwrap();
    let (wa, wb) = (h.wait(a), h.wait(b));
    assert_eq!(
        h.take_assigned()
            .iter()
            .map(|x| x.execution)
            .collect::<Vec<_>>(),
        vec![a]
    );
    h.complete(a, json!(9));
    assert_eq!(h.result_of(wa), Some(value(json!(9))));
    assert_eq!(
        h.result_of(wb),
        Some(value(json!(9))),
        "the linked run gets the result too"
    );
}

/// A scripted worker computing a cached recursive Fibonacci: each `fib(n)` submits `fib(n-1)`
/// and `fib(n-2)` and completes when both have resolved.
#[test]
fn cached_recursive_fib_executes_each_n_once() {
    let Fixture { mut h, .. } = setup();
    let fib = TargetRef::new("app", "fib");
    h.connect_worker(EnvironmentId(1), 2, std::slice::from_ref(&fib), 1_000);
    let (run, root) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    let top = h.call(root, &fib, arg(json!(25)), cached()).unwrap();
    let answer = h.wait(top);
    let mut waiting: HashMap<ExecutionId, (u64, u64)> = HashMap::new();
    let mut executed: HashMap<i64, u32> = HashMap::new();
    let mut resolved: HashMap<u64, i64> = HashMap::new();
    loop {
        for job in h.take_assigned().into_iter().filter(|j| j.target == fib) {
            let Value::Raw { data, .. } = &job.arguments[0] else {
                panic!()
            };
            let n = data.as_i64().unwrap();
            *executed.entry(n).or_default() += 1;
            if n < 2 {
                h.complete(job.execution, json!(n));
            } else {
                let x = h
                    .call(job.execution, &fib, arg(json!(n - 1)), cached())
                    .unwrap();
                let y = h
                    .call(job.execution, &fib, arg(json!(n - 2)), cached())
                    .unwrap();
                waiting.insert(job.execution, (h.wait(x), h.wait(y)));
            }
        }
        let mut progressed = false;
        for (exec, (wx, wy)) in waiting.clone() {
            for w in [wx, wy] {
                if let Some(ExecutionResult::Value {
                    value: Value::Raw { data, .. },
                }) = h.result_of(w)
                {
                    resolved.insert(w, data.as_i64().unwrap());
                }
            }
            if let (Some(x), Some(y)) = (resolved.get(&wx), resolved.get(&wy)) {
                waiting.remove(&exec);
                h.complete(exec, json!(x + y));
                progressed = true;
            }
        }
        if let Some(result) = h.result_of(answer) {
            assert_eq!(result, value(json!(75025)));
            break;
        }
        assert!(progressed || !waiting.is_empty(), "stuck");
    }
    assert_eq!(executed.len(), 26);
    assert!(executed.values().all(|count| *count == 1), "{executed:?}");
    assert!(
        h.store().load_run(run).unwrap().unwrap().steps.len() > 26,
        "linked steps are still recorded"
    );
}

#[test]
fn cache_lookups_walk_ancestors_but_never_siblings_or_children() {
    let Fixture { mut h, .. } = setup();
    let dev = h
        .create_environment("development", Some("production"))
        .unwrap()
        .id;
    let staging = h
        .create_environment("staging", Some("production"))
        .unwrap()
        .id;
    for env in [dev, staging] {
        h.connect_worker(env, u64::from(env.0) * 10, &[wf(), task()], 100);
    }
    // production computes; development reuses it.
    let (_, p) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    let pc = h.call(p, &task(), arg(json!("p")), cached()).unwrap();
    h.take_assigned();
    h.complete(pc, json!("from production"));
    let (_, d) = h
        .submit("development", &wf(), vec![], StepOptions::default())
        .unwrap();
    h.take_assigned();
    let dc = h.call(d, &task(), arg(json!("p")), cached()).unwrap();
    let w = h.wait(dc);
    assert!(h.take_assigned().is_empty());
    assert_eq!(h.result_of(w), Some(value(json!("from production"))));
    // development computes something new: its sibling and its parent do not see it.
    let dn = h.call(d, &task(), arg(json!("d")), cached()).unwrap();
    h.take_assigned();
    h.complete(dn, json!("from development"));
    let (_, s) = h
        .submit("staging", &wf(), vec![], StepOptions::default())
        .unwrap();
    h.take_assigned();
    let sc = h.call(s, &task(), arg(json!("d")), cached()).unwrap();
    assert_eq!(
        h.take_assigned().pop().map(|a| a.execution),
        Some(sc),
        "sibling must not reuse"
    );
    let pn = h.call(p, &task(), arg(json!("d")), cached()).unwrap();
    assert_eq!(
        h.take_assigned().pop().map(|a| a.execution),
        Some(pn),
        "parent must not reuse"
    );
}

#[test]
fn a_step_can_be_rerun_in_a_child_environment_leaving_the_parents_view_untouched() {
    let Fixture { mut h, prod, .. } = setup();
    let dev = h
        .create_environment("development", Some("production"))
        .unwrap()
        .id;
    h.create_environment("other", None).unwrap();
    h.connect_worker(dev, 20, &[wf(), task()], 100);
    let (run, root) = h
        .submit("production", &wf(), vec![], StepOptions::default())
        .unwrap();
    let a = h
        .call(root, &task(), arg(json!(1)), StepOptions::default())
        .unwrap();
    let b = h
        .call(root, &task(), arg(json!(2)), StepOptions::default())
        .unwrap();
    h.take_assigned();
    h.complete(a, json!("a1"));
    h.complete(b, json!("b1"));
    h.complete(root, json!("done"));
    let rerun = h.rerun(b.step, Some("development")).unwrap();
    assert_eq!(rerun, b.step.execution(2));
    let job = h.take_assigned().pop().unwrap();
    assert_eq!(
        (job.execution, job.worker.0),
        (rerun, 20),
        "runs on the development worker"
    );
    h.complete(rerun, json!("b2"));
    let snapshot = h.store().load_run(run).unwrap().unwrap();
    let by_env = |env| {
        snapshot
            .executions
            .iter()
            .filter(|e| e.environment == env)
            .map(|e| e.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        by_env(prod),
        vec![root, a, b],
        "production's executions are unchanged"
    );
    assert_eq!(by_env(dev), vec![rerun]);
    // A step cannot be re-run in an unrelated environment or in an ancestor of its own.
    assert_eq!(
        h.rerun(b.step, Some("other")).unwrap_err().code(),
        "environment_invalid"
    );
    // A finished execution cannot submit children.
    assert_eq!(
        h.call(rerun, &task(), vec![], StepOptions::default())
            .unwrap_err()
            .code(),
        "invalid_request"
    );
    let again = h.rerun(b.step, Some("development")).unwrap();
    let child = h
        .call(again, &task(), vec![], StepOptions::default())
        .unwrap();
    assert_eq!(
        h.rerun(child.step, Some("production")).unwrap_err().code(),
        "environment_invalid"
    );
}

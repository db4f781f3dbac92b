//! Orchestration semantics through the Rust SDK in embedded mode: defer, recurrence,
//! `wait_for` with handles passed as arguments, suspension and resumption, workflows calling
//! workflows (spawned runs) and run-level memo. Each test has its own targets and counters, so
//! the tests can run in parallel.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use coflux_core::api::{ExecutionView, RunView};
use coflux_core::model::{ExecutionState, Reference, ResultKind};
use coflux_core::sdk::{Failure, Handle, Repository, current_execution, suspend, task, workflow};
use coflux_core::{Coflux, Project};

/// An embedded project `test` serving `repository` in `production`.
pub(crate) async fn open(dir: &tempfile::TempDir, repository: Repository) -> (Coflux, Project) {
    let coflux = Coflux::open(dir.path()).await.unwrap();
    let project = coflux.project("test").await.unwrap();
    project
        .ensure_environment("production", None)
        .await
        .unwrap();
    project.serve("production", repository).await.unwrap();
    (coflux, project)
}

/// The executions of the steps calling `target`, in step order.
pub(crate) fn executions<'a>(view: &'a RunView, target: &'a str) -> Vec<&'a ExecutionView> {
    view.steps_named(target)
        .flat_map(|s| s.executions.iter())
        .collect()
}

fn kinds(executions: &[&ExecutionView]) -> Vec<ExecutionState> {
    executions.iter().map(|e| e.state).collect()
}

const fn finished(kind: ResultKind) -> ExecutionState {
    ExecutionState::Finished(kind)
}

// --- defer -----------------------------------------------------------------------------------

static DEBOUNCED_RUNS: AtomicU32 = AtomicU32::new(0);

#[task(defer, delay_ms = 300)]
async fn debounced(key: String) -> Result<String, Failure> {
    DEBOUNCED_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(format!("ran {key}"))
}

#[workflow]
async fn debounce() -> Result<Vec<String>, Failure> {
    let first = debounced.submit("k".into());
    let second = debounced.submit("k".into());
    let other = debounced.submit("other".into());
    Ok(vec![
        first.result().await?,
        second.result().await?,
        other.result().await?,
    ])
}

#[actix_rt::test]
async fn deferred_calls_with_the_same_arguments_collapse_into_the_latest() {
    let dir = tempfile::tempdir().unwrap();
    let repository = Repository::new().with(debounce).with(debounced);
    let (_c, project) = open(&dir, repository).await;
    let run = project.submit("production", &debounce, ()).await.unwrap();
    let out: Vec<String> = run.result().await.unwrap();
    assert_eq!(out, ["ran k", "ran k", "ran other"]);
    assert_eq!(DEBOUNCED_RUNS.load(Ordering::SeqCst), 2, "'k' ran once");
    let view = run.inspect().await.unwrap();
    assert_eq!(
        kinds(&executions(&view, "debounced")),
        [
            finished(ResultKind::Deferred),
            finished(ResultKind::Value),
            finished(ResultKind::Value)
        ]
    );
}

// --- recurrence ------------------------------------------------------------------------------

static TICKS: AtomicU32 = AtomicU32::new(0);

/// Returns nothing (and so runs again after its delay) until the third time.
#[workflow(recurrent, delay_ms = 50)]
async fn countdown() -> Result<Option<u32>, Failure> {
    let tick = TICKS.fetch_add(1, Ordering::SeqCst) + 1;
    Ok((tick >= 3).then_some(tick))
}

#[actix_rt::test]
async fn a_recurrent_workflow_runs_again_until_it_returns_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, project) = open(&dir, Repository::new().with(countdown)).await;
    let run = project.submit("production", &countdown, ()).await.unwrap();
    assert_eq!(run.result::<u32>().await.unwrap(), 3);
    let view = run.inspect().await.unwrap();
    let runs = executions(&view, "countdown");
    assert_eq!(
        kinds(&runs),
        [
            finished(ResultKind::Recurred),
            finished(ResultKind::Recurred),
            finished(ResultKind::Value)
        ]
    );
    // Each recurrence waited for the delay after the previous one finished.
    for pair in runs.windows(2) {
        let gap = pair[1].assigned_at.unwrap() - pair[0].finished_at.unwrap();
        assert!(gap >= 40, "recurred after {gap} ms");
    }
}

// --- wait_for --------------------------------------------------------------------------------

#[task]
async fn slow_value(x: u64) -> Result<u64, Failure> {
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    Ok(x * 10)
}

/// Held until the execution behind `upstream` has finished.
#[task(wait_for = ["upstream"])]
async fn downstream(upstream: Handle<u64>) -> Result<u64, Failure> {
    Ok(upstream.result().await? + 1)
}

#[workflow]
async fn waits() -> Result<u64, Failure> {
    // Passed on at once: its submission is not even confirmed yet.
    let upstream = slow_value.submit(4);
    Ok(downstream.call(upstream).await?)
}

#[actix_rt::test]
async fn wait_for_holds_a_task_until_the_handle_it_was_given_has_finished() {
    let dir = tempfile::tempdir().unwrap();
    let repository = Repository::new()
        .with(waits)
        .with(slow_value)
        .with(downstream);
    let (_c, project) = open(&dir, repository).await;
    let run = project.submit("production", &waits, ()).await.unwrap();
    assert_eq!(run.result::<u64>().await.unwrap(), 41);
    let view = run.inspect().await.unwrap();
    let upstream = executions(&view, "slow_value")[0];
    let held = executions(&view, "downstream")[0];
    assert!(
        held.assigned_at >= upstream.finished_at,
        "downstream started before its dependency finished:\n{view}"
    );
    // The handle travelled as an execution reference to the upstream execution.
    let step = view.steps_named("downstream").next().unwrap();
    let references = step.arguments[0].references();
    assert!(
        matches!(references, [Reference::Execution { execution, .. }] if *execution == upstream.id),
        "{references:?}"
    );
}

// --- suspension ------------------------------------------------------------------------------

static EXPENSIVE_RUNS: AtomicU32 = AtomicU32::new(0);

#[task]
async fn expensive(x: u64) -> Result<u64, Failure> {
    EXPENSIVE_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(x + 1)
}

/// Calls a child, then suspends on its first attempt; the second attempt gets the same child.
#[workflow]
async fn suspends_once(x: u64) -> Result<String, Failure> {
    let value = expensive.call(x).await?;
    let attempt = current_execution().map_or(0, |e| e.attempt);
    if attempt == 1 {
        suspend(Some(Duration::from_millis(300))).await?;
        unreachable!("suspend() returns an error in an execution");
    }
    Ok(format!("{value} on attempt {attempt}"))
}

#[actix_rt::test]
async fn a_suspended_workflow_resumes_after_its_delay_without_repeating_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let repository = Repository::new().with(suspends_once).with(expensive);
    let (_c, project) = open(&dir, repository).await;
    let run = project
        .submit("production", &suspends_once, (41,))
        .await
        .unwrap();
    assert_eq!(run.result::<String>().await.unwrap(), "42 on attempt 2");
    let view = run.inspect().await.unwrap();
    let attempts = executions(&view, "suspends_once");
    assert_eq!(
        kinds(&attempts),
        [finished(ResultKind::Suspended), finished(ResultKind::Value)],
        "{view}"
    );
    let resumed_after = attempts[1].assigned_at.unwrap() - attempts[0].finished_at.unwrap();
    assert!(resumed_after >= 250, "resumed {resumed_after} ms later");
    assert_eq!(
        executions(&view, "expensive").len(),
        1,
        "one child step: {view}"
    );
    assert_eq!(
        EXPENSIVE_RUNS.load(Ordering::SeqCst),
        1,
        "the child ran once"
    );
}

// --- workflows calling workflows -------------------------------------------------------------

#[workflow]
async fn inner(x: u64) -> Result<u64, Failure> {
    Ok(x + 1)
}

#[workflow]
async fn outer(x: u64) -> Result<u64, Failure> {
    Ok(inner.call(x).await? * 2)
}

#[actix_rt::test]
async fn a_workflow_calling_a_workflow_spawns_a_linked_run() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, project) = open(&dir, Repository::new().with(outer).with(inner)).await;
    let run = project.submit("production", &outer, (4,)).await.unwrap();
    assert_eq!(run.result::<u64>().await.unwrap(), 10);
    let view = run.inspect().await.unwrap();
    assert_eq!(
        executions(&view, "inner").len(),
        0,
        "no step in the caller's run"
    );
    let [(caller, spawned)] = view.spawned[..] else {
        panic!("one spawned run: {:?}", view.spawned);
    };
    assert_eq!(caller, run.execution);
    assert_ne!(spawned.run(), run.run);
    let child = project.inspect_run(spawned.run(), None).await.unwrap();
    assert_eq!(child.parent, Some(run.execution));
    assert_eq!(child.steps[0].target.name, "inner");
    assert_eq!(
        child.steps[0].executions[0].state,
        finished(ResultKind::Value)
    );
}

// --- run-level memo --------------------------------------------------------------------------

static COUNTED_RUNS: AtomicU32 = AtomicU32::new(0);

#[task]
async fn counted(x: u64) -> Result<u64, Failure> {
    COUNTED_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(x)
}

/// Memoises every call it makes: repeated calls with the same arguments run once.
#[workflow(memo)]
async fn memo_run() -> Result<Vec<u64>, Failure> {
    let first = counted.submit(1);
    let second = counted.submit(1);
    let third = counted.submit(2);
    Ok(vec![
        first.result().await?,
        second.result().await?,
        third.result().await?,
    ])
}

#[actix_rt::test]
async fn a_memoising_workflow_runs_a_repeated_call_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, project) = open(&dir, Repository::new().with(memo_run).with(counted)).await;
    let run = project.submit("production", &memo_run, ()).await.unwrap();
    assert_eq!(run.result::<Vec<u64>>().await.unwrap(), [1, 1, 2]);
    let view = run.inspect().await.unwrap();
    assert_eq!(executions(&view, "counted").len(), 2, "{view}");
    assert_eq!(COUNTED_RUNS.load(Ordering::SeqCst), 2);
}

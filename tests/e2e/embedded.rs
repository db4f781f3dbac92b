//! End-to-end tests of the embedded orchestrator through its public API: real actors, a real
//! SQLite store in a temporary directory, Rust targets declared with the SDK macros.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use coflux_core::Coflux;
use coflux_core::model::{ExecutionResult, ExecutionState, ResultKind};
use coflux_core::sdk::{
    ExecutionError, Failure, Repository, current_execution, in_context, task, workflow,
};

/// Raised when an account has too little money.
#[derive(Debug)]
struct Overdrawn(u64);

impl std::fmt::Display for Overdrawn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "balance too low for {}", self.0)
    }
}
impl std::error::Error for Overdrawn {}

#[task]
async fn double(x: u64) -> Result<u64, Failure> {
    Ok(x * 2)
}

#[task]
async fn withdraw(amount: u64) -> Result<u64, Overdrawn> {
    if amount > 100 {
        Err(Overdrawn(amount))
    } else {
        Ok(100 - amount)
    }
}

#[workflow]
async fn fan_out(n: u64) -> Result<Vec<u64>, Failure> {
    let handles: Vec<_> = (0..n).map(|i| double.submit(i)).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.result().await?);
    }
    Ok(out)
}

#[workflow]
async fn bank(amount: u64) -> Result<String, Failure> {
    match withdraw.call(amount).await {
        Ok(left) => Ok(format!("left {left}")),
        Err(e) if e.is::<Overdrawn>() => Ok(format!(
            "refused: {}",
            e.info().map(|i| i.message.as_str()).unwrap_or("")
        )),
        Err(e) => Err(e.into()),
    }
}

#[workflow]
async fn bank_unhandled(amount: u64) -> Result<u64, Failure> {
    Ok(withdraw.call(amount).await?)
}

#[task(cache)]
async fn fib(n: u64) -> Result<u64, Failure> {
    if n < 2 {
        return Ok(n);
    }
    let a = fib.submit(n - 1);
    let b = fib.submit(n - 2);
    Ok(a.result().await? + b.result().await?)
}

#[workflow]
async fn fib_flow(n: u64) -> Result<u64, Failure> {
    Ok(fib.call(n).await?)
}

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

#[task(retries(limit = 3, backoff_min_ms = 10, backoff_max_ms = 20))]
async fn flaky(x: u64) -> Result<u64, Failure> {
    FLAKY_CALLS.fetch_add(1, Ordering::SeqCst);
    match current_execution().map(|e| e.attempt) {
        Some(attempt) if attempt < 3 => Err(Failure::new(
            "test.Flaky",
            format!("attempt {attempt} failed"),
        )),
        _ => Ok(x),
    }
}

#[workflow]
async fn flaky_flow(x: u64) -> Result<u64, Failure> {
    Ok(flaky.call(x).await?)
}

#[task(timeout_ms = 50)]
async fn slow() -> Result<(), Failure> {
    actix_rt::time::sleep(Duration::from_secs(30)).await;
    Ok(())
}

#[workflow]
async fn slow_flow() -> Result<(), Failure> {
    Ok(slow.call().await?)
}

#[task(cache)]
async fn load(source: String) -> Result<String, Failure> {
    Ok(format!("data from {source}"))
}

#[task]
async fn transform(data: String, version: u32) -> Result<String, Failure> {
    Ok(format!("{data} transformed by v{version}"))
}

#[workflow]
async fn pipeline(source: String) -> Result<String, Failure> {
    let data = load.call(source).await?;
    Ok(transform.call(data, 1).await?)
}

/// Calls a task from a spawned task: `in_context` keeps it a child step.
#[workflow]
async fn spawned_call(x: u64) -> Result<u64, Failure> {
    let handle = actix_rt::spawn(in_context(async move { double.call(x).await }));
    Ok(handle.await.map_err(|e| Failure::msg(e.to_string()))??)
}

fn repository() -> Repository {
    Repository::new()
        .with(spawned_call)
        .with(double)
        .with(withdraw)
        .with(fan_out)
        .with(bank)
        .with(bank_unhandled)
        .with(fib)
        .with(fib_flow)
        .with(flaky)
        .with(flaky_flow)
        .with(slow)
        .with(slow_flow)
        .with(load)
        .with(transform)
        .with(pipeline)
}

async fn open(dir: &tempfile::TempDir) -> (Coflux, coflux_core::Project) {
    let coflux = Coflux::open(dir.path()).await.unwrap();
    let project = coflux.project("test").await.unwrap();
    project
        .ensure_environment("production", None)
        .await
        .unwrap();
    (coflux, project)
}

#[actix_rt::test]
async fn a_workflow_fans_out_and_collects_results() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, project) = open(&dir).await;
    let _worker = project.serve("production", repository()).await.unwrap();
    let run = project.submit("production", &fan_out, (20,)).await.unwrap();
    let out: Vec<u64> = run.result().await.unwrap();
    assert_eq!(out, (0..20).map(|i| i * 2).collect::<Vec<_>>());
    let view = run.inspect().await.unwrap();
    assert_eq!(view.steps.len(), 21);
    assert!(
        view.steps[1..]
            .iter()
            .all(|s| s.parent == Some(run.execution) && s.target.name == "double")
    );
    let e = &view.steps[0].executions[0];
    assert_eq!(e.state, ExecutionState::Finished(ResultKind::Value));
    assert!(e.assigned_at.is_some() && e.finished_at >= e.assigned_at);
}

#[actix_rt::test]
async fn child_errors_are_typed_on_the_callers_side() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, project) = open(&dir).await;
    let _worker = project.serve("production", repository()).await.unwrap();
    let handled: String = project
        .submit("production", &bank, (150,))
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(handled, "refused: balance too low for 150");
    let ok: String = project
        .submit("production", &bank, (30,))
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(ok, "left 70");
    let err = project
        .submit("production", &bank_unhandled, (500,))
        .await
        .unwrap()
        .result::<u64>()
        .await
        .unwrap_err();
    match err {
        coflux_core::Error::Execution(e @ ExecutionError::Failed(_)) => {
            assert!(
                e.is::<Overdrawn>(),
                "the workflow re-raised the child's error type: {e:?}"
            );
            assert_eq!(e.info().unwrap().message, "balance too low for 500");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[actix_rt::test]
async fn cached_recursive_fib_executes_each_n_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, project) = open(&dir).await;
    let _worker = project.serve("production", repository()).await.unwrap();
    let run = project
        .submit("production", &fib_flow, (25,))
        .await
        .unwrap();
    assert_eq!(run.result::<u64>().await.unwrap(), 75025);
    let view = run.inspect().await.unwrap();
    let executed: Vec<_> = view
        .steps_named("fib")
        .flat_map(|s| s.executions.iter())
        .filter(|e| matches!(e.result, Some(ExecutionResult::Value { .. })))
        .collect();
    assert_eq!(executed.len(), 26, "one execution per n in 0..=25");
    let linked = view
        .steps_named("fib")
        .flat_map(|s| s.executions.iter())
        .filter(|e| matches!(e.result, Some(ExecutionResult::Cached { .. })))
        .count();
    // fib(2..=25) each make two calls (48) plus the workflow's call: 49 calls, 26 executed,
    // the other 23 linked to an execution of the same n.
    assert_eq!(linked, 23);
}

#[actix_rt::test]
async fn failures_are_retried_with_backoff_until_success() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, project) = open(&dir).await;
    let _worker = project.serve("production", repository()).await.unwrap();
    let run = project
        .submit("production", &flaky_flow, (7,))
        .await
        .unwrap();
    assert_eq!(run.result::<u64>().await.unwrap(), 7);
    let view = run.inspect().await.unwrap();
    let step = view.steps_named("flaky").next().unwrap();
    let kinds: Vec<_> = step.executions.iter().map(|e| e.state).collect();
    assert_eq!(
        kinds,
        vec![
            ExecutionState::Finished(ResultKind::Error),
            ExecutionState::Finished(ResultKind::Error),
            ExecutionState::Finished(ResultKind::Value)
        ]
    );
    let gap = step.executions[1].assigned_at.unwrap() - step.executions[0].finished_at.unwrap();
    assert!(
        gap >= 10,
        "the first retry waits for the minimum backoff ({gap} ms)"
    );
}

#[actix_rt::test]
async fn timeouts_end_the_execution_and_reach_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, project) = open(&dir).await;
    let _worker = project.serve("production", repository()).await.unwrap();
    let err = project
        .submit("production", &slow_flow, ())
        .await
        .unwrap()
        .result::<()>()
        .await
        .unwrap_err();
    match err {
        coflux_core::Error::Execution(ExecutionError::Failed(info)) => {
            assert_eq!(info.error_type, "coflux.ExecutionTimeout")
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[actix_rt::test]
async fn a_child_environment_reuses_cached_results_and_reruns_a_step() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, project) = open(&dir).await;
    project
        .create_environment("development", Some("production"))
        .await
        .unwrap();
    let _prod = project.serve("production", repository()).await.unwrap();
    let _dev = project.serve("development", repository()).await.unwrap();

    let run = project
        .submit("production", &pipeline, ("s3://bucket",))
        .await
        .unwrap();
    let out: String = run.result().await.unwrap();
    assert_eq!(out, "data from s3://bucket transformed by v1");

    // A development run reuses production's cached load.
    let dev_run = project
        .submit("development", &pipeline, ("s3://bucket",))
        .await
        .unwrap();
    dev_run.result::<String>().await.unwrap();
    let dev_view = dev_run.inspect().await.unwrap();
    let load_exec = &dev_view.steps_named("load").next().unwrap().executions[0];
    assert!(
        matches!(load_exec.result, Some(ExecutionResult::Cached { .. })),
        "{load_exec:?}"
    );

    // Re-run production's transform step in development.
    let view = run.inspect().await.unwrap();
    let transform_step = view.steps_named("transform").next().unwrap().id;
    let rerun = project
        .rerun_step(transform_step, Some("development"))
        .await
        .unwrap();
    assert_eq!(rerun.attempt, 2);
    let result = project.execution_result(rerun).await.unwrap();
    assert!(matches!(result, ExecutionResult::Value { .. }));
    let prod_view = project
        .inspect_run(run.run, Some("production"))
        .await
        .unwrap();
    assert_eq!(
        prod_view.step(transform_step).unwrap().executions.len(),
        1,
        "production's view is untouched"
    );
    let dev_view = project
        .inspect_run(run.run, Some("development"))
        .await
        .unwrap();
    let execs = &dev_view.step(transform_step).unwrap().executions;
    assert_eq!(
        execs
            .iter()
            .map(|e| e.environment.as_str())
            .collect::<Vec<_>>(),
        vec!["production", "development"]
    );
    // The run's own result is still production's.
    assert_eq!(run.result::<String>().await.unwrap(), out);
    // Not in an unrelated environment.
    project.create_environment("elsewhere", None).await.unwrap();
    let err = project
        .rerun_step(transform_step, Some("elsewhere"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "environment_invalid");
}

#[actix_rt::test]
async fn a_paused_environment_keeps_work_queued_until_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, project) = open(&dir).await;
    let _worker = project.serve("production", repository()).await.unwrap();
    project.pause_environment("production").await.unwrap();
    let run = project.submit("production", &fan_out, (2,)).await.unwrap();
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    let view = run.inspect().await.unwrap();
    assert_eq!(view.steps[0].executions[0].state, ExecutionState::Queued);
    project.resume_environment("production").await.unwrap();
    assert_eq!(run.result::<Vec<u64>>().await.unwrap(), vec![0, 2]);
}

#[actix_rt::test]
async fn bad_input_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let coflux = Coflux::open(dir.path()).await.unwrap();
    assert_eq!(
        coflux.project("../etc").await.err().unwrap().code(),
        "invalid_input"
    );
    assert_eq!(
        coflux
            .existing_project("missing")
            .await
            .err()
            .unwrap()
            .code(),
        "project_not_found"
    );
    let project = coflux.project("p").await.unwrap();
    assert_eq!(
        project
            .create_environment("a b", None)
            .await
            .unwrap_err()
            .code(),
        "invalid_input"
    );
    let err = project.submit("nope", &fan_out, (1,)).await.err().unwrap();
    assert_eq!(err.code(), "environment_not_found");
    assert!(err.to_string().contains("nope"));
    let missing = "R99".parse().unwrap();
    assert_eq!(
        project.inspect_run(missing, None).await.unwrap_err().code(),
        "run_not_found"
    );
    assert_eq!(
        project
            .run(missing)
            .result::<u64>()
            .await
            .unwrap_err()
            .code(),
        "run_not_found"
    );
}

#[actix_rt::test]
async fn finished_runs_leave_memory_and_stay_usable() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, project) = open(&dir).await;
    let _worker = project.serve("production", repository()).await.unwrap();
    let mut runs = Vec::new();
    for i in 0..50 {
        let run = project
            .submit("production", &fan_out, (i % 3,))
            .await
            .unwrap();
        run.result::<Vec<u64>>().await.unwrap();
        runs.push(run);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while project.runs_in_memory() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} runs still in memory",
            project.runs_in_memory()
        );
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    // A retired run is read back from the database when needed.
    assert_eq!(runs[5].result::<Vec<u64>>().await.unwrap(), vec![0, 2]);
    let rerun = project
        .rerun_step(runs[5].execution.step, None)
        .await
        .unwrap();
    assert_eq!(rerun.attempt, 2);
    assert!(matches!(
        project.execution_result(rerun).await.unwrap(),
        ExecutionResult::Value { .. }
    ));
}

#[actix_rt::test]
async fn calls_from_spawned_tasks_stay_child_steps_with_in_context() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, project) = open(&dir).await;
    let _worker = project.serve("production", repository()).await.unwrap();
    let run = project
        .submit("production", &spawned_call, (21,))
        .await
        .unwrap();
    assert_eq!(run.result::<u64>().await.unwrap(), 42);
    let view = run.inspect().await.unwrap();
    assert_eq!(
        view.steps.len(),
        2,
        "the spawned call was recorded as a child step"
    );
    assert_eq!(view.steps[1].target.name, "double");
}

//! Supervision: actix does not restart an actor whose handler panicked, so the project's router
//! notices the dead actor on the next delivery and re-creates it from the database. Failures are
//! injected with the `failpoints` feature.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use coflux_core::Coflux;
use coflux_core::model::{ExecutionResult, ExecutionState};
use coflux_core::sdk::{Failure, Repository, task, workflow};

static OPEN: AtomicBool = AtomicBool::new(false);
/// Opens `held` (for the project actor's test; tests run concurrently).
static RELEASED: AtomicBool = AtomicBool::new(false);

#[task]
async fn held(x: u64) -> Result<u64, Failure> {
    while !RELEASED.load(Ordering::SeqCst) {
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(x + 10)
}

#[workflow]
async fn held_flow(x: u64) -> Result<u64, Failure> {
    Ok(held.call(x).await?)
}

#[task]
async fn gated(x: u64) -> Result<u64, Failure> {
    while !OPEN.load(Ordering::SeqCst) {
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(x + 1)
}

#[workflow(retries = 2)]
async fn flow(x: u64) -> Result<u64, Failure> {
    Ok(gated.call(x).await?)
}

#[task]
async fn plain(x: u64) -> Result<u64, Failure> {
    Ok(x * 3)
}

#[workflow]
async fn plain_flow(x: u64) -> Result<u64, Failure> {
    Ok(plain.call(x).await?)
}

fn repository() -> Repository {
    Repository::new()
        .with(flow)
        .with(gated)
        .with(plain)
        .with(plain_flow)
        .with(held)
        .with(held_flow)
}

/// Injected panics print one line (a backtrace of a debug build can take seconds to resolve).
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| eprintln!("panic (injected): {info}")));
}

/// A project with a `production` environment served by an in-process worker (keep the
/// `Coflux`: dropping it stops the orchestrator).
async fn start() -> (
    tempfile::TempDir,
    Coflux,
    coflux_core::Project,
    coflux_core::Worker,
) {
    let dir = tempfile::tempdir().unwrap();
    let coflux = Coflux::open(dir.path()).await.unwrap();
    let project = coflux.project("p").await.unwrap();
    project
        .ensure_environment("production", None)
        .await
        .unwrap();
    let worker = project.serve("production", repository()).await.unwrap();
    (dir, coflux, project, worker)
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    actix_rt::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("timed out")
}

#[actix_rt::test]
async fn a_run_whose_actor_panicked_is_recreated_from_the_database() {
    quiet_panics();
    let (_dir, _coflux, project, _worker) = start().await;
    let run = project.submit("production", &flow, (1,)).await.unwrap();
    within(async {
        loop {
            let view = run.inspect().await.unwrap();
            if view.steps.len() == 2
                && view.steps[1].executions[0].state == ExecutionState::Assigned
            {
                break;
            }
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // A caller already waiting when the actor panics.
    let waiting = {
        let run = run.clone();
        actix_rt::spawn(async move { run.result::<u64>().await })
    };
    actix_rt::time::sleep(Duration::from_millis(20)).await;
    project.inject_run_panic(run.run);
    actix_rt::time::sleep(Duration::from_millis(50)).await;
    OPEN.store(true, Ordering::SeqCst);
    // The run is reloaded from the database: what was running is abandoned, the workflow is
    // retried and completes; the caller that was waiting gets the result too.
    assert_eq!(within(run.result::<u64>()).await.unwrap(), 2);
    assert_eq!(within(waiting).await.unwrap().unwrap(), 2);
    let view = run.inspect().await.unwrap();
    let root = &view.steps[0].executions;
    assert!(
        matches!(
            root[0].result,
            Some(ExecutionResult::Abandoned { retry: Some(_) })
        ),
        "{root:?}"
    );
    assert!(matches!(
        root.last().unwrap().result,
        Some(ExecutionResult::Value { .. })
    ));
}

#[actix_rt::test]
async fn an_environment_whose_actor_panicked_is_recreated_with_its_workers() {
    quiet_panics();
    let (_dir, _coflux, project, _worker) = start().await;
    let first = project
        .submit("production", &plain_flow, (2,))
        .await
        .unwrap();
    assert_eq!(within(first.result::<u64>()).await.unwrap(), 6);
    project
        .inject_environment_panic("production")
        .await
        .unwrap();
    actix_rt::time::sleep(Duration::from_millis(50)).await;
    let second = project
        .submit("production", &plain_flow, (5,))
        .await
        .unwrap();
    assert_eq!(within(second.result::<u64>()).await.unwrap(), 15);
}

#[actix_rt::test]
async fn a_paused_environment_stays_paused_when_its_actor_is_reloaded() {
    quiet_panics();
    let (_dir, _coflux, project, _worker) = start().await;
    project.pause_environment("production").await.unwrap();
    let run = project
        .submit("production", &plain_flow, (1,))
        .await
        .unwrap();
    project
        .inject_environment_panic("production")
        .await
        .unwrap();
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    let view = run.inspect().await.unwrap();
    assert_eq!(
        view.steps[0].executions[0].state,
        ExecutionState::Queued,
        "nothing runs while paused"
    );
    project.resume_environment("production").await.unwrap();
    assert_eq!(within(run.result::<u64>()).await.unwrap(), 3);
}

#[actix_rt::test]
async fn a_project_actor_that_panicked_is_reloaded_in_place() {
    quiet_panics();
    let (_dir, _coflux, project, _worker) = start().await;
    let in_flight = project
        .submit("production", &held_flow, (1,))
        .await
        .unwrap();
    within(async {
        loop {
            let view = in_flight.inspect().await.unwrap();
            if view.steps.len() == 2
                && view.steps[1].executions[0].state == ExecutionState::Assigned
            {
                break;
            }
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    project.inject_project_panic();
    // What goes through the project actor works again: a new submission, a new environment.
    let second = within(project.submit("production", &plain_flow, (5,)))
        .await
        .unwrap();
    assert_eq!(within(second.result::<u64>()).await.unwrap(), 15);
    within(project.ensure_environment("staging", Some("production")))
        .await
        .unwrap();
    // The run in flight was not disturbed: it completes with its first executions.
    RELEASED.store(true, Ordering::SeqCst);
    assert_eq!(within(in_flight.result::<u64>()).await.unwrap(), 11);
    let view = in_flight.inspect().await.unwrap();
    assert_eq!(view.steps[0].executions.len(), 1, "{view:?}");
    assert_eq!(view.steps[1].executions.len(), 1, "{view:?}");
    // Its run numbers continue from what was committed (no id is handed out twice).
    assert_ne!(second.run, in_flight.run);
    let third = project
        .submit("production", &plain_flow, (1,))
        .await
        .unwrap();
    assert!(third.run > second.run, "{} after {}", third.run, second.run);
}

#[actix_rt::test]
async fn a_request_whose_handling_panicked_fails_and_the_next_one_succeeds() {
    quiet_panics();
    let (_dir, _coflux, project, _worker) = start().await;
    project.inject_project_panic_on_next();
    let refused = within(project.submit("production", &plain_flow, (2,))).await;
    let error = refused
        .err()
        .expect("the caller of the panicked message gets an error");
    assert!(
        error.to_string().contains("stopped before answering"),
        "{error}"
    );
    let run = within(project.submit("production", &plain_flow, (3,)))
        .await
        .unwrap();
    assert_eq!(within(run.result::<u64>()).await.unwrap(), 9);
    assert_eq!(
        project.list_runs(10).await.unwrap().len(),
        1,
        "nothing of the failed one"
    );
}

//! The execution driver in embedded mode (the same driver runs executions under an agent; see
//! `rust_semantics` for those): a panic becomes an error with its location, and waits inside a
//! `suspense` suspend the caller instead of holding it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use coflux_core::model::{ExecutionState, ResultKind};
use coflux_core::sdk::{
    ExecutionError, Failure, Repository, current_execution, suspense, task, workflow,
};

use super::embedded_semantics::{executions, open};

#[task]
async fn explodes(message: String) -> Result<u32, Failure> {
    panic!("{message}");
}

/// Returns what its panicking child failed with: type, message and the frame's file.
#[workflow]
async fn catches_a_panic() -> Result<(String, String, String), Failure> {
    match explodes.call("out of cheese".into()).await {
        Err(ExecutionError::Failed(info)) => Ok((
            info.error_type,
            info.message,
            info.frames
                .first()
                .map(|f| f.file.clone())
                .unwrap_or_default(),
        )),
        other => Err(Failure::msg(format!("expected a failure, got {other:?}"))),
    }
}

#[actix_rt::test]
async fn a_panicking_task_fails_with_its_message_and_location() {
    let dir = tempfile::tempdir().unwrap();
    let repository = Repository::new().with(catches_a_panic).with(explodes);
    let (_c, project) = open(&dir, repository).await;
    let run = project
        .submit("production", &catches_a_panic, ())
        .await
        .unwrap();
    let (error_type, message, file) = run.result::<(String, String, String)>().await.unwrap();
    assert_eq!(
        (error_type.as_str(), message.as_str()),
        ("coflux.Panic", "out of cheese")
    );
    assert!(file.ends_with("embedded_driver.rs"), "{file}");
}

static SLOW_RUNS: AtomicU32 = AtomicU32::new(0);

#[task]
async fn slow_double(x: u64, pause_ms: u64) -> Result<u64, Failure> {
    SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(pause_ms)).await;
    Ok(x * 2)
}

#[workflow]
async fn waits_in_suspense(x: u64, pause_ms: u64, limit_ms: u64) -> Result<String, Failure> {
    let child = slow_double.submit(x, pause_ms);
    let value = suspense(Duration::from_millis(limit_ms), child.result()).await?;
    let attempt = current_execution().map_or(0, |e| e.attempt);
    Ok(format!("{value} on attempt {attempt}"))
}

#[actix_rt::test]
async fn a_wait_that_runs_out_of_suspense_suspends_until_the_child_finished() {
    let dir = tempfile::tempdir().unwrap();
    let repository = Repository::new().with(waits_in_suspense).with(slow_double);
    let (_c, project) = open(&dir, repository).await;
    let run = project
        .submit("production", &waits_in_suspense, (21, 600, 0))
        .await
        .unwrap();
    assert_eq!(run.result::<String>().await.unwrap(), "42 on attempt 2");
    let view = run.inspect().await.unwrap();
    let attempts = executions(&view, "waits_in_suspense");
    let states: Vec<_> = attempts.iter().map(|e| e.state).collect();
    assert_eq!(
        states,
        [
            ExecutionState::Finished(ResultKind::Suspended),
            ExecutionState::Finished(ResultKind::Value)
        ],
        "{view}"
    );
    let child = executions(&view, "slow_double");
    assert_eq!(child.len(), 1, "the child ran once: {view}");
    let held = attempts[0].finished_at.unwrap() - attempts[0].assigned_at.unwrap();
    assert!(held < 550, "the first attempt held on for {held} ms");
    assert!(
        attempts[1].assigned_at.unwrap() >= child[0].finished_at.unwrap(),
        "the second attempt waited for the child: {view}"
    );

    // A child that finishes within the limit is simply awaited.
    let run = project
        .submit("production", &waits_in_suspense, (5, 10, 5_000))
        .await
        .unwrap();
    assert_eq!(run.result::<String>().await.unwrap(), "10 on attempt 1");
}

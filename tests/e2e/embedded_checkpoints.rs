//! The Rust SDK's `Checkpoint` in the embedded orchestrator: a retry starts from what the
//! failed attempt wrote, and the run's view shows the step's state.

use coflux_core::Coflux;
use coflux_core::model::Value;
use coflux_core::sdk::{Checkpoint, Failure, Repository, flush, task, workflow};

static CURSOR: Checkpoint<u64> = Checkpoint::new("cursor", 0);

#[task(retries(limit = 3, backoff_min_ms = 0, backoff_max_ms = 0))]
async fn resumable(goal: u64) -> Result<u64, Failure> {
    let position = CURSOR
        .update(|c| c + 1)
        .map_err(|e| Failure::new(e.code(), e.to_string()))?;
    if position == 2 {
        flush()
            .await
            .map_err(|e| Failure::new(e.code(), e.to_string()))?;
    }
    if position < goal {
        return Err(Failure::new("test.NotYet", format!("only at {position}")));
    }
    Ok(position)
}

#[workflow]
async fn retrying(goal: u64) -> Result<u64, Failure> {
    Ok(resumable.call(goal).await?)
}

#[actix_rt::test]
async fn embedded_checkpoints_carry_over_to_retries() {
    let dir = tempfile::tempdir().unwrap();
    let coflux = Coflux::open(dir.path()).await.unwrap();
    let project = coflux.project("test").await.unwrap();
    project
        .ensure_environment("production", None)
        .await
        .unwrap();
    let repository = Repository::new().with(resumable).with(retrying);
    let _worker = project.serve("production", repository).await.unwrap();
    let run = project.submit("production", &retrying, (3,)).await.unwrap();
    assert_eq!(run.result::<u64>().await.unwrap(), 3);
    let view = run.inspect().await.unwrap();
    let step = view.steps_named("resumable").next().unwrap();
    assert_eq!(step.executions.len(), 3);
    let state = &step.checkpoints["production"];
    assert!(
        matches!(&state["cursor"], Value::Raw { data, .. } if *data == serde_json::json!(3)),
        "{state:?}"
    );
}

#[test]
fn outside_an_execution_a_checkpoint_reads_its_default() {
    assert_eq!(CURSOR.get().unwrap(), 0);
    CURSOR.set(&5).unwrap();
    assert_eq!(CURSOR.get().unwrap(), 0, "kept nowhere");
}

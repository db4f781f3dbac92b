//! The Rust SDK's `Checkpoint` in the embedded orchestrator: a retry starts from what the
//! failed attempt wrote (also a struct with bytes, maps, a map keyed by tuples and an enum),
//! and the run's view shows the step's state.

use std::collections::{BTreeMap, HashMap};

use coflux_core::Coflux;
use coflux_core::model::Value;
use coflux_core::sdk::{Checkpoint, Failure, Repository, flush, task, workflow};
use serde::{Deserialize, Serialize};

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Phase {
    Fresh,
    Copying { from: String },
}

/// Step state of several serde shapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Ledger {
    bytes: Vec<u8>,
    by_number: BTreeMap<u32, String>,
    by_cell: BTreeMap<(u32, u32), Phase>,
    by_name: HashMap<String, Vec<u8>>,
    phases: Vec<Phase>,
    ratio: f64,
}

static LEDGER: Checkpoint<Option<Ledger>> = Checkpoint::new("ledger", None);

fn written() -> Ledger {
    Ledger {
        bytes: vec![0, 1, 254, 255],
        by_number: BTreeMap::from([(7, "seven".into()), (300, "many".into())]),
        by_cell: BTreeMap::from([((0, 1), Phase::Fresh), ((2, 0), Phase::Fresh)]),
        by_name: HashMap::from([("raw".to_owned(), vec![9, 0, 9])]),
        phases: vec![
            Phase::Fresh,
            Phase::Copying {
                from: "s3://a".into(),
            },
        ],
        ratio: 0.25,
    }
}

/// Writes the ledger and fails on its first attempt; the retry returns what it read back.
#[task(retries(limit = 1, backoff_min_ms = 0, backoff_max_ms = 0))]
async fn keeps_ledger() -> Result<Ledger, Failure> {
    let fail = |e: coflux_core::sdk::CheckpointError| Failure::new(e.code(), e.to_string());
    match LEDGER.get().map_err(fail)? {
        Some(ledger) => Ok(ledger),
        None => {
            LEDGER.set(&Some(written())).map_err(fail)?;
            Err(Failure::msg("first attempt"))
        }
    }
}

#[workflow]
async fn ledger_flow() -> Result<Ledger, Failure> {
    Ok(keeps_ledger.call().await?)
}

#[actix_rt::test]
async fn a_retry_reads_back_a_checkpoint_of_bytes_maps_tuple_keys_and_an_enum() {
    let dir = tempfile::tempdir().unwrap();
    let repository = Repository::new().with(keeps_ledger).with(ledger_flow);
    let (_coflux, project) = super::embedded_semantics::open(&dir, repository).await;
    let run = project
        .submit("production", &ledger_flow, ())
        .await
        .unwrap();
    assert_eq!(run.result::<Ledger>().await.unwrap(), written());
    let view = run.inspect().await.unwrap();
    let step = view.steps_named("keeps_ledger").next().unwrap();
    assert_eq!(step.executions.len(), 2, "read back by the retry");
}

/// A value with no form in the encoding (an integer past 64 bits) is refused when it is set,
/// with an error naming the checkpoint.
#[test]
fn a_checkpoint_without_an_encoding_is_refused_by_name() {
    static BIG: Checkpoint<u128> = Checkpoint::new("big", 0);
    let error = BIG.set(&u128::MAX).unwrap_err();
    assert_eq!(error.code(), "checkpoint_encode");
    assert!(error.to_string().contains("'big'"), "{error}");
    BIG.set(&7).unwrap();
}

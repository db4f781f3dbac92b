//! Tests of the SQLite store: round trips, failed batches, reopening, readers.

use super::connection::PAGE_SIZE;
use super::*;
use crate::model::{CacheConfig, ErrorInfo, Millis, ParamSelection, StepOptions, Value};
use crate::model::{
    Environment, EnvironmentName, EnvironmentState, ExecutionId, ExecutionResult, RunRecord,
    StepId, TargetKind,
};
use crate::model::{StepRecord, WorkerId};
use crate::store::{CacheEntry, CacheOutcome};
use serde_json::json;

fn env(id: u32, name: &str) -> Environment {
    Environment {
        id: EnvironmentId(id),
        name: EnvironmentName::new(name).unwrap(),
        parent: None,
        state: EnvironmentState::Active,
        created_at: 1_000,
    }
}

fn exec(run: u64, step: u32, attempt: u32) -> ExecutionId {
    StepId {
        run: RunId(run),
        number: step,
    }
    .execution(attempt)
}

fn step(run: u64, number: u32, parent: Option<ExecutionId>, cache_key: Option<&str>) -> StepRecord {
    StepRecord {
        id: StepId {
            run: RunId(run),
            number,
        },
        parent_execution: parent,
        target: TargetRef::new("app.flows", if number == 1 { "main" } else { "task" }),
        kind: if number == 1 {
            TargetKind::Workflow
        } else {
            TargetKind::Task
        },
        arguments: vec![Value::raw(json!({"n": number})), Value::null()],
        options: StepOptions {
            cache: cache_key.map(|_| CacheConfig {
                params: ParamSelection::All(true),
                max_age_ms: Some(60_000),
                namespace: None,
                version: None,
            }),
            ..StepOptions::default()
        },
        cache_key: cache_key.map(str::to_owned),
        memo_key: None,
        created_at: 2_000 + i64::from(number),
    }
}

fn create_execution(id: ExecutionId, at: Millis) -> Write {
    Write::CreateExecution {
        id,
        environment: EnvironmentId(1),
        execute_after: None,
        created_at: at,
        dependencies: Default::default(),
    }
}

/// A run with a workflow step (assigned, running) and a cached task step (finished).
fn sample_run(run: u64) -> Vec<Write> {
    let root = exec(run, 1, 1);
    let child = exec(run, 2, 1);
    vec![
        Write::CreateRun(RunRecord {
            id: RunId(run),
            environment: EnvironmentId(1),
            parent_execution: None,
            created_at: 2_000,
        }),
        Write::CreateStep(Box::new(step(run, 1, None, None))),
        create_execution(root, 2_001),
        Write::Assign {
            execution: root,
            worker: WorkerId(7),
            at: 2_002,
        },
        Write::CreateStep(Box::new(step(run, 2, Some(root), Some("key-a")))),
        create_execution(child, 2_003),
        Write::Assign {
            execution: child,
            worker: WorkerId(7),
            at: 2_004,
        },
        Write::RecordResult {
            execution: child,
            result: ExecutionResult::Value {
                value: Value::raw(json!([1, 2])),
            },
            at: 2_005,
        },
        Write::LinkChild {
            parent: root,
            child,
        },
    ]
}

fn open_temp() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        SqliteStore::open(&dir.path().join("p/project.sqlite"), Durability::Normal).unwrap();
    (dir, store)
}

#[test]
fn store_sqlite_round_trips_a_run() {
    let (_dir, mut store) = open_temp();
    store
        .apply(&[Write::CreateEnvironment(env(1, "production"))])
        .unwrap();
    store.apply(&sample_run(1)).unwrap();

    let snapshot = store.load().unwrap();
    assert_eq!(snapshot.environments, vec![env(1, "production")]);
    assert_eq!(snapshot.next_run, 2);
    assert_eq!(snapshot.active_runs.len(), 1);
    let run = &snapshot.active_runs[0];
    assert_eq!(run.run.id, RunId(1));
    assert_eq!(
        run.steps,
        vec![
            step(1, 1, None, None),
            step(1, 2, Some(exec(1, 1, 1)), Some("key-a"))
        ]
    );
    assert_eq!(run.executions.len(), 2);
    assert_eq!(run.executions[0].id, exec(1, 1, 1));
    assert_eq!(run.executions[0].assignment, Some((WorkerId(7), 2_002)));
    assert_eq!(run.executions[0].result, None);
    assert_eq!(run.executions[1].created_at, 2_003);
    assert_eq!(
        run.executions[1].result,
        Some((
            ExecutionResult::Value {
                value: Value::raw(json!([1, 2]))
            },
            2_005
        ))
    );
    assert_eq!(run.children, vec![(exec(1, 1, 1), exec(1, 2, 1))]);
    assert_eq!(
        snapshot.cache_entries,
        vec![CacheEntry {
            key: "key-a".into(),
            execution: exec(1, 2, 1),
            environment: EnvironmentId(1),
            created_at: 2_003,
            outcome: CacheOutcome::Succeeded(2_005),
        }]
    );
    assert_eq!(store.load_run(RunId(1)).unwrap().as_ref(), Some(run));
    assert_eq!(store.load_run(RunId(9)).unwrap(), None);
}

#[test]
fn store_sqlite_finished_runs_are_not_active() {
    let (_dir, mut store) = open_temp();
    store
        .apply(&[Write::CreateEnvironment(env(1, "production"))])
        .unwrap();
    store.apply(&sample_run(1)).unwrap();
    store.apply(&sample_run(2)).unwrap();
    store
        .apply(&[Write::RecordResult {
            execution: exec(1, 1, 1),
            result: ExecutionResult::Error {
                error: ErrorInfo::new("E", "boom"),
                retry: None,
            },
            at: 3_000,
        }])
        .unwrap();
    let snapshot = store.load().unwrap();
    assert_eq!(snapshot.next_run, 3);
    let active: Vec<_> = snapshot.active_runs.iter().map(|r| r.run.id).collect();
    assert_eq!(active, vec![RunId(2)]);
    // The finished run can still be read.
    let run = store.load_run(RunId(1)).unwrap().unwrap();
    assert!(run.executions.iter().all(|e| e.result.is_some()));
}

#[test]
fn store_sqlite_cache_entries_report_pending_and_skip_failures() {
    let (_dir, mut store) = open_temp();
    store
        .apply(&[Write::CreateEnvironment(env(1, "production"))])
        .unwrap();
    let mut writes = sample_run(1);
    writes.truncate(6); // step 2 created, not finished
    store.apply(&writes).unwrap();
    assert_eq!(
        store.load().unwrap().cache_entries[0].outcome,
        CacheOutcome::Pending
    );
    store
        .apply(&[Write::RecordResult {
            execution: exec(1, 2, 1),
            result: ExecutionResult::Cancelled,
            at: 5,
        }])
        .unwrap();
    assert!(store.load().unwrap().cache_entries.is_empty());
}

#[test]
fn store_sqlite_duplicate_result_is_ignored() {
    let (_dir, mut store) = open_temp();
    store
        .apply(&[Write::CreateEnvironment(env(1, "production"))])
        .unwrap();
    store.apply(&sample_run(1)).unwrap();
    let root = exec(1, 1, 1);
    let first = Write::RecordResult {
        execution: root,
        result: ExecutionResult::Cancelled,
        at: 10,
    };
    let second = Write::RecordResult {
        execution: root,
        result: ExecutionResult::Value {
            value: Value::null(),
        },
        at: 11,
    };
    store.apply(&[first]).unwrap();
    store.apply(&[second.clone(), second]).unwrap();
    let run = store.load_run(RunId(1)).unwrap().unwrap();
    assert_eq!(
        run.executions[0].result,
        Some((ExecutionResult::Cancelled, 10))
    );
    // The open-execution count did not go negative or stay positive.
    assert!(store.load().unwrap().active_runs.is_empty());
    let open: i64 = store
        .conn
        .query_row("SELECT open_executions FROM runs WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(open, 0);
}

#[test]
fn store_sqlite_failed_batch_applies_nothing() {
    let (_dir, mut store) = open_temp();
    store
        .apply(&[Write::CreateEnvironment(env(1, "production"))])
        .unwrap();
    let mut writes = sample_run(1);
    // A result for an execution that does not exist fails the whole batch.
    writes.push(Write::RecordResult {
        execution: exec(1, 9, 1),
        result: ExecutionResult::Cancelled,
        at: 1,
    });
    let err = store.apply(&writes).unwrap_err();
    assert!(
        matches!(&err, StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation),
        "{err:?}"
    );
    assert_eq!(store.load_run(RunId(1)).unwrap(), None);
    let snapshot = store.load().unwrap();
    assert_eq!(snapshot.next_run, 1);
    assert!(snapshot.active_runs.is_empty() && snapshot.cache_entries.is_empty());

    // Duplicate primary keys fail too, and leave the earlier writes of the batch undone.
    store.apply(&sample_run(1)).unwrap();
    let err = store
        .apply(&[
            Write::CreateEnvironment(env(2, "staging")),
            Write::CreateRun(RunRecord {
                id: RunId(1),
                environment: EnvironmentId(1),
                parent_execution: None,
                created_at: 0,
            }),
        ])
        .unwrap_err();
    assert!(matches!(err, StoreError::Sqlite(_)));
    assert_eq!(store.load().unwrap().environments.len(), 1);

    // Other references to missing rows.
    for bad in [
        Write::SetEnvironmentState {
            id: EnvironmentId(5),
            state: EnvironmentState::Paused,
        },
        Write::CreateStep(Box::new(step(4, 1, None, None))),
        create_execution(exec(1, 5, 1), 0),
        Write::Assign {
            execution: exec(1, 1, 2),
            worker: WorkerId(1),
            at: 0,
        },
    ] {
        assert!(store.apply(std::slice::from_ref(&bad)).is_err(), "{bad:?}");
    }
}

#[test]
fn store_sqlite_environment_state_and_listing() {
    let (_dir, mut store) = open_temp();
    let mut staging = env(2, "staging");
    staging.parent = Some(EnvironmentId(1));
    store
        .apply(&[
            Write::CreateEnvironment(env(1, "production")),
            Write::CreateEnvironment(staging.clone()),
            Write::SetEnvironmentState {
                id: EnvironmentId(2),
                state: EnvironmentState::Paused,
            },
        ])
        .unwrap();
    staging.state = EnvironmentState::Paused;
    assert_eq!(
        store.load().unwrap().environments,
        vec![env(1, "production"), staging]
    );

    for run in 1..=5u64 {
        let mut writes = sample_run(run);
        if let Write::CreateRun(r) = &mut writes[0] {
            r.environment = EnvironmentId(if run % 2 == 0 { 2 } else { 1 });
            r.created_at = 100 + run as i64;
        }
        store.apply(&writes).unwrap();
    }
    let all = store.list_runs(None, 3).unwrap();
    assert_eq!(
        all.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![RunId(5), RunId(4), RunId(3)]
    );
    assert_eq!(all[0].target, TargetRef::new("app.flows", "main"));
    assert_eq!(all[0].created_at, 105);
    let staging_runs = store.list_runs(Some(EnvironmentId(2)), 10).unwrap();
    assert_eq!(
        staging_runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![RunId(4), RunId(2)]
    );
    assert!(
        staging_runs
            .iter()
            .all(|r| r.environment == EnvironmentId(2))
    );
}

#[test]
fn store_sqlite_data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("project.sqlite");
    {
        let mut store = SqliteStore::open(&path, Durability::Full).unwrap();
        store
            .apply(&[Write::CreateEnvironment(env(1, "production"))])
            .unwrap();
        store.apply(&sample_run(1)).unwrap();
    }
    let expected = {
        let reader = SqliteStore::open_reader(&path).unwrap();
        reader.load().unwrap()
    };
    let store = SqliteStore::open(&path, Durability::Normal).unwrap();
    let snapshot = store.load().unwrap();
    assert_eq!(snapshot, expected);
    assert_eq!(snapshot.active_runs.len(), 1);
    assert_eq!(snapshot.active_runs[0].executions.len(), 2);
    assert_eq!(snapshot.next_run, 2);
}

#[test]
fn store_sqlite_reader_sees_commits_and_refuses_writes() {
    let (dir, mut store) = open_temp();
    let mut reader = SqliteStore::open_reader(&dir.path().join("p/project.sqlite")).unwrap();
    assert!(reader.is_read_only());
    store
        .apply(&[Write::CreateEnvironment(env(1, "production"))])
        .unwrap();
    store.apply(&sample_run(1)).unwrap();
    assert!(reader.load_run(RunId(1)).unwrap().is_some());
    assert!(
        reader
            .apply(&[Write::CreateEnvironment(env(2, "x"))])
            .is_err()
    );
    assert!(SqliteStore::open_reader(&dir.path().join("missing.sqlite")).is_err());
}

#[test]
fn store_sqlite_in_memory_store_works() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    store
        .apply(&[Write::CreateEnvironment(env(1, "production"))])
        .unwrap();
    store.apply(&sample_run(3)).unwrap();
    assert_eq!(store.load().unwrap().next_run, 4);
}

#[test]
fn store_sqlite_raw_commit_benchmark_runs() {
    let dir = tempfile::tempdir().unwrap();
    let rate =
        raw_commit_benchmark(&dir.path().join("raw.sqlite"), Durability::Normal, 50).unwrap();
    assert!(rate > 0.0);
    assert!(raw_commit_benchmark(&dir.path().join("raw.sqlite"), Durability::Normal, 1).is_err());
}

fn finish(execution: ExecutionId) -> Write {
    Write::RecordResult {
        execution,
        result: ExecutionResult::Cancelled,
        at: 3_000,
    }
}

fn active(store: &SqliteStore) -> Vec<RunId> {
    let snapshot = store.load().unwrap();
    snapshot.active_runs.iter().map(|r| r.run.id).collect()
}

#[test]
fn store_sqlite_run_activity_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("project.sqlite");
    let mut store = SqliteStore::open(&path, Durability::Normal).unwrap();
    store
        .apply(&[Write::CreateEnvironment(env(1, "production"))])
        .unwrap();
    // Run 1 has two open executions (the root and a retry of the child).
    let mut writes = sample_run(1);
    writes.push(create_execution(exec(1, 2, 2), 2_010));
    store.apply(&writes).unwrap();
    drop(store);

    // A new process: the counts are read back from the executions.
    let mut store = SqliteStore::open(&path, Durability::Normal).unwrap();
    assert_eq!(active(&store), vec![RunId(1)]);
    store.apply(&[finish(exec(1, 2, 2))]).unwrap();
    assert_eq!(active(&store), vec![RunId(1)], "the root is still open");
    // A failed batch (its second write refers to nothing) changes no count.
    let failed = store.apply(&[finish(exec(1, 1, 1)), finish(exec(1, 9, 1))]);
    assert!(failed.is_err());
    assert_eq!(active(&store), vec![RunId(1)]);
    store.apply(&[finish(exec(1, 1, 1))]).unwrap();
    assert!(active(&store).is_empty());
    // A re-run makes it active again.
    store
        .apply(&[create_execution(exec(1, 1, 2), 4_000)])
        .unwrap();
    assert_eq!(active(&store), vec![RunId(1)]);
}

#[test]
fn store_sqlite_migration_keeps_assignments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("project.sqlite");
    {
        // A database as version 6 left it, with an assignment in its own table.
        let mut conn = Connection::open(&path).unwrap();
        schema::migrations().to_version(&mut conn, 6).unwrap();
        conn.execute_batch(
            "INSERT INTO environments VALUES (1, 'production', NULL, 'active', 1);
             INSERT INTO runs VALUES (1, 1, NULL, 1, 1);
             INSERT INTO steps VALUES (1, 1, NULL, 'm', 't', 'workflow', '[]', '{}',
                                       NULL, NULL, 1);
             INSERT INTO executions VALUES (1, 1, 1, 1, NULL, 1, NULL);
             INSERT INTO assignments VALUES (1, 1, 1, 42, 5);",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path, Durability::Normal).unwrap();
    let run = store.load_run(RunId(1)).unwrap().unwrap();
    assert_eq!(run.executions[0].assignment, Some((WorkerId(42), 5)));
    assert_eq!(active(&store), vec![RunId(1)]);
}

#[test]
fn store_sqlite_new_databases_use_small_pages() {
    let (_dir, store) = open_temp();
    let size: i64 = store
        .conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    assert_eq!(size, PAGE_SIZE);
}

//! Backend conformance: the same write sequences applied to a SQLite and a PostgreSQL store
//! read back equal (`load`, `load_run`, `list_runs`, `manifests` and the extra reads).
//!
//! The PostgreSQL side needs a server: `COFLUX_TEST_DATABASE_URL=postgres://…` (see
//! `scripts/setup-postgres.sh`). Without it these tests print why and pass, unless
//! `COFLUX_PG_TESTS=require`, which makes a missing URL a failure (CI sets it).

use serde_json::json;

use super::postgres::{PgLocation, PgStore};
use super::sqlite::SqliteStore;
use super::{ProjectStore, Write};
use crate::model::{
    CacheConfig, Environment, EnvironmentId, EnvironmentName, EnvironmentState, ErrorInfo,
    ExecutionId, ExecutionResult, InputId, InputRecord, InputSpec, InputState, ParamSelection,
    RunId, RunRecord, Schedule, StepId, StepOptions, StepRecord, StreamClosure, StreamId,
    TargetDefinition, TargetKind, TargetRef, Value, WorkerId,
};

/// The test database's URL, or `None` (with a printed reason) when PostgreSQL tests are off.
pub(crate) fn test_database_url() -> Option<String> {
    match std::env::var("COFLUX_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("COFLUX_PG_TESTS").as_deref() == Ok("require") => {
            panic!("COFLUX_PG_TESTS=require but COFLUX_TEST_DATABASE_URL is not set")
        }
        _ => {
            eprintln!(
                "skipped: PostgreSQL store test (set COFLUX_TEST_DATABASE_URL, see scripts/setup-postgres.sh)"
            );
            None
        }
    }
}

/// A project schema of its own in the test database, dropped at the end of the test.
pub(crate) struct TestSchema {
    pub(crate) location: PgLocation,
}

impl TestSchema {
    pub(crate) fn new(url: &str, tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let schema = format!(
            "cx_test_{tag}_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Self {
            location: PgLocation {
                url: url.to_owned(),
                schema,
            },
        }
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let url = self.location.url.clone();
        let schema = self.location.schema.clone();
        // Its own thread: the client must not run inside an async runtime.
        let _ = std::thread::spawn(move || {
            if let Ok(mut client) = postgres::Client::connect(&url, postgres::NoTls) {
                let _ =
                    client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
            }
        })
        .join();
    }
}

fn exec(run: u64, step: u32, attempt: u32) -> ExecutionId {
    StepId {
        run: RunId(run),
        number: step,
    }
    .execution(attempt)
}

fn environment(id: u32, name: &str, parent: Option<u32>) -> Environment {
    Environment {
        id: EnvironmentId(id),
        name: EnvironmentName::new(name).unwrap(),
        parent: parent.map(EnvironmentId),
        state: EnvironmentState::Active,
        created_at: 1_000 + i64::from(id),
    }
}

fn step(run: u64, number: u32, parent: Option<ExecutionId>, cache_key: Option<&str>) -> Write {
    Write::CreateStep(Box::new(StepRecord {
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
        arguments: vec![
            Value::raw(json!({"n": number, "text": "é ✓"})),
            Value::Blob {
                key: format!("{number:064}"),
                size: 3,
                references: Vec::new(),
            },
        ],
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
        memo_key: (number == 3).then(|| "memo-3".to_owned()),
        created_at: 2_000 + i64::from(number),
    }))
}

fn run(id: u64, env: u32, parent: Option<ExecutionId>) -> Write {
    Write::CreateRun(RunRecord {
        id: RunId(id),
        environment: EnvironmentId(env),
        parent_execution: parent,
        created_at: 2_000 + i64::try_from(id).unwrap(),
    })
}

fn execution(id: ExecutionId, env: u32, after: Option<ExecutionId>) -> Write {
    Write::CreateExecution {
        id,
        environment: EnvironmentId(env),
        execute_after: after.map(|_| 9_000),
        created_at: 3_000,
        dependencies: crate::model::Dependencies::all(after.into_iter().collect()),
    }
}

fn value(v: serde_json::Value) -> ExecutionResult {
    ExecutionResult::Value {
        value: Value::raw(v),
    }
}

fn definition(module: &str, name: &str) -> TargetDefinition {
    TargetDefinition {
        target: TargetRef::new(module, name),
        kind: TargetKind::Task,
        parameters: Vec::new(),
        options: StepOptions::default(),
        instruction: Some(format!("{module}.{name}")),
    }
}

fn input(run: u64, number: u32, state: InputState) -> Write {
    Write::PutInput(Box::new(InputRecord {
        id: InputId {
            run: RunId(run),
            number,
        },
        execution: exec(run, 1, 1),
        spec: InputSpec {
            template: "Approve {n}?".into(),
            placeholders: Some(json!({"n": 1})),
            schema: None,
            key: format!("k{number}"),
            title: None,
            actions: None,
            initial: None,
            requires: Some(json!(["ops"])),
        },
        created_at: 4_000 + i64::from(number),
        state,
    }))
}

/// Batches touching every kind of write: environments, manifests, limits, schedules, three
/// runs (one active with streams, checkpoints, inputs and calls; one finished; one spawned),
/// a duplicate result, and replacements of earlier rows.
fn batches() -> Vec<Vec<Write>> {
    let (r1, r1c, r1m) = (exec(1, 1, 1), exec(1, 2, 1), exec(1, 3, 1));
    let stream = StreamId {
        step: StepId {
            run: RunId(1),
            number: 1,
        },
        index: 0,
    };
    let schedule = |id: u32, last_tick| {
        Write::PutSchedule(Box::new(Schedule {
            id,
            environment: EnvironmentId(1),
            target: TargetRef::new("app.flows", "main"),
            cron: "*/5 * * * *".into(),
            arguments: vec![Value::raw(json!(id))],
            options: StepOptions::default(),
            created_at: 1_500,
            last_tick,
            missed: 0,
        }))
    };
    vec![
        vec![
            Write::CreateEnvironment(environment(1, "production", None)),
            Write::CreateEnvironment(environment(2, "staging", Some(1))),
            Write::CreateEnvironment(environment(3, "dev", None)),
            Write::SetEnvironmentState {
                id: EnvironmentId(3),
                state: EnvironmentState::Archived,
            },
            Write::SetEnvironmentParent {
                id: EnvironmentId(3),
                parent: Some(EnvironmentId(2)),
            },
        ],
        vec![
            Write::PutManifests {
                environment: EnvironmentId(1),
                definitions: vec![
                    definition("b.mod", "x"),
                    definition("a.mod", "y"),
                    definition("a.mod", "Z"),
                ],
                at: 1_100,
            },
            Write::PutManifests {
                environment: EnvironmentId(2),
                definitions: vec![definition("c", "z")],
                at: 1_101,
            },
            Write::PutManifests {
                environment: EnvironmentId(1),
                definitions: vec![definition("b.mod", "x")],
                at: 1_102,
            },
            Write::ArchiveModule {
                environment: EnvironmentId(2),
                module: "c".into(),
            },
            Write::PutConcurrencyLimit {
                environment: EnvironmentId(1),
                target: TargetRef::new("a", "t"),
                max: Some(3),
            },
            Write::PutConcurrencyLimit {
                environment: EnvironmentId(1),
                target: TargetRef::new("a", "t"),
                max: Some(4),
            },
            Write::PutConcurrencyLimit {
                environment: EnvironmentId(1),
                target: TargetRef::new("a", "u"),
                max: Some(1),
            },
            Write::PutConcurrencyLimit {
                environment: EnvironmentId(1),
                target: TargetRef::new("a", "u"),
                max: None,
            },
            schedule(1, 1_600),
            schedule(2, 1_600),
            Write::ScheduleTicked {
                id: 1,
                last_tick: 1_900,
                missed: 2,
            },
            Write::DeleteSchedule { id: 2 },
        ],
        vec![
            run(1, 1, None),
            step(1, 1, None, None),
            execution(r1, 1, None),
            Write::Assign {
                execution: r1,
                worker: WorkerId(7),
                at: 3_001,
            },
            Write::PutIdempotencyKey {
                environment: EnvironmentId(1),
                key: "once".into(),
                run: RunId(1),
                at: 3_002,
            },
            step(1, 2, Some(r1), Some("key-a")),
            execution(r1c, 1, None),
            Write::Assign {
                execution: r1c,
                worker: WorkerId(8),
                at: 3_003,
            },
            Write::Assign {
                execution: r1c,
                worker: WorkerId(9),
                at: 3_004,
            },
            Write::RecordResult {
                execution: r1c,
                result: value(json!([1, 2])),
                at: 3_005,
            },
            Write::RecordResult {
                execution: r1c,
                result: value(json!("second, ignored")),
                at: 3_006,
            },
            step(1, 3, Some(r1), Some("key-b")),
            execution(r1m, 1, Some(r1c)),
            Write::LinkChild {
                parent: r1,
                child: r1c,
            },
            Write::LinkChild {
                parent: r1,
                child: r1m,
            },
            Write::LinkChild {
                parent: r1,
                child: r1m,
            },
            Write::PutCall {
                parent: r1,
                call: 2,
                child: r1m,
            },
            Write::PutCall {
                parent: r1,
                call: 1,
                child: r1c,
            },
            Write::PutCall {
                parent: r1,
                call: 1,
                child: r1m,
            },
        ],
        vec![
            Write::PutCheckpoints {
                step: StepId {
                    run: RunId(1),
                    number: 1,
                },
                environment: EnvironmentId(1),
                state: std::sync::Arc::new([("a".to_owned(), Value::raw(json!(1)))].into()),
                at: 3_100,
            },
            Write::PutCheckpoints {
                step: StepId {
                    run: RunId(1),
                    number: 1,
                },
                environment: EnvironmentId(1),
                state: std::sync::Arc::new([("b".to_owned(), Value::raw(json!(2)))].into()),
                at: 3_101,
            },
            Write::PutStream {
                stream,
                position: 0,
                producer: r1,
                buffer: Some(4),
                timeout_ms: None,
                opened_at: 3_200,
            },
            Write::PutStreamItem {
                stream,
                sequence: 0,
                value: Value::raw(json!("a")),
                at: 3_201,
            },
            Write::PutStreamItem {
                stream,
                sequence: 1,
                value: Value::raw(json!("b")),
                at: 3_202,
            },
            Write::PutStreamItem {
                stream,
                sequence: 1,
                value: Value::raw(json!("dup")),
                at: 3_203,
            },
            Write::PutStream {
                stream: StreamId { index: 1, ..stream },
                position: 1,
                producer: r1,
                buffer: None,
                timeout_ms: Some(5_000),
                opened_at: 3_204,
            },
            Write::CloseStream {
                stream: StreamId { index: 1, ..stream },
                closure: StreamClosure::Errored {
                    error: ErrorInfo::new("Boom", "it broke"),
                },
                at: 3_205,
            },
            input(1, 1, InputState::Pending),
            input(1, 2, InputState::Pending),
            input(
                1,
                2,
                InputState::Responded {
                    value: json!({"ok": true}),
                    at: 4_100,
                },
            ),
        ],
        // A finished run in the staging environment, and a run spawned from run 1.
        vec![
            run(2, 2, None),
            step(2, 1, None, None),
            execution(exec(2, 1, 1), 2, None),
            Write::RecordResult {
                execution: exec(2, 1, 1),
                result: value(json!(null)),
                at: 5_000,
            },
            run(3, 1, Some(r1)),
            step(3, 1, Some(r1), Some("key-a")),
            execution(exec(3, 1, 1), 1, None),
            execution(exec(3, 1, 2), 1, None),
            Write::RecordResult {
                execution: exec(3, 1, 1),
                result: ExecutionResult::Abandoned {
                    retry: Some(exec(3, 1, 2)),
                },
                at: 5_100,
            },
        ],
    ]
}

/// Applies every batch, then a batch that must fail (a step of an unknown run after a valid
/// write), checking it changed nothing.
fn apply_all(store: &mut dyn ProjectStore) {
    for batch in batches() {
        store.apply(&batch).unwrap();
    }
    let before = store.load().unwrap();
    let failing = vec![run(9, 1, None), step(8, 1, None, None)];
    assert!(
        store.apply(&failing).is_err(),
        "a step of an unknown run must fail its batch"
    );
    assert_eq!(
        store.load().unwrap(),
        before,
        "a failed batch must apply nothing"
    );
    assert!(store.load_run(RunId(9)).unwrap().is_none());
    // The store still takes batches after a failed one.
    store
        .apply(&[Write::RecordResult {
            execution: exec(3, 1, 2),
            result: value(json!(3)),
            at: 5_200,
        }])
        .unwrap();
}

/// Everything the trait reads, as one comparable value.
fn read_all(store: &dyn ProjectStore) -> impl PartialEq + std::fmt::Debug + use<> {
    let runs: Vec<_> = (1..=4).map(|r| store.load_run(RunId(r)).unwrap()).collect();
    let lists = (
        store.list_runs(None, 10).unwrap(),
        store.list_runs(None, 2).unwrap(),
        store.list_runs(Some(EnvironmentId(2)), 10).unwrap(),
        store.list_runs(Some(EnvironmentId(3)), 10).unwrap(),
    );
    let manifests: Vec<_> = (1..=3)
        .map(|e| store.manifests(EnvironmentId(e)).unwrap())
        .collect();
    (store.load().unwrap(), runs, lists, manifests)
}

#[test]
fn store_conformance_sqlite_and_postgres_read_back_equal() {
    let Some(url) = test_database_url() else {
        return;
    };
    let schema = TestSchema::new(&url, "conf");
    let dir = tempfile::tempdir().unwrap();
    let mut sqlite =
        SqliteStore::open(&dir.path().join("p.sqlite"), super::Durability::Normal).unwrap();
    let mut pg = PgStore::open(&schema.location).unwrap();
    apply_all(&mut sqlite);
    apply_all(&mut pg);

    let expected = read_all(&sqlite);
    assert_eq!(read_all(&pg), expected);
    // The snapshot is not trivially equal: it holds what the writes made.
    let snapshot = pg.load().unwrap();
    assert_eq!(snapshot.environments.len(), 3);
    assert_eq!(snapshot.next_run, 4);
    assert_eq!(
        snapshot
            .active_runs
            .iter()
            .map(|r| r.run.id)
            .collect::<Vec<_>>(),
        [RunId(1)]
    );
    assert_eq!(snapshot.active_runs[0].streams[0].items.len(), 2);
    assert_eq!(
        snapshot.concurrency_limits,
        [(EnvironmentId(1), TargetRef::new("a", "t"), 4)]
    );
    assert_eq!(snapshot.schedules.len(), 1);
    assert_eq!(snapshot.schedules[0].missed, 2);

    // The reads outside the trait agree too.
    assert_eq!(
        pg.pending_inputs(10).unwrap(),
        sqlite.pending_inputs(10).unwrap()
    );
    assert_eq!(pg.pending_inputs(10).unwrap().len(), 1);
    let id = InputId {
        run: RunId(1),
        number: 2,
    };
    assert_eq!(pg.input(id).unwrap(), sqlite.input(id).unwrap());
    assert_eq!(pg.schedules().unwrap(), sqlite.schedules().unwrap());
    assert_eq!(
        pg.concurrency_limits(EnvironmentId(1)).unwrap(),
        sqlite.concurrency_limits(EnvironmentId(1)).unwrap()
    );

    use super::location::ProjectReader;
    use super::run_list::{RunFilter, RunStatus};
    assert_eq!(ProjectReader::referenced_blob_keys(&sqlite).unwrap().len(), 3, "sqlite");
    assert_eq!(ProjectReader::referenced_blob_keys(&pg).unwrap().len(), 3);
    assert_eq!(
        ProjectReader::referenced_blob_keys(&pg).unwrap(),
        ProjectReader::referenced_blob_keys(&sqlite).unwrap()
    );

    // The runs list (filtered, paged) and run pages agree.
    let filters = [
        RunFilter::default(),
        RunFilter {
            environments: Some(vec![EnvironmentId(1)]),
            ..Default::default()
        },
        RunFilter {
            environments: Some(vec![EnvironmentId(1), EnvironmentId(2)]),
            ..Default::default()
        },
        RunFilter {
            status: Some(RunStatus::Running),
            ..Default::default()
        },
        RunFilter {
            workflow: Some(TargetRef::new("app.flows", "main")),
            before: Some(RunId(3)),
            ..Default::default()
        },
        RunFilter {
            since: Some(2_002),
            until: Some(2_003),
            ..Default::default()
        },
    ];
    for filter in &filters {
        for limit in [1, 2, 10] {
            let expected = ProjectReader::query_runs(&sqlite, filter, limit).unwrap();
            assert_eq!(
                ProjectReader::query_runs(&pg, filter, limit).unwrap(),
                expected,
                "{filter:?} {limit}"
            );
        }
    }
    assert_eq!(
        ProjectReader::query_runs(&pg, &filters[0], 2)
            .unwrap()
            .runs
            .len(),
        2
    );
    for (run, offset, limit) in [(1, 0, 2), (1, 1, 5), (3, 0, 10), (2, 4, 1)] {
        assert_eq!(
            ProjectReader::load_run_page(&pg, RunId(run), offset, limit).unwrap(),
            sqlite.load_run_page(RunId(run), offset, limit).unwrap(),
            "run {run} page {offset}+{limit}"
        );
    }

    // A new connection (a restart) reads the same committed state; a reader refuses writes.
    let reader = PgStore::open_reader(&schema.location).unwrap();
    assert_eq!(read_all(&reader), expected);
    let mut reader = reader;
    assert!(reader.apply(&[run(10, 1, None)]).is_err());
    // Opening again (migrations already applied) keeps the data.
    let reopened = PgStore::open(&schema.location).unwrap();
    assert_eq!(reopened.load().unwrap(), sqlite.load().unwrap());
}

#[test]
fn store_conformance_postgres_reader_refuses_a_missing_project() {
    let Some(url) = test_database_url() else {
        return;
    };
    let schema = TestSchema::new(&url, "missing");
    let error = PgStore::open_reader(&schema.location).unwrap_err();
    assert_eq!(error.code(), "store_migration");
}

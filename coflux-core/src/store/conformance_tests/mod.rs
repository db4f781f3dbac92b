//! Backend conformance: the same write sequences applied to a SQLite and a PostgreSQL store
//! read back equal (`load`, `load_run`, `list_runs`, `manifests` and the extra reads).
//!
//! The PostgreSQL side needs a server: `COFLUX_TEST_DATABASE_URL=postgres://…` (see
//! `scripts/setup-postgres.sh`). Without it these tests print why and pass, unless
//! `COFLUX_PG_TESTS=require`, which makes a missing URL a failure (CI sets it).

pub(crate) mod fixtures;
mod retention;

use serde_json::json;

use self::fixtures::{batches, exec, run, step, value};
use super::postgres::{PgLocation, PgStore};
use super::sqlite::SqliteStore;
use super::{ProjectStore, Write};
use crate::model::{EnvironmentId, InputId, RunId, TargetRef};

/// The test database's URL, or `None` (with a printed reason) when PostgreSQL tests are off.
pub(crate) fn test_database_url() -> Option<String> {
    match std::env::var("COFLUX_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("COFLUX_PG_TESTS").as_deref() == Ok("require") => {
            panic!("COFLUX_PG_TESTS=require but COFLUX_TEST_DATABASE_URL is not set")
        }
        _ => {
            eprintln!(
                "skipped: PostgreSQL store test \
                 (set COFLUX_TEST_DATABASE_URL, see scripts/setup-postgres.sh)"
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
pub(crate) fn read_all(store: &dyn ProjectStore) -> impl PartialEq + std::fmt::Debug + use<> {
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
    // A held execution's input dependencies are kept.
    let held: Vec<_> = snapshot.active_runs[0]
        .executions
        .iter()
        .flat_map(|e| e.dependencies.inputs.clone())
        .collect();
    assert_eq!(
        held,
        [InputId {
            run: RunId(1),
            number: 1
        }]
    );
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
    assert_eq!(
        ProjectReader::referenced_blob_keys(&sqlite).unwrap().len(),
        3,
        "sqlite"
    );
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
    let views: [Option<&[EnvironmentId]>; 3] =
        [None, Some(&[]), Some(&[EnvironmentId(2), EnvironmentId(3)])];
    for (run, offset, limit) in [(1, 0, 2), (1, 1, 5), (3, 0, 10), (2, 4, 1)] {
        for view in views {
            assert_eq!(
                ProjectReader::load_run_page(&pg, RunId(run), offset, limit, view).unwrap(),
                sqlite
                    .load_run_page(RunId(run), offset, limit, view)
                    .unwrap(),
                "run {run} page {offset}+{limit} seen from {view:?}"
            );
        }
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

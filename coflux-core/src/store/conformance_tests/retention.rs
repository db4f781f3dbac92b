//! Run retention on both backends: the same runs expire, the same links keep runs, deleting
//! leaves equal stores, and a deleted run's id is not handed out again after a restart.

use super::fixtures::run;
use super::{TestSchema, apply_all, read_all, test_database_url};
use crate::model::RunId;
use crate::store::location::{ProjectReader, StoreLocation};
use crate::store::postgres::{PgStore, pool};
use crate::store::sqlite::SqliteStore;
use crate::store::{Durability, ProjectStore, Write};

/// What retention reads, sorted so both backends compare.
fn retention_reads(store: &dyn ProjectReader) -> impl PartialEq + std::fmt::Debug + use<> {
    let mut links = store.cross_run_links().unwrap();
    links.sort();
    let mut assets: Vec<_> = store.referenced_asset_ids().unwrap().into_iter().collect();
    assets.sort();
    let open: Vec<_> = (1..=5)
        .map(|r| store.run_is_open(RunId(r)).unwrap())
        .collect();
    let rows = store.size_report().unwrap().rows;
    let mut rows: Vec<_> = rows.into_iter().collect();
    rows.sort();
    (
        store.expired_runs(i64::MAX, None, 10).unwrap(),
        store.expired_runs(i64::MAX, Some(RunId(1)), 1).unwrap(),
        links,
        assets,
        open,
        rows,
    )
}

#[test]
fn store_conformance_run_retention_reads_and_deletes_alike() {
    let Some(url) = test_database_url() else {
        return;
    };
    let schema = TestSchema::new(&url, "ret");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.sqlite");
    let mut sqlite = SqliteStore::open(&path, Durability::Normal).unwrap();
    let mut pg = PgStore::open(&schema.location).unwrap();
    apply_all(&mut sqlite);
    apply_all(&mut pg);
    let expected = retention_reads(&sqlite);
    assert_eq!(retention_reads(&pg), expected);
    let expired = pg.expired_runs(i64::MAX, None, 10).unwrap();
    assert!(!expired.is_empty(), "the fixtures have finished runs");
    assert_eq!(pg.run_is_open(RunId(1)).unwrap(), Some(true));
    assert_eq!(pg.run_is_open(RunId(99)).unwrap(), None);
    assert!(pg.size_report().unwrap().pages > 0);

    // Deleting the newest finished run (and an open one, which stays) leaves equal stores.
    let newest = *expired.iter().max().unwrap();
    let delete = [Write::DeleteRuns(vec![newest, RunId(1)])];
    sqlite.apply(&delete).unwrap();
    pg.apply(&delete).unwrap();
    assert_eq!(read_all(&pg), read_all(&sqlite));
    assert_eq!(retention_reads(&pg), retention_reads(&sqlite));
    assert!(pg.load_run(newest).unwrap().is_none());
    assert!(pg.load_run(RunId(1)).unwrap().is_some(), "open runs stay");

    // After a restart the deleted id is not handed out again.
    drop(pg);
    let pg = PgStore::open(&schema.location).unwrap();
    let next = pg.load().unwrap().next_run;
    assert_eq!(
        next,
        SqliteStore::open(&path, Durability::Normal)
            .unwrap()
            .load()
            .unwrap()
            .next_run
    );
    assert!(next > newest.0, "{next} after deleting {newest}");
}

#[test]
fn store_conformance_postgres_api_readers_are_pooled() {
    let Some(url) = test_database_url() else {
        return;
    };
    let schema = TestSchema::new(&url, "pool");
    let mut pg = PgStore::open(&schema.location).unwrap();
    apply_all(&mut pg);
    let location = StoreLocation::Postgres(schema.location.clone());
    let expected = pg.load().unwrap();
    for _ in 0..3 {
        let reader = location.open_reader().unwrap();
        assert_eq!(reader.load().unwrap(), expected);
    }
    assert_eq!(pool::idle(&schema.location), 1, "one reader, reused");
    let (a, b) = (
        location.open_reader().unwrap(),
        location.open_reader().unwrap(),
    );
    assert_eq!(a.load().unwrap(), b.load().unwrap());
    drop((a, b));
    assert_eq!(pool::idle(&schema.location), 2);
    // A pooled reader sees what is committed after it was returned.
    pg.apply(&[run(20, 1, None)]).unwrap();
    let reader = location.open_reader().unwrap();
    assert!(reader.load_run(RunId(20)).unwrap().is_some());
}

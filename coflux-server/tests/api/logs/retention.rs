//! Log retention: the sweep deletes old logs in batches, runs periodically, and the server
//! applies its retention.

use super::*;

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

fn record_at(execution: &str, n: u64, timestamp_ms: u64) -> LogRecord {
    LogRecord {
        timestamp_ms,
        template: Some(format!("message {n} at {timestamp_ms}")),
        ..record(execution, n)
    }
}

fn count(path: &std::path::Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
        row.get(0)
    })
    .unwrap()
}

#[actix_web::test]
async fn the_retention_sweep_deletes_old_logs_in_batches_and_keeps_recent_ones() {
    let dir = tempfile::tempdir().unwrap();
    let options = logs::LogStoreOptions {
        prune_batch: 7,
        ..Default::default()
    };
    let store = LogStore::open_with(dir.path(), options).unwrap();
    let now = 1_800_000_000_000; // the injected clock
    let retention = Duration::from_secs(30 * 24 * 60 * 60);
    // acme: 100 records 31-40 days old, 3 recent ones (the newest just inside the retention);
    // zeta: only old ones; "quiet" has no logs at all.
    let mut acme: Vec<LogRecord> = (0..100)
        .map(|n| record_at("R1:1:1", n, now - 31 * DAY_MS - n * DAY_MS / 10))
        .collect();
    acme.push(record_at("R1:1:1", 100, now - 30 * DAY_MS + 1));
    acme.push(record_at("R1:2:1", 101, now - DAY_MS));
    acme.push(record_at("R2:1:1", 102, now));
    store.append("acme", acme).unwrap();
    store
        .append("zeta", vec![record_at("R1:1:1", 0, now - 365 * DAY_MS)])
        .unwrap();
    store.flush().await.unwrap();
    std::fs::create_dir_all(dir.path().join("projects/quiet")).unwrap();

    let report = store.sweep(now, retention).await.unwrap();
    assert_eq!(
        report,
        logs::SweepReport {
            projects: 2,
            deleted: 101,
            failed: 0
        }
    );
    let kept = |run| {
        let store = store.clone();
        async move {
            store
                .query("acme", RunId(run), None, None, 1000)
                .await
                .unwrap()
                .logs
                .iter()
                .map(n_of)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(kept(1).await, vec![100, 101]);
    assert_eq!(kept(2).await, vec![102]);
    let zeta = store
        .query("zeta", RunId(1), None, None, 100)
        .await
        .unwrap();
    assert!(zeta.logs.is_empty());
    // The templates only the deleted records used are gone too.
    let acme_db = logs_db_path(dir.path(), &ProjectName::new("acme").unwrap());
    assert_eq!(count(&acme_db, "messages"), 3);
    assert_eq!(count(&acme_db, "templates"), 3);

    // A second sweep at the same time finds nothing; a day later the edge record goes, and
    // logs appended meanwhile still get fresh cursors and templates.
    assert_eq!(store.sweep(now, retention).await.unwrap().deleted, 0);
    store
        .append("acme", vec![record_at("R1:1:1", 103, now + DAY_MS)])
        .unwrap();
    assert_eq!(
        store.sweep(now + DAY_MS, retention).await.unwrap().deleted,
        1
    );
    assert_eq!(kept(1).await, vec![101, 103]);
    assert_eq!(count(&acme_db, "templates"), 3);
}

#[actix_web::test]
async fn the_background_sweep_runs_periodically_and_stops_with_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let now = logs::now_ms();
    store
        .append(
            "acme",
            vec![
                record_at("R1:1:1", 1, 1_000),
                record_at("R1:1:1", 2, now - 2 * DAY_MS),
                record_at("R1:1:1", 3, now),
            ],
        )
        .unwrap();
    store.flush().await.unwrap();
    let task = store.start_retention(Duration::from_secs(24 * 60 * 60), Duration::from_millis(20));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let page = store
            .query("acme", RunId(1), None, None, 100)
            .await
            .unwrap();
        let ns: Vec<u64> = page.logs.iter().map(n_of).collect();
        if ns == vec![3] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {ns:?}");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    drop(store);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the sweep stops once the store is dropped")
        .unwrap();
}

#[actix_web::test]
async fn the_server_sweeps_logs_older_than_its_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = coflux_server::ServerConfig::new(dir.path());
    config.log_retention = Some(Duration::from_secs(7 * 24 * 60 * 60));
    config.log_sweep_interval = Duration::from_millis(20);
    let state = coflux_server::AppState::open(&config).await.unwrap();
    let now = logs::now_ms();
    state
        .logs
        .append(
            "acme",
            vec![
                record_at("R1:1:1", 1, now - 8 * DAY_MS),
                record_at("R1:1:1", 2, now - 6 * DAY_MS),
            ],
        )
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let page = state
            .logs
            .query("acme", RunId(1), None, None, 100)
            .await
            .unwrap();
        let ns: Vec<u64> = page.logs.iter().map(n_of).collect();
        if ns == vec![2] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {ns:?}");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

//! The log store over PostgreSQL (`--database-url`): the same behaviour as over SQLite, in
//! tables every node shares. Needs `COFLUX_TEST_DATABASE_URL` (see
//! `scripts/setup-postgres.sh`); skipped without it unless `COFLUX_PG_TESTS=require`.

use std::collections::BTreeMap;

use coflux_core::model::{ExecutionId, ProjectName, RunId, Value};
use coflux_server::logs::metrics::MetricRecord;
use coflux_server::logs::{LogFilter, LogRecord, LogStore, LogStoreOptions};
use serde_json::json;

fn record(execution: &str, n: u64) -> LogRecord {
    let mut values = BTreeMap::new();
    values.insert("n".to_owned(), Value::raw(json!(n)));
    LogRecord {
        execution: execution.parse().unwrap(),
        timestamp_ms: 1_000 + n,
        level: (n % 6) as u8,
        // Two distinct templates, each stored once.
        template: Some(format!("message {{n}} ({})", n % 2)),
        values,
    }
}

fn n_of(values: &BTreeMap<String, Value>) -> u64 {
    match &values["n"] {
        Value::Raw { data, .. } => data.as_u64().unwrap(),
        other => panic!("unexpected value {other:?}"),
    }
}

fn open(url: &str) -> LogStore {
    LogStore::open_postgres(url, LogStoreOptions::default()).unwrap()
}

#[actix_web::test]
async fn postgres_logs_and_metrics_are_stored_paged_deleted_and_pruned() {
    let Some(url) = crate::support::pg_database_url("PostgreSQL log store test") else {
        return;
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let project = format!("logs-pg-{}-{stamp}", std::process::id());
    let other = format!("{project}-other");
    let store = open(&url);
    for chunk in (0..200u64).collect::<Vec<_>>().chunks(30) {
        let records = chunk
            .iter()
            .map(|n| record(if n % 2 == 0 { "R1:1:1" } else { "R1:2:1" }, *n))
            .collect();
        store.append(&project, records).unwrap();
    }
    store.append(&other, vec![record("R1:1:1", 999)]).unwrap();
    store.append(&project, vec![record("R2:1:1", 7)]).unwrap();
    store
        .append_metrics(
            &project,
            vec![
                MetricRecord::Define {
                    execution: "R1:1:1".parse().unwrap(),
                    key: "loss".into(),
                    definition: json!({"group": "training"}),
                    timestamp_ms: 1_000,
                },
                MetricRecord::Point {
                    execution: "R1:1:1".parse().unwrap(),
                    key: "loss".into(),
                    value: 0.5,
                    at: 1.0,
                    timestamp_ms: 1_001,
                },
                MetricRecord::Point {
                    execution: "R1:1:1".parse().unwrap(),
                    key: "loss".into(),
                    value: 0.25,
                    at: 2.0,
                    timestamp_ms: 1_002,
                },
            ],
        )
        .unwrap();
    store.flush().await.unwrap();

    // Paged in order, cursors increasing, only this project's run.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .query(&project, RunId(1), None, after, 64)
            .await
            .unwrap();
        if page.logs.is_empty() {
            break;
        }
        for log in &page.logs {
            assert!(after.is_none_or(|a| log.cursor > a), "cursors increase");
            after = Some(log.cursor);
            seen.push(n_of(&log.values));
        }
        assert_eq!(page.cursor, after);
    }
    assert_eq!(seen, (0..200).collect::<Vec<_>>());
    let first = store
        .query(&project, RunId(1), None, None, 1)
        .await
        .unwrap();
    assert_eq!(first.logs[0].template.as_deref(), Some("message {n} (0)"));
    let step = LogFilter::Step("R1:2".parse().unwrap());
    let odd = store
        .query(&project, RunId(1), Some(step), None, 1000)
        .await
        .unwrap();
    assert_eq!(odd.logs.len(), 100);
    assert!(odd.logs.iter().all(|l| n_of(&l.values) % 2 == 1));
    let execution: ExecutionId = "R1:1:1".parse().unwrap();
    let even = store
        .query(
            &project,
            RunId(1),
            Some(LogFilter::Execution(execution)),
            None,
            1000,
        )
        .await
        .unwrap();
    assert_eq!(even.logs.len(), 100);

    let metrics = store.query_metrics(&project, RunId(1), None).await.unwrap();
    let series = &metrics.executions[0].metrics[0];
    assert_eq!(series.key, "loss");
    assert_eq!(series.definition, Some(json!({"group": "training"})));
    let points: Vec<f64> = series.points.iter().map(|p| p.value).collect();
    assert_eq!(points, vec![0.5, 0.25]);

    let mut values = 0;
    store
        .for_each_logged_value(&ProjectName::new(&project).unwrap(), None, &mut |_| {
            values += 1
        })
        .unwrap();
    assert_eq!(values, 201, "every message of the project has one value");
    let projects = store.projects_with_logs().unwrap();
    assert!(projects.iter().any(|p| p.as_str() == project));

    // A second store on the same database (another node, or a restart) reads the same logs
    // and hands out higher cursors.
    let again = open(&url);
    let last = after.unwrap();
    again.append(&project, vec![record("R1:1:1", 500)]).unwrap();
    again.flush().await.unwrap();
    let tail = again
        .query(&project, RunId(1), None, Some(last), 10)
        .await
        .unwrap();
    assert_eq!(tail.logs.len(), 1);
    assert!(tail.logs[0].cursor > last);

    // Deleting run 1 takes its logs and metrics, not run 2's nor the other project's.
    let name = ProjectName::new(&project).unwrap();
    assert_eq!(again.delete_runs(&name, &[RunId(1)]).await.unwrap(), 201);
    let gone = again
        .query(&project, RunId(1), None, None, 10)
        .await
        .unwrap();
    assert!(gone.logs.is_empty());
    let metrics = again.query_metrics(&project, RunId(1), None).await.unwrap();
    assert!(metrics.executions.is_empty());
    assert_eq!(
        again
            .query(&other, RunId(1), None, None, 10)
            .await
            .unwrap()
            .logs
            .len(),
        1
    );

    // Pruning goes by timestamp: run 2's record (1007) goes, a newer one stays.
    again
        .append(&project, vec![record("R2:1:1", 5_000)])
        .unwrap();
    again.flush().await.unwrap();
    assert_eq!(again.prune(&project, 2_000).await.unwrap(), 1);
    let left = again
        .query(&project, RunId(2), None, None, 10)
        .await
        .unwrap();
    assert_eq!(left.logs.len(), 1);
    assert_eq!(n_of(&left.logs[0].values), 5_000);
    again.delete_runs(&name, &[RunId(2)]).await.unwrap();
    again
        .delete_runs(&ProjectName::new(&other).unwrap(), &[RunId(1)])
        .await
        .unwrap();
}

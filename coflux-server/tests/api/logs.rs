//! The log store and its HTTP routes: ordering and paging, filters, concurrent appenders,
//! validation, project isolation, pruning, and following a run over server-sent events.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::{App, test, web};
use coflux_core::model::{ExecutionId, ProjectName, RunId, Value};
use coflux_server::logs::{self, LogError, LogFilter, LogRecord, LogStore, logs_db_path};
use serde_json::{Value as Json, json};

fn exec(text: &str) -> ExecutionId {
    text.parse().unwrap()
}

fn record(execution: &str, n: u64) -> LogRecord {
    let mut values = BTreeMap::new();
    values.insert("n".to_owned(), Value::raw(json!(n)));
    LogRecord {
        execution: exec(execution),
        timestamp_ms: 1_000 + n,
        level: (n % 6) as u8,
        template: Some(format!("message {{n}} of {execution}")),
        values,
    }
}

fn open(dir: &tempfile::TempDir) -> LogStore {
    LogStore::open(dir.path()).unwrap()
}

fn n_of(log: &logs::StoredLog) -> u64 {
    match &log.values["n"] {
        Value::Raw { data, .. } => data.as_u64().unwrap(),
        other => panic!("unexpected value {other:?}"),
    }
}

#[actix_web::test]
async fn appended_logs_are_read_back_in_order_with_cursor_paging() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for chunk in (0..250u64).collect::<Vec<_>>().chunks(30) {
        store
            .append("acme", chunk.iter().map(|n| record("R1:1:1", *n)).collect())
            .unwrap();
    }
    store.flush().await.unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .query("acme", RunId(1), None, after, 100)
            .await
            .unwrap();
        if page.logs.is_empty() {
            assert_eq!(page.cursor, after, "an empty page keeps the cursor");
            break;
        }
        assert!(page.logs.len() <= 100);
        assert_eq!(page.cursor, page.logs.last().map(|l| l.cursor));
        after = page.cursor;
        seen.extend(page.logs);
    }
    assert_eq!(seen.len(), 250);
    for (i, log) in seen.iter().enumerate() {
        assert_eq!(n_of(log), i as u64);
        assert_eq!(log.execution, exec("R1:1:1"));
        assert_eq!(log.timestamp_ms, 1_000 + i as u64);
        assert_eq!(log.level, (i % 6) as u8);
        assert_eq!(log.template.as_deref(), Some("message {n} of R1:1:1"));
    }
    assert!(seen.windows(2).all(|w| w[0].cursor < w[1].cursor));
    // Another run of the same project has nothing.
    let other = store
        .query("acme", RunId(2), None, None, 100)
        .await
        .unwrap();
    assert!(other.logs.is_empty());
    assert_eq!(other.cursor, None);
}

#[actix_web::test]
async fn queries_filter_by_execution_and_step() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let executions = ["R1:1:1", "R1:2:1", "R1:2:2", "R2:1:1"];
    for n in 0..20u64 {
        let e = executions[(n % 4) as usize];
        store.append("acme", vec![record(e, n)]).unwrap();
    }
    store.flush().await.unwrap();
    let only = |filter| {
        let store = store.clone();
        async move {
            store
                .query("acme", RunId(1), Some(filter), None, 1000)
                .await
                .unwrap()
                .logs
        }
    };
    let e = only(LogFilter::Execution(exec("R1:2:2"))).await;
    assert_eq!(e.len(), 5);
    assert!(e.iter().all(|l| l.execution == exec("R1:2:2")));
    let s = only(LogFilter::Step(exec("R1:2:1").step)).await;
    assert_eq!(s.len(), 10);
    assert_eq!(
        s.iter().map(n_of).collect::<Vec<_>>(),
        vec![1, 2, 5, 6, 9, 10, 13, 14, 17, 18]
    );
    let all = store
        .query("acme", RunId(1), None, None, 1000)
        .await
        .unwrap();
    assert_eq!(all.logs.len(), 15, "run 2's logs are not in run 1");
    let err = store
        .query(
            "acme",
            RunId(1),
            Some(LogFilter::Execution(exec("R2:1:1"))),
            None,
            10,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "filter_outside_run");
}

#[actix_web::test]
async fn concurrent_appenders_are_batched_and_all_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let threads = 8u64;
    let appends = 200u64;
    let per_append = 5u64;
    std::thread::scope(|scope| {
        for t in 0..threads {
            let store = store.clone();
            scope.spawn(move || {
                for a in 0..appends {
                    let records = (0..per_append)
                        .map(|i| record(&format!("R1:{}:1", t + 1), a * per_append + i))
                        .collect();
                    store.append("acme", records).unwrap();
                }
            });
        }
    });
    store.flush().await.unwrap();
    let stats = store.stats();
    assert_eq!(stats.records, threads * appends * per_append);
    assert_eq!(stats.failures, 0);
    assert!(
        stats.commits < threads * appends,
        "appends were not batched: {stats:?}"
    );
    for t in 0..threads {
        let filter = LogFilter::Execution(exec(&format!("R1:{}:1", t + 1)));
        let mut after = None;
        let mut ns = Vec::new();
        loop {
            let page = store
                .query("acme", RunId(1), Some(filter), after, 1000)
                .await
                .unwrap();
            if page.logs.is_empty() {
                break;
            }
            after = page.cursor;
            ns.extend(page.logs.iter().map(n_of));
        }
        // Each appender's records are stored, in its order.
        assert_eq!(
            ns,
            (0..appends * per_append).collect::<Vec<_>>(),
            "thread {t}"
        );
    }
}

#[actix_web::test]
async fn bad_records_are_rejected_and_nothing_of_their_batch_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut bad = record("R1:1:1", 1);
    bad.level = 6;
    let err = store
        .append("acme", vec![record("R1:1:1", 0), bad])
        .unwrap_err();
    assert!(
        matches!(err, LogError::InvalidRecord { index: 1, .. }),
        "{err}"
    );
    assert_eq!(err.code(), "invalid_level");
    let mut huge = record("R1:1:1", 2);
    huge.template = Some("x".repeat(logs::MAX_TEMPLATE_BYTES + 1));
    assert_eq!(
        store.append("acme", vec![huge]).unwrap_err().code(),
        "template_too_large"
    );
    assert_eq!(
        store
            .append("../etc", vec![record("R1:1:1", 3)])
            .unwrap_err()
            .code(),
        "invalid_project"
    );
    store.flush().await.unwrap();
    let page = store
        .query("acme", RunId(1), None, None, 100)
        .await
        .unwrap();
    assert!(page.logs.is_empty());
    assert!(!dir.path().join("projects").join("etc").exists());
}

#[actix_web::test]
async fn projects_are_isolated_and_logs_live_next_to_the_project_database() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.append("alpha", vec![record("R1:1:1", 1)]).unwrap();
    store.append("beta", vec![record("R1:1:1", 2)]).unwrap();
    store.flush().await.unwrap();
    let a = store
        .query("alpha", RunId(1), None, None, 10)
        .await
        .unwrap();
    let b = store.query("beta", RunId(1), None, None, 10).await.unwrap();
    assert_eq!(a.logs.iter().map(n_of).collect::<Vec<_>>(), vec![1]);
    assert_eq!(b.logs.iter().map(n_of).collect::<Vec<_>>(), vec![2]);
    let none = store
        .query("gamma", RunId(1), None, None, 10)
        .await
        .unwrap();
    assert!(none.logs.is_empty());
    assert!(
        !dir.path().join("projects").join("gamma").exists(),
        "reads create nothing"
    );
    let alpha = ProjectName::new("alpha").unwrap();
    let path = logs_db_path(dir.path(), &alpha);
    assert_eq!(
        path,
        coflux_core::store::catalogue::project_db_path(dir.path(), &alpha)
            .with_file_name("logs.sqlite")
    );
    assert!(path.exists());
}

#[actix_web::test]
async fn pruning_deletes_old_records_and_cursors_keep_increasing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let records = (0..10).map(|n| record("R1:1:1", n)).collect(); // timestamps 1000..=1009
    store.append("acme", records).unwrap();
    assert_eq!(store.prune("acme", 1_005).await.unwrap(), 5);
    let page = store
        .query("acme", RunId(1), None, None, 100)
        .await
        .unwrap();
    assert_eq!(
        page.logs.iter().map(n_of).collect::<Vec<_>>(),
        vec![5, 6, 7, 8, 9]
    );
    let last = page.cursor.unwrap();
    assert_eq!(store.prune("acme", u64::MAX).await.unwrap(), 5);
    assert_eq!(store.prune("nothing-here", 10).await.unwrap(), 0);
    store.append("acme", vec![record("R1:1:1", 42)]).unwrap();
    store.flush().await.unwrap();
    let page = store
        .query("acme", RunId(1), None, None, 100)
        .await
        .unwrap();
    assert_eq!(page.logs.len(), 1);
    assert!(page.logs[0].cursor > last, "cursors are never reused");
    assert_eq!(
        page.logs[0].template.as_deref(),
        Some("message {n} of R1:1:1")
    );
}

fn app_with(
    store: LogStore,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(web::Data::new(store))
        .app_data(web::Data::new(coflux_server::auth::Auth::none()))
        .configure(logs::configure)
}

#[actix_web::test]
async fn the_logs_route_returns_pages_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut values = BTreeMap::new();
    values.insert(
        "user".to_owned(),
        Value::raw(
            json!({"type":"dict","items":["name","bob","tags",{"type":"tuple","items":[1,2]}]}),
        ),
    );
    values.insert(
        "big".to_owned(),
        Value::Blob {
            key: "ab".repeat(32),
            size: 1000,
            references: vec![],
        },
    );
    store
        .append(
            "acme",
            vec![
                LogRecord {
                    execution: exec("R1:1:1"),
                    timestamp_ms: 1_700_000_000_000,
                    level: 2,
                    template: Some("hello {user}".into()),
                    values,
                },
                LogRecord {
                    execution: exec("R1:2:1"),
                    timestamp_ms: 1_700_000_000_001,
                    level: 1,
                    template: Some("a line".into()),
                    values: BTreeMap::new(),
                },
            ],
        )
        .unwrap();
    store.flush().await.unwrap();
    let app = test::init_service(app_with(store.clone())).await;

    let body: Json = test::call_and_read_body_json(
        &app,
        test::TestRequest::get()
            .uri("/api/projects/acme/runs/R1/logs")
            .to_request(),
    )
    .await;
    assert_eq!(
        body,
        json!({
            "logs": [
                {
                    "cursor": 1,
                    "execution_id": "R1:1:1",
                    "level": 2,
                    "template": "hello {user}",
                    "values": {"user": {"name": "bob", "tags": [1, 2]}, "big": {"blob": "ab".repeat(32), "size": 1000}},
                    "timestamp": 1_700_000_000_000u64,
                },
                {
                    "cursor": 2,
                    "execution_id": "R1:2:1",
                    "level": 1,
                    "template": "a line",
                    "values": {},
                    "timestamp": 1_700_000_000_001u64,
                }
            ],
            "cursor": 2
        })
    );

    let body: Json = test::call_and_read_body_json(
        &app,
        test::TestRequest::get()
            .uri("/api/projects/acme/runs/R1/logs?after=1&limit=5")
            .to_request(),
    )
    .await;
    assert_eq!(body["logs"].as_array().unwrap().len(), 1);
    assert_eq!(body["cursor"], 2);

    let body: Json = test::call_and_read_body_json(
        &app,
        test::TestRequest::get()
            .uri("/api/projects/acme/runs/R1/logs?execution=R1:2:1")
            .to_request(),
    )
    .await;
    assert_eq!(body["logs"][0]["execution_id"], "R1:2:1");
    assert_eq!(body["logs"].as_array().unwrap().len(), 1);

    let body: Json = test::call_and_read_body_json(
        &app,
        test::TestRequest::get()
            .uri("/api/projects/acme/runs/R1/logs?after=2")
            .to_request(),
    )
    .await;
    assert_eq!(body, json!({"logs": [], "cursor": 2}));

    let body: Json = test::call_and_read_body_json(
        &app,
        test::TestRequest::get()
            .uri("/api/projects/other/runs/R1/logs")
            .to_request(),
    )
    .await;
    assert_eq!(body, json!({"logs": [], "cursor": null}));

    for (uri, code) in [
        ("/api/projects/acme/runs/X1/logs", "bad_request"),
        ("/api/projects/acme/runs/R1/logs?limit=0", "bad_request"),
        ("/api/projects/acme/runs/R1/logs?after=abc", "bad_request"),
        (
            "/api/projects/acme/runs/R1/logs?execution=R2:1:1",
            "filter_outside_run",
        ),
        ("/api/projects/Bad.Name/runs/R1/logs", "invalid_project"),
    ] {
        let resp = test::call_service(&app, test::TestRequest::get().uri(uri).to_request()).await;
        assert_eq!(resp.status(), 400, "{uri}");
        let body: Json = test::read_body_json(resp).await;
        assert_eq!(body["error"]["code"], code, "{uri}: {body}");
        assert!(body["error"]["message"].is_string(), "{uri}: {body}");
    }
}

#[path = "logs/retention.rs"]
mod retention;
#[path = "logs/stream.rs"]
mod stream;

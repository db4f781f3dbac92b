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

/// Reads server-sent events from a streaming body.
struct Events<B> {
    body: Pin<Box<B>>,
    buffer: String,
}

impl<B: MessageBody> Events<B> {
    fn new(body: B) -> Self {
        Self {
            body: Box::pin(body),
            buffer: String::new(),
        }
    }

    /// The next `data:` event as JSON (skipping comments), or `None` if none comes in time.
    async fn next(&mut self, wait: Duration) -> Option<Json> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data = event
                    .lines()
                    .find_map(|line| line.strip_prefix("data: "))
                    .map(|d| serde_json::from_str::<Json>(d).unwrap());
                if let Some(data) = data {
                    let id = event
                        .lines()
                        .find_map(|line| line.strip_prefix("id: "))
                        .unwrap();
                    assert_eq!(id, data["cursor"].to_string());
                    return Some(data);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(
                deadline,
                futures::future::poll_fn(|cx| self.body.as_mut().poll_next(cx)),
            )
            .await
            .ok()?;
            let Ok(chunk) = chunk? else {
                panic!("the event stream failed");
            };
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

#[actix_web::test]
async fn the_stream_sends_the_backlog_then_live_logs_without_gaps_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .append("acme", (0..3).map(|n| record("R1:1:1", n)).collect())
        .unwrap();
    store.flush().await.unwrap();
    let app = test::init_service(app_with(store.clone())).await;
    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/api/projects/acme/runs/R1/logs/stream?after=1")
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let mut events = Events::new(resp.into_body());
    let wait = Duration::from_secs(5);
    // The backlog after cursor 1.
    assert_eq!(events.next(wait).await.unwrap()["cursor"], 2);
    assert_eq!(events.next(wait).await.unwrap()["cursor"], 3);
    // Then appends made while (and after) it is connected, including another run's and another
    // project's, which must not show up.
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for n in 3..200u64 {
                store.append("acme", vec![record("R1:1:1", n)]).unwrap();
                store.append("acme", vec![record("R2:1:1", n)]).unwrap();
                store.append("other", vec![record("R1:1:1", n)]).unwrap();
                if n % 20 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        })
    };
    let mut ns = Vec::new();
    while ns.len() < 197 {
        let event = events.next(wait).await.expect("a live log");
        assert_eq!(event["execution_id"], "R1:1:1");
        ns.push(event["values"]["n"].as_u64().unwrap());
    }
    writer.join().unwrap();
    assert_eq!(ns, (3..200).collect::<Vec<_>>());
    assert!(events.next(Duration::from_millis(200)).await.is_none());
}

#[actix_web::test]
async fn the_stream_filters_by_execution_and_resumes_from_last_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for n in 0..6 {
        let e = if n % 2 == 0 { "R1:1:1" } else { "R1:1:2" };
        store.append("acme", vec![record(e, n)]).unwrap();
    }
    store.flush().await.unwrap();
    let app = test::init_service(app_with(store.clone())).await;
    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/api/projects/acme/runs/R1/logs/stream?execution=R1:1:2")
            .insert_header(("Last-Event-ID", "2"))
            .to_request(),
    )
    .await;
    let mut events = Events::new(resp.into_body());
    let wait = Duration::from_secs(5);
    assert_eq!(events.next(wait).await.unwrap()["values"]["n"], 3);
    assert_eq!(events.next(wait).await.unwrap()["values"]["n"], 5);
    store.append("acme", vec![record("R1:1:1", 6)]).unwrap();
    store.append("acme", vec![record("R1:1:2", 7)]).unwrap();
    assert_eq!(events.next(wait).await.unwrap()["values"]["n"], 7);

    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/api/projects/acme/runs/R1/logs/stream")
            .insert_header(("Last-Event-ID", "nope"))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 400);
}

#[actix_web::test]
async fn a_follower_that_falls_behind_re_reads_from_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let options = logs::LogStoreOptions {
        follower_buffer: 4,
        ..Default::default()
    };
    let store = LogStore::open_with(dir.path(), options).unwrap();
    let app = test::init_service(app_with(store.clone())).await;
    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/api/projects/acme/runs/R1/logs/stream")
            .to_request(),
    )
    .await;
    let mut events = Events::new(resp.into_body());
    // Let the stream read its (empty) backlog and start waiting for live logs.
    assert!(events.next(Duration::from_millis(100)).await.is_none());
    // Far more than the live buffer holds, before the follower reads any of it.
    for n in 0..50 {
        store.append("acme", vec![record("R1:1:1", n)]).unwrap();
    }
    store.flush().await.unwrap();
    let mut ns = Vec::new();
    while ns.len() < 50 {
        let event = events.next(Duration::from_secs(5)).await.expect("a log");
        ns.push(event["values"]["n"].as_u64().unwrap());
    }
    assert_eq!(ns, (0..50).collect::<Vec<_>>());
}

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

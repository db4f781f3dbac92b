//! `DELETE /api/projects/{p}/runs/{run}` and the run retention sweep: what goes (the run, its
//! logs, unreferenced old asset records) and what is refused or kept (running runs).

use std::collections::BTreeMap;
use std::time::SystemTime;

use coflux_core::model::Value;
use coflux_server::logs::LogRecord;

use super::*;

fn log_line(execution: &str) -> LogRecord {
    let mut values = BTreeMap::new();
    values.insert("n".to_owned(), Value::raw(json!(1)));
    LogRecord {
        execution: execution.parse().unwrap(),
        timestamp_ms: 1_000,
        level: 2,
        template: Some("line {n}".into()),
        values,
    }
}

async fn log_count(h: &Harness, run: &str) -> usize {
    h.state.logs.flush().await.unwrap();
    let page = h
        .state
        .logs
        .query("alpha", run.parse().unwrap(), None, None, 100)
        .await
        .unwrap();
    page.logs.len()
}

#[actix_rt::test]
async fn runs_are_deleted_on_request_and_by_retention_but_never_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path());
    config.run_retention = Some(Duration::from_secs(24 * 60 * 60));
    let state = web::Data::new(AppState::open(&config).await.unwrap());
    let h = Harness { dir, state };
    let app = test::init_service(create_app(h.state.clone())).await;
    create_environment!(&app, "alpha", "production");
    let project = h.state.coflux.existing_project("alpha").await.unwrap();
    let repository = Repository::new().with(add).with(sum).with(slow);
    let _worker = project.serve("production", repository).await.unwrap();
    let submit = |target: &str, arguments: Json| {
        post(
            "/api/projects/alpha/environments/production/runs",
            json!({"module": "demo", "target": target, "arguments": arguments}),
        )
    };
    let finish = |run: &str| get(&format!("/api/projects/alpha/runs/{run}/result?wait=10"));
    let delete = |run: &str| TestRequest::delete().uri(&format!("/api/projects/alpha/runs/{run}"));

    let (_, first) = call!(&app, submit("add", json!([1, 2])));
    let first = first["run_id"].as_str().unwrap().to_owned();
    assert_eq!(call!(&app, finish(&first)).1["value"], 3);
    h.state
        .logs
        .append("alpha", vec![log_line(&format!("{first}:1:1"))])
        .unwrap();
    assert_eq!(log_count(&h, &first).await, 1);
    let (_, running) = call!(&app, submit("slow", json!([])));
    let running = running["run_id"].as_str().unwrap().to_owned();

    // Refusals: a running run, an unknown run, a malformed id.
    let refused = call!(&app, delete(&running));
    assert_error(&h, &refused, StatusCode::CONFLICT, "run_active");
    assert!(
        refused.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&running)
    );
    assert_error(
        &h,
        &call!(&app, delete("R999")),
        StatusCode::NOT_FOUND,
        "run_not_found",
    );
    assert_error(
        &h,
        &call!(&app, delete("nope")),
        StatusCode::BAD_REQUEST,
        "invalid_id",
    );

    // A finished run goes with its logs.
    let (status, body) = call!(&app, delete(&first));
    assert_eq!(status, StatusCode::OK, "{body}");
    let gone = call!(&app, get(&format!("/api/projects/alpha/runs/{first}")));
    assert_error(&h, &gone, StatusCode::NOT_FOUND, "run_not_found");
    assert_eq!(log_count(&h, &first).await, 0);

    // Retention: a finished run older than the retention goes; the running one stays; an old
    // asset record nothing refers to goes, a recent one stays (its reference may be on its way).
    let (_, second) = call!(&app, submit("add", json!([2, 2])));
    let second = second["run_id"].as_str().unwrap().to_owned();
    assert_eq!(call!(&app, finish(&second)).1["value"], 4);
    let assets = h.dir.path().join("assets").join("alpha");
    std::fs::create_dir_all(&assets).unwrap();
    let old = assets.join("A0000000000000001.json");
    let young = assets.join("A0000000000000002.json");
    for path in [&old, &young] {
        std::fs::write(path, br#"{"entries":{}}"#).unwrap();
    }
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 24 * 60 * 60);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    let retention = h.state.run_retention.as_ref().expect("retention enabled");
    // Nothing is old enough yet.
    let now = retention.sweep(SystemTime::now()).await.unwrap();
    assert_eq!((now.deleted, now.failed), (0, 0), "{now:?}");
    let later = SystemTime::now() + Duration::from_secs(2 * 24 * 60 * 60);
    let sweep = retention.sweep(later).await.unwrap();
    assert_eq!((sweep.deleted, sweep.failed), (1, 0), "{sweep:?}");
    assert_eq!(sweep.asset_records, 1, "{sweep:?}");
    assert!(!old.exists() && young.exists());
    let gone = call!(&app, get(&format!("/api/projects/alpha/runs/{second}")));
    assert_error(&h, &gone, StatusCode::NOT_FOUND, "run_not_found");
    let (status, _) = call!(&app, get(&format!("/api/projects/alpha/runs/{running}")));
    assert_eq!(status, StatusCode::OK, "a running run is never deleted");
}

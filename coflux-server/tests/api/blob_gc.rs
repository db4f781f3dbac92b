//! Garbage collection of blobs (`coflux_server::gc`), on an app built with `create_app`:
//! blobs referenced by a recorded run (a blob argument, its fragment, a fragment of the
//! result), by an asset record or by a log message survive; so do young and recently checked
//! unreferenced blobs; only old unreferenced blobs go. An unreadable asset record stops the
//! project's collection. One check runs over S3 (moto's server, installed on first use).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::support::{Moto, sha256};
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use coflux_core::model::{
    ExecutionResult, Reference, StepOptions, TargetDefinition, TargetKind, TargetRef, Value,
};
use coflux_core::sdk::{Repository, Target, TargetFuture};
use coflux_server::config::BlobStoreConfig;
use coflux_server::gc::GcReport;
use coflux_server::http::blobs::{BlobKey, BlobStore};
use coflux_server::logs::LogRecord;
use coflux_server::{AppState, ServerConfig, create_app};
use serde_json::{Value as Json, json};

const HOUR: Duration = Duration::from_secs(60 * 60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);
const PROJECT: &str = "gc";

/// A workflow that returns a value holding a fragment reference to a given blob.
struct ReturnsFragment {
    key: String,
}

impl Target for ReturnsFragment {
    fn definition(&self) -> TargetDefinition {
        TargetDefinition {
            target: TargetRef::new("gc_test", "returns_fragment"),
            kind: TargetKind::Workflow,
            parameters: Vec::new(),
            options: StepOptions::default(),
            instruction: None,
        }
    }

    fn invoke(&self, _arguments: Vec<Value>) -> TargetFuture {
        let value = Value::Raw {
            data: json!({"type": "ref", "index": 0}),
            references: vec![fragment(&self.key)],
        };
        Box::pin(async move { Ok(value) })
    }
}

fn fragment(key: &str) -> Reference {
    Reference::Fragment {
        format: "pickle".into(),
        blob_key: key.to_owned(),
        size: 4,
        metadata: json!({}),
    }
}

/// Sends a request to the app; answers its status and JSON body (or `null`).
macro_rules! call {
    ($app:expr, $req:expr $(,)?) => {{
        let resp = test::call_service($app, ($req).to_request()).await;
        let status = resp.status();
        let body = test::read_body(resp).await;
        (
            status,
            serde_json::from_slice::<Json>(&body).unwrap_or(Json::Null),
        )
    }};
}

/// Uploads `content` as a blob of the project; gives its key.
macro_rules! put_blob {
    ($app:expr, $content:expr) => {{
        let content: &[u8] = $content;
        let key = sha256(content);
        let uri = format!("/api/projects/{PROJECT}/blobs/{key}");
        let (status, body) = call!(
            $app,
            TestRequest::put().uri(&uri).set_payload(content.to_vec())
        );
        assert_eq!(status, StatusCode::CREATED, "{body}");
        key
    }};
}

/// The status of `HEAD` on a blob (200 present, 404 gone).
macro_rules! head {
    ($app:expr, $key:expr) => {{
        let uri = format!("/api/projects/{PROJECT}/blobs/{}", $key);
        call!(
            $app,
            TestRequest::default()
                .method(actix_web::http::Method::HEAD)
                .uri(&uri)
        )
        .0
    }};
}

async fn open_state(config: &ServerConfig) -> web::Data<AppState> {
    web::Data::new(AppState::open(config).await.unwrap())
}

/// Records, through the embedded `Project` API, a run whose argument is a blob value with a
/// fragment and whose result holds a fragment; waits for its result. Gives the execution.
async fn record_run(
    state: &AppState,
    argument: &str,
    argument_fragment: &str,
    result: &str,
) -> coflux_core::model::ExecutionId {
    record_run_in(state, PROJECT, argument, argument_fragment, result).await
}

/// [`record_run`] in the project `name`.
pub(crate) async fn record_run_in(
    state: &AppState,
    name: &str,
    argument: &str,
    argument_fragment: &str,
    result: &str,
) -> coflux_core::model::ExecutionId {
    let project = state.coflux.existing_project(name).await.unwrap();
    project
        .create_environment("production", None)
        .await
        .unwrap();
    let worker = project
        .serve(
            "production",
            Repository::new().with(ReturnsFragment {
                key: result.to_owned(),
            }),
        )
        .await
        .unwrap();
    let run = project
        .submit_target(
            "production",
            TargetRef::new("gc_test", "returns_fragment"),
            vec![Value::Blob {
                key: argument.to_owned(),
                size: 4,
                references: vec![fragment(argument_fragment)],
            }],
            StepOptions::default(),
        )
        .await
        .unwrap();
    match run.raw_result().await.unwrap() {
        ExecutionResult::Value { value } => assert_eq!(value.references(), [fragment(result)]),
        other => panic!("{other:?}"),
    }
    worker.stop();
    run.execution
}

/// Sets the mtime of a local blob.
fn set_mtime(state: &AppState, key: &str, time: SystemTime) {
    let project = coflux_core::model::ProjectName::new(PROJECT).unwrap();
    let path = state
        .blobs
        .path(&project, &BlobKey::parse(key).unwrap())
        .unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

#[actix_rt::test]
async fn blob_gc_deletes_only_old_unreferenced_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig::new(dir.path());
    assert_eq!(config.blob_gc_grace, Some(DAY), "enabled by default, 24 h");
    let state = open_state(&config).await;
    let app = test::init_service(create_app(state.clone())).await;
    let (status, _) = call!(
        &app,
        TestRequest::post()
            .uri("/api/projects")
            .set_json(json!({ "name": PROJECT }))
    );
    assert_eq!(status, StatusCode::CREATED);

    let argument = put_blob!(&app, b"arg1");
    let argument_fragment = put_blob!(&app, b"frg1");
    let result = put_blob!(&app, b"res1");
    let asset = put_blob!(&app, b"ast1");
    let logged = put_blob!(&app, b"log1");
    let old_orphan = put_blob!(&app, b"old1");
    let young_orphan = put_blob!(&app, b"yng1");

    let execution = record_run(&state, &argument, &argument_fragment, &result).await;
    let (status, body) = call!(
        &app,
        TestRequest::post()
            .uri(&format!("/api/projects/{PROJECT}/assets"))
            .set_json(json!({"entries": {"a.txt": {"blob_key": asset, "size": 4}}}))
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut values = BTreeMap::new();
    values.insert(
        "table".to_owned(),
        Value::Blob {
            key: logged.clone(),
            size: 4,
            references: Vec::new(),
        },
    );
    state
        .logs
        .append(
            PROJECT,
            vec![LogRecord {
                execution,
                timestamp_ms: coflux_server::logs::now_ms(),
                level: 2,
                template: Some("wrote {table}".into()),
                values,
            }],
        )
        .unwrap();
    state.logs.flush().await.unwrap();

    // The sweep runs as if 30 days had passed: every upload and check made above is older
    // than the grace, so only references and write times decide.
    let now = SystemTime::now() + 30 * DAY;
    for key in [
        &argument,
        &argument_fragment,
        &result,
        &asset,
        &logged,
        &old_orphan,
    ] {
        set_mtime(&state, key, now - 2 * DAY);
    }
    set_mtime(&state, &young_orphan, now - HOUR);

    let gc = state.blob_gc.clone().expect("blob GC is enabled");
    let report = gc.sweep(now).await.unwrap().unwrap();
    assert_eq!(
        report,
        GcReport {
            projects: 1,
            blobs: 7,
            referenced: 5,
            young: 1,
            recently_used: 0,
            deleted: 1,
            deleted_bytes: 4,
            failed: 0,
        }
    );
    assert_eq!(head!(&app, &old_orphan), StatusCode::NOT_FOUND);
    for key in [
        &argument,
        &argument_fragment,
        &result,
        &asset,
        &logged,
        &young_orphan,
    ] {
        assert_eq!(head!(&app, key), StatusCode::OK, "{key} must survive");
    }

    // Once the young one is past the grace too, it goes; the referenced ones never do.
    let later = now + 2 * DAY;
    let report = gc.sweep(later).await.unwrap().unwrap();
    assert_eq!((report.deleted, report.referenced), (1, 5), "{report:?}");
    assert_eq!(head!(&app, &young_orphan), StatusCode::NOT_FOUND);
    for key in [&argument, &argument_fragment, &result, &asset, &logged] {
        assert_eq!(head!(&app, key), StatusCode::OK, "{key} must survive");
    }
}

#[actix_rt::test]
async fn blob_gc_spares_checked_blobs_and_stops_on_unreadable_references() {
    let dir = tempfile::tempdir().unwrap();
    let state = open_state(&ServerConfig::new(dir.path())).await;
    let app = test::init_service(create_app(state.clone())).await;
    let (status, _) = call!(
        &app,
        TestRequest::post()
            .uri("/api/projects")
            .set_json(json!({ "name": PROJECT }))
    );
    assert_eq!(status, StatusCode::CREATED);

    // Blobs left from before this server started (written by a store of their own, so this
    // server never saw them used), both two days old.
    let untracked = BlobStore::new(dir.path());
    let project = coflux_core::model::ProjectName::new(PROJECT).unwrap();
    let mut keys = Vec::new();
    for content in [&b"checked"[..], b"forgotten"] {
        let key = BlobKey::of(content);
        untracked
            .write_bytes(&project, &key, bytes::Bytes::copy_from_slice(content))
            .await
            .unwrap();
        set_mtime(&state, key.as_str(), SystemTime::now() - 2 * DAY);
        keys.push(key.to_string());
    }
    let (checked, forgotten) = (&keys[0], &keys[1]);

    // An unreadable asset record: nothing of the project may be deleted.
    let assets = dir.path().join("assets").join(PROJECT);
    std::fs::create_dir_all(&assets).unwrap();
    std::fs::write(assets.join("A0123456789abcdef.json"), b"{not json").unwrap();
    let gc = state.blob_gc.clone().unwrap();
    let report = gc.sweep(SystemTime::now()).await.unwrap().unwrap();
    assert_eq!((report.failed, report.deleted), (1, 0), "{report:?}");
    // (Looked at on disk: a HEAD would count as a use.)
    let path = |key: &str| {
        state
            .blobs
            .path(&project, &BlobKey::parse(key).unwrap())
            .unwrap()
    };
    assert!(path(forgotten).is_file() && path(checked).is_file());
    std::fs::remove_file(assets.join("A0123456789abcdef.json")).unwrap();

    // An agent checks that `checked` is present (so it will not upload it) before it records
    // a result referencing it: that check protects the blob through the grace period.
    assert_eq!(head!(&app, checked), StatusCode::OK);
    let report = gc.sweep(SystemTime::now()).await.unwrap().unwrap();
    assert_eq!(
        (report.deleted, report.recently_used, report.failed),
        (1, 1, 0),
        "{report:?}"
    );
    assert_eq!(head!(&app, forgotten), StatusCode::NOT_FOUND);
    assert_eq!(head!(&app, checked), StatusCode::OK);
    // A day later the check no longer protects it.
    let report = gc
        .sweep(SystemTime::now() + 2 * DAY)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.deleted, 1, "{report:?}");
    assert_eq!(head!(&app, checked), StatusCode::NOT_FOUND);

    // `--blob-gc-grace-hours 0` disables the collector altogether.
    let other = tempfile::tempdir().unwrap();
    let mut disabled = ServerConfig::new(other.path());
    disabled.blob_gc_grace = None;
    assert!(open_state(&disabled).await.blob_gc.is_none());
}

#[actix_rt::test]
async fn blob_gc_over_s3() {
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path());
    let mut s3 = moto.config();
    s3.prefix = "gc-test".into();
    config.blob_store = BlobStoreConfig::S3(s3);
    let state = open_state(&config).await;
    let app = test::init_service(create_app(state.clone())).await;
    let (status, _) = call!(
        &app,
        TestRequest::post()
            .uri("/api/projects")
            .set_json(json!({ "name": PROJECT }))
    );
    assert_eq!(status, StatusCode::CREATED);
    let argument = put_blob!(&app, b"arg1");
    let argument_fragment = put_blob!(&app, b"frg1");
    let result = put_blob!(&app, b"res1");
    let asset = put_blob!(&app, b"ast1");
    let orphan = put_blob!(&app, b"orph");
    record_run(&state, &argument, &argument_fragment, &result).await;
    let (status, body) = call!(
        &app,
        TestRequest::post()
            .uri(&format!("/api/projects/{PROJECT}/assets"))
            .set_json(json!({"entries": {"a.txt": {"blob_key": asset, "size": 4}}}))
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let object = |key: &str| format!("gc-test/{PROJECT}/{key}");

    // Now, the orphan is young (LastModified is the upload's time): nothing goes.
    let gc = state.blob_gc.clone().unwrap();
    let report = gc.sweep(SystemTime::now()).await.unwrap().unwrap();
    assert_eq!(
        (report.blobs, report.young, report.deleted),
        (5, 1, 0),
        "{report:?}"
    );
    assert!(moto.raw_sha256(&object(&orphan)).await.is_some());

    // Thirty days later only the orphan goes.
    let report = gc
        .sweep(SystemTime::now() + 30 * DAY)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (report.referenced, report.deleted, report.failed),
        (4, 1, 0),
        "{report:?}"
    );
    assert_eq!(moto.raw_sha256(&object(&orphan)).await, None);
    for key in [&argument, &argument_fragment, &result, &asset] {
        assert_eq!(
            moto.raw_sha256(&object(key)).await.as_deref(),
            Some(key.as_str()),
            "{key} must survive"
        );
    }
}

//! Garbage collection of blobs (`coflux_server::gc`), on an app built with `create_app`:
//! blobs referenced by a recorded run (a blob argument, its fragment, a fragment of the
//! result), by an asset record or by a log message survive; so do young and recently checked
//! unreferenced blobs; only old unreferenced blobs go. An unreadable asset record stops the
//! project's collection. One check runs over S3 (moto's server, installed on first use).

use std::time::{Duration, SystemTime};

use crate::support::Moto;
use actix_web::http::StatusCode;
use actix_web::test;
use actix_web::web;
use coflux_server::config::BlobStoreConfig;
use coflux_server::gc::GcReport;
use coflux_server::http::blobs::{BlobKey, BlobStore};
use coflux_server::{AppState, ServerConfig, create_app};

const HOUR: Duration = Duration::from_secs(60 * 60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);
const PROJECT: &str = "gc";

async fn open_state(config: &ServerConfig) -> web::Data<AppState> {
    web::Data::new(AppState::open(config).await.unwrap())
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
    create_project!(&app, PROJECT);
    let referenced = referenced_blobs!(&app, &state, PROJECT);
    let old_orphan = put_blob!(&app, PROJECT, b"old1");
    let young_orphan = put_blob!(&app, PROJECT, b"yng1");

    // The sweep runs as if 30 days had passed: every upload and check made above is older
    // than the grace, so only references and write times decide.
    let now = SystemTime::now() + 30 * DAY;
    for key in referenced.keys().into_iter().chain([&old_orphan]) {
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
    assert_eq!(head!(&app, PROJECT, &old_orphan), StatusCode::NOT_FOUND);
    for key in referenced.keys().into_iter().chain([&young_orphan]) {
        assert_eq!(
            head!(&app, PROJECT, key),
            StatusCode::OK,
            "{key} must survive"
        );
    }

    // Once the young one is past the grace too, it goes; the referenced ones never do.
    let later = now + 2 * DAY;
    let report = gc.sweep(later).await.unwrap().unwrap();
    assert_eq!((report.deleted, report.referenced), (1, 5), "{report:?}");
    assert_eq!(head!(&app, PROJECT, &young_orphan), StatusCode::NOT_FOUND);
    for key in referenced.keys() {
        assert_eq!(
            head!(&app, PROJECT, key),
            StatusCode::OK,
            "{key} must survive"
        );
    }
}

#[actix_rt::test]
async fn blob_gc_spares_checked_blobs_and_stops_on_unreadable_references() {
    let dir = tempfile::tempdir().unwrap();
    let state = open_state(&ServerConfig::new(dir.path())).await;
    let app = test::init_service(create_app(state.clone())).await;
    create_project!(&app, PROJECT);

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
    assert_eq!(head!(&app, PROJECT, checked), StatusCode::OK);
    let report = gc.sweep(SystemTime::now()).await.unwrap().unwrap();
    assert_eq!(
        (report.deleted, report.recently_used, report.failed),
        (1, 1, 0),
        "{report:?}"
    );
    assert_eq!(head!(&app, PROJECT, forgotten), StatusCode::NOT_FOUND);
    assert_eq!(head!(&app, PROJECT, checked), StatusCode::OK);
    // A day later the check no longer protects it.
    let report = gc
        .sweep(SystemTime::now() + 2 * DAY)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.deleted, 1, "{report:?}");
    assert_eq!(head!(&app, PROJECT, checked), StatusCode::NOT_FOUND);

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
    create_project!(&app, PROJECT);
    let referenced = referenced_blobs!(&app, &state, PROJECT);
    let orphan = put_blob!(&app, PROJECT, b"orph");
    let object = |key: &str| format!("gc-test/{PROJECT}/{key}");

    // Now, the orphan is young (LastModified is the upload's time): nothing goes.
    let gc = state.blob_gc.clone().unwrap();
    let report = gc.sweep(SystemTime::now()).await.unwrap().unwrap();
    assert_eq!(
        (report.blobs, report.young, report.deleted),
        (6, 1, 0),
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
        (5, 1, 0),
        "{report:?}"
    );
    assert_eq!(moto.raw_sha256(&object(&orphan)).await, None);
    for key in referenced.keys() {
        assert_eq!(
            moto.raw_sha256(&object(key)).await.as_deref(),
            Some(key.as_str()),
            "{key} must survive"
        );
    }
}

//! Blob garbage collection with `--database-url` (two nodes over one PostgreSQL database and
//! one S3 bucket): asset records, logs and blob uses are shared, so the node that does not own
//! a project collects its blobs without deleting any the owner's run, asset or log references,
//! nor one the owner checked within the grace; only one node sweeps at a time. Needs
//! `COFLUX_TEST_DATABASE_URL`; skipped without it unless `COFLUX_PG_TESTS=require`.

use std::time::{Duration, SystemTime};

use crate::support::Moto;
use actix_web::http::StatusCode;
use actix_web::test;
use actix_web::web;
use coflux_server::blobs::SWEEP_LOCK;
use coflux_server::config::BlobStoreConfig;
use coflux_server::{AppState, ServerConfig, create_app};
use serde_json::json;

#[actix_rt::test]
async fn postgres_blob_gc_sees_every_nodes_references_and_uses() {
    let Some(url) = crate::support::pg_database_url("PostgreSQL blob GC test") else {
        return;
    };
    let moto = Moto::start().await;
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let project = format!("gcpg{}x{stamp}", std::process::id());
    let prefix = format!("gc-pg-{stamp}");
    let grace = Duration::from_secs(2);
    let node = |n: u16, dir: &std::path::Path| {
        let mut config = ServerConfig::new(dir);
        config.database_url = Some(url.clone());
        config.advertise_url = Some(format!("http://127.0.0.1:{}", 1 + n));
        let mut s3 = moto.config();
        s3.prefix = prefix.clone();
        config.blob_store = BlobStoreConfig::S3(s3);
        config.blob_gc_grace = Some(grace);
        config
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let owner = web::Data::new(AppState::open(&node(1, dir_a.path())).await.unwrap());
    let other = web::Data::new(AppState::open(&node(2, dir_b.path())).await.unwrap());
    let app = test::init_service(create_app(owner.clone())).await;
    create_project!(&app, &project);

    // On the owner: a run referencing three blobs, an asset, a logged blob, a blob it will
    // check later, and an orphan.
    let referenced = referenced_blobs!(&app, &owner, &project);
    let checked = put_blob!(&app, project, b"chk1");
    let orphan = put_blob!(&app, project, b"orph");

    // The asset record is in the shared table: the other node reads it.
    let name = coflux_core::model::ProjectName::new(&project).unwrap();
    let record = other
        .assets
        .get(&name, &referenced.asset_id)
        .unwrap()
        .expect("shared record");
    assert_eq!(record.entries["a.txt"].blob_key, referenced.asset);

    // Past the grace, the owner checks one old blob (an agent about to reference it).
    actix_rt::time::sleep(grace + Duration::from_millis(1500)).await;
    assert_eq!(head!(&app, project, checked), StatusCode::OK);

    // While another session holds the sweep lock, no node sweeps.
    let (lock_url, held) = (url.clone(), std::sync::Arc::new(std::sync::Barrier::new(2)));
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let barrier = held.clone();
    let holder = std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&lock_url, postgres::NoTls).unwrap();
        client
            .execute("SELECT pg_advisory_lock($1)", &[&SWEEP_LOCK])
            .unwrap();
        barrier.wait();
        release_rx.recv().unwrap();
    });
    held.wait();
    let gc = other
        .blob_gc
        .clone()
        .expect("blob GC is on over PostgreSQL");
    assert_eq!(gc.sweep(SystemTime::now()).await.unwrap(), None);
    release_tx.send(()).unwrap();
    holder.join().unwrap();

    // The node that does not own the project sweeps: only the orphan goes.
    let report = gc.sweep(SystemTime::now()).await.unwrap().expect("swept");
    assert_eq!(
        (
            report.blobs,
            report.referenced,
            report.recently_used,
            report.deleted
        ),
        (7, 5, 1, 1),
        "{report:?}"
    );
    assert_eq!(head!(&app, project, orphan), StatusCode::NOT_FOUND);
    for key in referenced.keys().into_iter().chain([&checked]) {
        assert_eq!(
            head!(&app, project, key),
            StatusCode::OK,
            "{key} must survive"
        );
    }
    // Once the check is past the grace too, the checked blob goes; the referenced ones stay.
    let later = SystemTime::now() + 10 * grace;
    let report = gc.sweep(later).await.unwrap().expect("swept");
    assert_eq!((report.deleted, report.referenced), (1, 5), "{report:?}");
    let object = |key: &str| format!("{prefix}/{project}/{key}");
    assert_eq!(moto.raw_sha256(&object(&checked)).await, None);
    for key in referenced.keys() {
        assert!(moto.raw_sha256(&object(key)).await.is_some(), "{key}");
    }
}

/// Asset records over PostgreSQL: one node's record is read on another; the same id with other
/// content is a conflict; retention deletes only old records nothing refers to.
#[actix_rt::test]
async fn postgres_asset_records_are_shared_and_pruned() {
    use coflux_server::asset_record::Record;
    use coflux_server::asset_store::{AssetStore, AssetStoreError};
    let Some(url) = crate::support::pg_database_url("PostgreSQL blob GC test") else {
        return;
    };
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let project =
        coflux_core::model::ProjectName::new(&format!("assetspg{}x{stamp}", std::process::id()))
            .unwrap();
    let record = |name: &str| -> Record {
        serde_json::from_value(json!({"name": name, "entries": {
            "a.txt": {"blob_key": "ab".repeat(32), "size": 3}
        }}))
        .unwrap()
    };
    let ids = actix_web::web::block(move || {
        let (a, b) = (
            AssetStore::postgres(&url).unwrap(),
            AssetStore::postgres(&url).unwrap(),
        );
        let (kept, dropped) = (record("kept"), record("dropped"));
        let (kept_id, dropped_id) = (kept.id(), dropped.id());
        a.put(&project, &kept_id, &kept).unwrap();
        a.put(&project, &dropped_id, &dropped).unwrap();
        // Idempotent; a different record under the same id is refused.
        b.put(&project, &kept_id, &kept).unwrap();
        assert!(matches!(
            b.put(&project, &kept_id, &dropped),
            Err(AssetStoreError::Conflict)
        ));
        assert_eq!(b.get(&project, &kept_id).unwrap(), Some(kept));
        assert_eq!(b.get(&project, "A0000000000000000").unwrap(), None);
        let mut keys = std::collections::HashSet::new();
        b.blob_keys(&project, &mut keys).unwrap();
        assert_eq!(keys.into_iter().collect::<Vec<_>>(), vec!["ab".repeat(32)]);
        let referenced = std::collections::HashSet::from([kept_id.clone()]);
        // Young records stay, referenced or not.
        let young = b
            .delete_unreferenced(
                &project,
                &referenced,
                SystemTime::now() - Duration::from_secs(60),
            )
            .unwrap();
        assert_eq!(young, 0);
        let later = SystemTime::now() + Duration::from_secs(60);
        assert_eq!(
            b.delete_unreferenced(&project, &referenced, later).unwrap(),
            1
        );
        (
            a.get(&project, &kept_id).unwrap().is_some(),
            a.get(&project, &dropped_id).unwrap().is_some(),
        )
    })
    .await
    .unwrap();
    assert_eq!(ids, (true, false), "only the unreferenced record goes");
}

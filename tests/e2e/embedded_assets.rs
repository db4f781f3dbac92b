//! Assets through the Rust SDK in embedded mode: a task persists a directory with a glob
//! filter, another restores a subset of it; blobs and records land under the data directory,
//! content-addressed; traversal attempts (persisting `../x`, restoring a tampered record) fail
//! with a clear error and write nothing outside the target directory; deleting runs (one, or
//! by retention) deletes the asset records they leave unreferenced.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use coflux_core::sdk::{Asset, AssetError, Failure, Repository, task, with_assets, workflow};
use coflux_core::{Coflux, Project, Worker};
use serde_json::json;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Writes a few files under `dir` and persists its CSV files under `data/`.
#[task]
async fn make(dir: String) -> Result<Asset, Failure> {
    let dir = PathBuf::from(dir);
    write(&dir.join("summary.txt"), "summary");
    write(&dir.join("data/one.csv"), "1,2\n");
    write(&dir.join("data/sub/two.csv"), "3,4\n");
    write(&dir.join("data/notes.md"), "# notes\n");
    Ok(Asset::dir(dir)
        .matching("data/*.csv")
        .name("csvs")
        .metadata("owner", "embedded")
        .persist()
        .await?)
}

/// Restores the files of `asset` under `data/sub` into `to`; gives each restored path and its
/// content, and the asset's listing.
#[task]
async fn take(asset: Asset, to: String) -> Result<serde_json::Value, Failure> {
    let restored = asset.restore().paths(["data/sub"]).to(&to).await?;
    let mut contents = serde_json::Map::new();
    for (path, local) in &restored {
        contents.insert(path.clone(), std::fs::read_to_string(local)?.into());
    }
    let listing: Vec<_> = asset
        .entries()
        .await?
        .into_iter()
        .map(|e| json!([e.path, e.size, e.metadata]))
        .collect();
    Ok(json!({
        "restored": contents,
        "listing": listing,
        "reference": [asset.name(), asset.count(), asset.size()],
    }))
}

#[workflow]
async fn pipeline(dir: String, to: String) -> Result<serde_json::Value, Failure> {
    let asset = make.call(dir).await?;
    let used = take.call(asset.clone(), to).await?;
    Ok(json!({ "id": asset.id(), "used": used }))
}

/// Tries to persist a file as `../escape.txt`, then to restore asset `id` into `to`; gives
/// both errors.
#[task]
async fn escape(file: String, id: String, to: String) -> Result<Vec<String>, Failure> {
    let persisted = Asset::builder()
        .file_as("../escape.txt", file)
        .persist()
        .await;
    let restored = Asset::from_id(id)?.restore().to(to).await;
    Ok(vec![
        persisted.err().map(|e| e.to_string()).unwrap_or_default(),
        restored.err().map(|e| e.to_string()).unwrap_or_default(),
    ])
}

/// Fails with the asset error (`?`): a missing file.
#[task]
async fn missing(file: String) -> Result<Asset, Failure> {
    Ok(Asset::file(file).persist().await?)
}

/// Persists one file as the run's result.
#[workflow]
async fn stored(file: String) -> Result<Asset, Failure> {
    Ok(Asset::file(file).persist().await?)
}

fn repository() -> Repository {
    Repository::new()
        .with(stored)
        .with(pipeline)
        .with(make)
        .with(take)
        .with(escape)
        .with(missing)
}

/// A data directory (in a temp dir) with project `demo`, its `production` environment and a
/// worker serving [`repository`].
async fn serve_demo() -> (tempfile::TempDir, PathBuf, Coflux, Project, Worker) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let coflux = Coflux::open(&data).await.unwrap();
    let project = coflux.project("demo").await.unwrap();
    project
        .ensure_environment("production", None)
        .await
        .unwrap();
    let worker = project.serve("production", repository()).await.unwrap();
    (dir, data, coflux, project, worker)
}

#[actix_rt::test]
async fn a_directory_persisted_with_a_glob_is_restored_in_part_by_another_task() {
    let (dir, data, _coflux, project, _worker) = serve_demo().await;

    let source = dir.path().join("source").display().to_string();
    let to = dir.path().join("restored");
    let run = project
        .submit("production", &pipeline, (&source, to.display().to_string()))
        .await
        .unwrap();
    let result: serde_json::Value = run.result().await.unwrap();
    let used = &result["used"];
    assert_eq!(used["reference"], json!(["csvs", 2, 8]), "{result}");
    assert_eq!(
        used["listing"],
        json!([
            ["data/one.csv", 4, {"type": "text/csv", "owner": "embedded"}],
            ["data/sub/two.csv", 4, {"type": "text/csv", "owner": "embedded"}],
        ])
    );
    // Only the subset was restored, at its path inside the asset.
    assert_eq!(used["restored"], json!({"data/sub/two.csv": "3,4\n"}));
    assert_eq!(
        std::fs::read_to_string(to.join("data/sub/two.csv")).unwrap(),
        "3,4\n"
    );
    assert!(!to.join("data/one.csv").exists());

    // The record and the blobs are under the data directory, content-addressed.
    let id = result["id"].as_str().unwrap();
    let record = data.join(format!("assets/demo/{id}.json"));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(record).unwrap()).unwrap();
    let key = record["entries"]["data/one.csv"]["blob_key"]
        .as_str()
        .unwrap();
    let blob = data.join(format!("blobs/demo/{}/{key}", &key[..2]));
    assert_eq!(std::fs::read_to_string(blob).unwrap(), "1,2\n");
    // Persisting the same files again gives the same asset.
    let again = project
        .submit("production", &make, (&source,))
        .await
        .unwrap();
    let again: Asset = again.result().await.unwrap();
    assert_eq!(again.id(), id);

    // Outside an execution, the project's store lists and restores it too.
    let store = Arc::new(project.assets());
    let outside = dir.path().join("outside");
    let restored = with_assets(store, async {
        let asset = Asset::from_id(id).unwrap();
        let entries = asset.entries().await.unwrap();
        assert_eq!(entries.len(), 2);
        asset
            .restore()
            .matching("*one*")
            .to(&outside)
            .await
            .unwrap()
    })
    .await;
    assert_eq!(restored.keys().collect::<Vec<_>>(), ["data/one.csv"]);
    assert_eq!(
        std::fs::read_to_string(outside.join("data/one.csv")).unwrap(),
        "1,2\n"
    );
}

#[actix_rt::test]
async fn traversal_attempts_are_rejected_with_a_clear_error() {
    let (dir, data, _coflux, project, _worker) = serve_demo().await;

    // A record with an escaping path, as a tampered data directory could hold.
    let file = dir.path().join("file.txt");
    std::fs::write(&file, "x").unwrap();
    let tampered = "A0000000000000bad";
    let record = json!({"name": null, "entries": {
        "../escaped.txt": {"blob_key": "ab".repeat(32), "size": 1, "metadata": {}}
    }});
    std::fs::create_dir_all(data.join("assets/demo")).unwrap();
    std::fs::write(
        data.join(format!("assets/demo/{tampered}.json")),
        record.to_string(),
    )
    .unwrap();

    let inner = dir.path().join("inner");
    let arguments = (
        file.display().to_string(),
        tampered,
        inner.display().to_string(),
    );
    let run = project
        .submit("production", &escape, arguments)
        .await
        .unwrap();
    let errors: Vec<String> = run.result().await.unwrap();
    assert_eq!(
        errors,
        [
            r#"invalid_asset_path: asset path "../escape.txt" has a '.' or '..' component"#,
            r#"invalid_asset_path: asset path "../escaped.txt" has a '.' or '..' component"#,
        ]
    );
    assert!(!dir.path().join("escaped.txt").exists());
    assert!(!dir.path().join("escape.txt").exists());
    assert!(!inner.exists());

    // With `?`, the asset error fails the task, typed.
    let missing_file = dir.path().join("nope.txt").display().to_string();
    let run = project
        .submit("production", &missing, (missing_file,))
        .await
        .unwrap();
    let error = run.result::<Asset>().await.unwrap_err().to_string();
    assert!(error.contains("nope.txt is not a file"), "{error}");
    assert!(
        error.contains(std::any::type_name::<AssetError>()),
        "{error}"
    );
}

/// The blob keys of the asset records in `records`, by record id.
fn record_blobs(records: &Path) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut found = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(records).unwrap() {
        let path = entry.unwrap().path();
        let Some(id) = path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .strip_suffix(".json")
        else {
            continue;
        };
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let keys = record["entries"].as_object().unwrap().values();
        let keys = keys.map(|e| e["blob_key"].as_str().unwrap().to_owned());
        found.insert(id.to_owned(), keys.collect());
    }
    found
}

#[actix_rt::test]
async fn deleting_runs_deletes_the_asset_records_they_leave_unreferenced() {
    let (dir, data, _coflux, project, _worker) = serve_demo().await;
    let records = data.join("assets").join("demo");
    let mut runs = Vec::new();
    for name in ["a", "b", "c"] {
        let file = dir.path().join(format!("{name}.txt"));
        write(&file, &format!("content of {name}"));
        let file = file.to_string_lossy().into_owned();
        let run = project
            .submit("production", &stored, (file,))
            .await
            .unwrap();
        let asset: Asset = run.result().await.unwrap();
        runs.push((run.run, asset.id().to_owned()));
    }
    let blobs = record_blobs(&records);
    assert_eq!(blobs.len(), 3, "{blobs:?}");
    // Records written within the last day are kept even when unreferenced (an asset is
    // persisted before the result that refers to it): these were written two days ago.
    let two_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86_400);
    for (_, id) in &runs {
        let record = std::fs::File::options()
            .write(true)
            .open(records.join(format!("{id}.json")))
            .unwrap();
        record.set_modified(two_days_ago).unwrap();
    }

    // One run deleted: its record goes, the others' stay.
    let (first, first_asset) = &runs[0];
    project.delete_run(*first).await.unwrap();
    let left = record_blobs(&records);
    let ids: Vec<&String> = left.keys().collect();
    let mut kept = [&runs[1].1, &runs[2].1];
    kept.sort();
    assert_eq!(ids, kept, "{left:?}");
    // Its blob is referenced by nothing the project keeps: the blob GC's to take.
    let blob = &blobs[first_asset][0];
    let referenced = project.referenced_blob_keys().await.unwrap();
    assert!(!referenced.contains(blob));
    assert!(!left.values().flatten().any(|k| k == blob));

    // Retention deletes the rest, with their records.
    let report = project
        .delete_expired_runs(coflux_core::model::now_millis() + 1, 10)
        .await
        .unwrap();
    assert_eq!(report.deleted, [runs[1].0, runs[2].0]);
    assert!(record_blobs(&records).is_empty());
}

//! Tampered asset records, for the tests of restoring an asset that escapes its directory.

use std::path::Path;

use serde_json::{Value as Json, json};

use crate::backend;

/// Writes, straight into a server's data directory `data_dir`, an asset record of `project`
/// with an entry that escapes the restore directory (`../escaped.txt`, pointing at the blob
/// `blob_key`), as a compromised server could serve it; returns the record's id.
pub fn write_escaping_asset(data_dir: &Path, project: &str, blob_key: &Json) -> &'static str {
    let id = "A0000000000000bad";
    let record = json!({"name": null, "entries": {
        "../escaped.txt": {"blob_key": blob_key, "size": 11, "metadata": {}}
    }});
    if let Some(url) = backend::database_url(data_dir) {
        // Over PostgreSQL the records are rows (the blocking client runs off the test's runtime).
        let (project, record) = (project.to_owned(), record.to_string());
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            client
                .execute(
                    "INSERT INTO coflux_assets (project, id, record, created_ms) \
                     VALUES ($1, $2, $3, 0)",
                    &[&project, &id, &record],
                )
                .expect("write the tampered asset record");
        })
        .join()
        .expect("writing the tampered asset record panicked");
        return id;
    }
    let file = data_dir.join(format!("assets/{project}/{id}.json"));
    std::fs::write(&file, record.to_string()).expect("write the tampered asset record");
    id
}

/// Asserts that a `restore_asset` example run refused an escaping asset: its outcome is an
/// `invalid_asset_path` error and nothing was written outside its directory.
pub fn assert_escape_refused(result: &Json) {
    let outcome = result["value"]["outcome"].as_str().unwrap_or_default();
    assert!(outcome.starts_with("invalid_asset_path"), "{result}");
    assert_eq!(result["value"]["escaped"], false, "{result}");
}

//! `coflux assets inspect ASSET | download ASSET [--to DIR] [PATH...]`.
//!
//! Downloads check every path of the asset first (relative, no `.`/`..`, NUL, control
//! characters or backslashes) and refuse to write through a symbolic link, so nothing is
//! written outside `--to`.

use std::path::{Path, PathBuf};

use serde_json::{Value as Json, json};

use super::args::AssetsCommand;
use super::client::typed;
use super::{CliError, Context, Exit, output};
use crate::executor::assets::{AssetEntry, AssetRecord, valid_id, validate_entries};
use crate::runtime::BlobClient;

/// Runs an `assets` command.
pub async fn run(ctx: &Context, command: AssetsCommand) -> Result<Exit, CliError> {
    match command {
        AssetsCommand::Inspect { asset } => {
            let answer = fetch(ctx, &asset).await?;
            if ctx.json() {
                ctx.print_json(&answer)?;
            } else {
                ctx.print(&describe(&typed(&answer)?))?;
            }
        }
        AssetsCommand::Download { asset, to, paths } => {
            let record: AssetRecord = typed(&fetch(ctx, &asset).await?)?;
            let chosen = select(&record, &paths)?;
            let blobs = BlobClient::new(ctx.client.server(), ctx.project()?);
            let mut files = Vec::new();
            for (path, entry) in &chosen {
                let target = destination(&to, path)?;
                blobs
                    .get_file(&entry.blob_key, &target)
                    .await
                    .map_err(|e| CliError::Protocol(format!("downloading {path}: {e}")))?;
                files.push(json!({ "path": path, "size": entry.size }));
            }
            if ctx.json() {
                let to = to.display().to_string();
                ctx.print_json(&json!({ "id": record.id, "to": to, "files": files }))?;
            } else {
                let size: u64 = chosen.iter().map(|(_, e)| e.size).sum();
                ctx.print(&format!(
                    "downloaded {} file{} ({size} bytes) to {}",
                    chosen.len(),
                    if chosen.len() == 1 { "" } else { "s" },
                    to.display()
                ))?;
            }
        }
    }
    Ok(Exit::Success)
}

/// The asset's JSON, after checking the id and every path in it.
async fn fetch(ctx: &Context, asset: &str) -> Result<Json, CliError> {
    if !valid_id(asset) {
        return Err(CliError::Usage(format!(
            "'{asset}' is not an asset id ('A' followed by 16 hexadecimal digits)"
        )));
    }
    let answer = ctx
        .client
        .get(&format!("{}/assets/{asset}", ctx.project_path()?))
        .await?;
    let record: AssetRecord = typed(&answer)?;
    validate_entries(record.entries.keys().map(String::as_str)).map_err(CliError::Protocol)?;
    Ok(answer)
}

/// A header line and a table of the entries.
fn describe(record: &AssetRecord) -> String {
    let name = record
        .name
        .as_deref()
        .map(|n| format!(" '{n}'"))
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = record
        .entries
        .iter()
        .map(|(path, e)| {
            let kind = e.metadata.get("type").and_then(Json::as_str).unwrap_or("");
            let blob = e.blob_key.get(..12).unwrap_or(&e.blob_key);
            vec![
                path.clone(),
                e.size.to_string(),
                kind.to_owned(),
                blob.to_owned(),
            ]
        })
        .collect();
    format!(
        "asset {}{name}: {} file{}, {} bytes\n\n{}",
        record.id,
        record.count,
        if record.count == 1 { "" } else { "s" },
        record.size,
        output::table(&["PATH", "SIZE", "TYPE", "BLOB"], &rows)
    )
}

/// The entries named by `paths` (an entry's path, or a directory of entries); all without.
fn select<'a>(
    record: &'a AssetRecord,
    paths: &[String],
) -> Result<Vec<(&'a String, &'a AssetEntry)>, CliError> {
    if paths.is_empty() {
        return Ok(record.entries.iter().collect());
    }
    let mut chosen = Vec::new();
    for wanted in paths {
        let wanted = wanted.trim_end_matches('/');
        let mut found = false;
        for (path, entry) in &record.entries {
            let inside = path
                .strip_prefix(wanted)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
            found |= inside;
            if inside && !chosen.iter().any(|(p, _)| *p == path) {
                chosen.push((path, entry));
            }
        }
        if !found {
            return Err(CliError::Usage(format!(
                "asset {} has no entry '{wanted}' (see `coflux assets inspect {}`)",
                record.id, record.id
            )));
        }
    }
    Ok(chosen)
}

/// Where an entry goes under `root`, refusing to go through a symbolic link.
fn destination(root: &Path, path: &str) -> Result<PathBuf, CliError> {
    let mut target = root.to_path_buf();
    for component in path.split('/') {
        target.push(component);
        if std::fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(CliError::Usage(format!(
                "{} is a symbolic link; not writing through it",
                target.display()
            )));
        }
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn record(paths: &[&str]) -> AssetRecord {
        let entry = AssetEntry {
            blob_key: "ab".repeat(32),
            size: 2,
            metadata: Default::default(),
        };
        AssetRecord {
            id: "A0123456789abcdef".into(),
            name: None,
            count: paths.len() as u64,
            size: 2 * paths.len() as u64,
            entries: paths
                .iter()
                .map(|p| ((*p).to_owned(), entry.clone()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn paths_select_entries_and_directories() {
        let r = record(&["a.txt", "data/x.csv", "data/y.csv", "database"]);
        let names = |paths: &[&str]| -> Vec<String> {
            let paths: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
            select(&r, &paths)
                .unwrap()
                .into_iter()
                .map(|(p, _)| p.clone())
                .collect()
        };
        assert_eq!(names(&[]).len(), 4);
        assert_eq!(names(&["data/"]), ["data/x.csv", "data/y.csv"]);
        assert_eq!(names(&["a.txt", "a.txt"]), ["a.txt"]);
        assert!(select(&r, &["missing".to_owned()]).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn downloads_never_follow_symbolic_links() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/tmp", dir.path().join("link")).unwrap();
        assert!(destination(dir.path(), "link/x").is_err());
        assert_eq!(
            destination(dir.path(), "d/x").unwrap(),
            dir.path().join("d").join("x")
        );
    }
}

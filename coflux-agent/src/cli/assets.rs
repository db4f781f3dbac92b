//! `coflux assets inspect ASSET [--match GLOB] | download ASSET [--to DIR] [PATH...]
//! [--match GLOB]`.
//!
//! Downloads check every path of the asset first (relative, no `.`/`..`, NUL, control
//! characters or backslashes) and refuse to write through a symbolic link, so nothing is
//! written outside `--to`.

use std::path::{Path, PathBuf};

use serde_json::{Value as Json, json};

use super::args::AssetsCommand;
use super::client::typed;
use super::{CliError, Context, Exit, output};
use crate::executor::assets::{valid_id, validate_entries};
use crate::executor::{AssetEntry, AssetRecord};
use crate::runtime::BlobClient;

/// Runs an `assets` command.
pub async fn run(ctx: &Context, command: AssetsCommand) -> Result<Exit, CliError> {
    match command {
        AssetsCommand::Inspect { asset, pattern } => {
            let mut answer = fetch(ctx, &asset).await?;
            let mut record: AssetRecord = typed(&answer)?;
            let total = record.entries.len();
            if let Some(pattern) = &pattern {
                record.entries.retain(|path, _| glob_match(pattern, path));
                if let Some(entries) = answer.get_mut("entries").and_then(Json::as_object_mut) {
                    entries.retain(|path, _| glob_match(pattern, path));
                }
            }
            if ctx.json() {
                ctx.print_json(&answer)?;
            } else {
                let mut text = describe(&record);
                if pattern.is_some() {
                    text.push_str(&format!(
                        "\nmatched {} of {total} files",
                        record.entries.len()
                    ));
                }
                ctx.print(&text)?;
            }
        }
        AssetsCommand::Download {
            asset,
            to,
            paths,
            pattern,
        } => {
            let record: AssetRecord = typed(&fetch(ctx, &asset).await?)?;
            let mut chosen = select(&record, &paths)?;
            if let Some(pattern) = &pattern {
                chosen.retain(|(path, _)| glob_match(pattern, path));
                if chosen.is_empty() {
                    return Err(CliError::Usage(format!(
                        "no file of asset {} matches '{pattern}'",
                        record.summary.id
                    )));
                }
            }
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
                ctx.print_json(&json!({ "id": record.summary.id, "to": to, "files": files }))?;
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
        .summary
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
        record.summary.id,
        record.summary.count,
        if record.summary.count == 1 { "" } else { "s" },
        record.summary.size,
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
                record.summary.id, record.summary.id
            )));
        }
    }
    Ok(chosen)
}

/// Whether `path` matches `pattern`: `*` is any run of characters but `/`, `?` one such
/// character, and a `**` segment any number of directories (none included).
pub fn glob_match(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.trim_matches('/').split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    match_segments(&pattern, &path)
}

fn match_segments(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| match_segments(rest, &path[skip..])),
        Some((first, rest)) => path.split_first().is_some_and(|(segment, others)| {
            match_segment(first.as_bytes(), segment.as_bytes()) && match_segments(rest, others)
        }),
    }
}

fn match_segment(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| match_segment(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && match_segment(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && match_segment(rest, &text[1..]),
    }
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
    use coflux_core::protocol::http::AssetSummary;

    fn record(paths: &[&str]) -> AssetRecord {
        let entry = AssetEntry {
            blob_key: "ab".repeat(32),
            size: 2,
            metadata: Default::default(),
        };
        AssetRecord {
            summary: AssetSummary {
                id: "A0123456789abcdef".into(),
                name: None,
                count: paths.len(),
                size: 2 * paths.len() as u64,
            },
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

    #[test]
    fn globs_match_within_and_across_directories() {
        assert!(glob_match("data/*.csv", "data/x.csv"));
        assert!(!glob_match("data/*.csv", "data/sub/x.csv"));
        assert!(!glob_match("*.csv", "data/x.csv"));
        assert!(glob_match("**/*.csv", "data/sub/x.csv"));
        assert!(glob_match("**/*.csv", "x.csv"));
        assert!(glob_match("data/**", "data/sub/x.csv"));
        assert!(glob_match("?.txt", "a.txt"));
        assert!(!glob_match("?.txt", "ab.txt"));
        assert!(glob_match("notes.md", "notes.md"));
        assert!(!glob_match("notes", "notes.md"));
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

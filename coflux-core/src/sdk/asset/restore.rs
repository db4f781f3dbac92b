//! [`Restore`]: writes an asset's files (all, or a subset) into a directory, never outside it.

use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};

use super::{Asset, AssetEntry, AssetError, current_host, glob};
use crate::sdk::current_execution;

/// How many files of one asset are fetched at once.
const FETCHES: usize = 4;

/// A restore of an asset's files, started by awaiting it (`asset.restore().await?`). It gives
/// each restored entry's local path, by entry path.
///
/// Every entry path is checked before anything is written (relative, no `.`/`..`, NUL,
/// control characters or backslashes; see [`crate::model::asset`]), and each file's directory
/// is checked to be inside the restore directory once created, so neither a tampered record
/// nor a symbolic link in the directory can make it write elsewhere. Files are replaced
/// atomically.
#[must_use = "a restore does nothing until awaited"]
pub struct Restore<'a> {
    asset: &'a Asset,
    pattern: Option<String>,
    paths: Vec<String>,
    to: Option<PathBuf>,
}

impl<'a> Restore<'a> {
    pub(super) fn new(asset: &'a Asset) -> Self {
        Self {
            asset,
            pattern: None,
            paths: Vec::new(),
            to: None,
        }
    }

    /// Restores only the entries whose path matches `pattern` (Python's `fnmatch` rules, see
    /// [`super::glob_matches`]).
    pub fn matching(mut self, pattern: impl Into<String>) -> Self {
        self.pattern = Some(pattern.into());
        self
    }

    /// Restores only these entries: each path is a file of the asset or a directory in it
    /// (every file under it). Combined with [`Restore::matching`], an entry must satisfy both.
    pub fn paths<S: Into<String>>(mut self, paths: impl IntoIterator<Item = S>) -> Self {
        self.paths.extend(paths.into_iter().map(|p| {
            let p: String = p.into();
            p.trim_end_matches('/').to_owned()
        }));
        self
    }

    /// Restores into `dir` (relative to the execution's working directory) instead of the
    /// working directory itself.
    pub fn to(mut self, dir: impl Into<PathBuf>) -> Self {
        self.to = Some(dir.into());
        self
    }

    fn selected(&self, entry: &AssetEntry) -> bool {
        let by_pattern = self
            .pattern
            .as_ref()
            .is_none_or(|p| glob::matches(p, &entry.path));
        let by_path = self.paths.is_empty()
            || self.paths.iter().any(|p| {
                entry.path == *p
                    || entry
                        .path
                        .strip_prefix(p.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            });
        by_pattern && by_path
    }

    async fn run(self) -> Result<BTreeMap<String, PathBuf>, AssetError> {
        let host = current_host().ok_or(AssetError::NoStore)?;
        let entries = self.asset.entries().await?;
        // Nothing is written if any path of the listing is unsafe.
        AssetError::check_paths(entries.iter().map(|e| e.path.as_str()))?;
        let dir = super::working_dir().join(self.to.as_deref().unwrap_or(Path::new("")));
        let selected: Vec<AssetEntry> = entries.into_iter().filter(|e| self.selected(e)).collect();
        let targets = tokio::task::spawn_blocking(move || prepare(&dir, selected))
            .await
            .map_err(|e| AssetError::Unavailable(e.to_string()))??;
        let execution = current_execution();
        futures::stream::iter(targets)
            .map(|(entry, target, shown)| {
                let host = host.clone();
                async move {
                    let path = entry.path.clone();
                    host.fetch(execution, entry, target).await?;
                    Ok::<_, AssetError>((path, shown))
                }
            })
            .buffer_unordered(FETCHES)
            .try_collect()
            .await
    }
}

impl<'a> IntoFuture for Restore<'a> {
    type Output = Result<BTreeMap<String, PathBuf>, AssetError>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        self.run().boxed()
    }
}

/// Creates `dir` and the directories of the entries' files, checking that each one is inside
/// `dir` once symbolic links are resolved; gives each entry's target file (resolved) and its
/// path as shown to the caller (`dir/<entry path>`).
fn prepare(
    dir: &Path,
    entries: Vec<AssetEntry>,
) -> Result<Vec<(AssetEntry, PathBuf, PathBuf)>, AssetError> {
    std::fs::create_dir_all(dir).map_err(AssetError::io(dir))?;
    let root = dir.canonicalize().map_err(AssetError::io(dir))?;
    let mut targets = Vec::with_capacity(entries.len());
    for entry in entries {
        // Checked paths: relative, `/`-separated, without `.` or `..` components.
        let mut parent = root.clone();
        let mut parts: Vec<&str> = entry.path.split('/').collect();
        let file = parts.pop().unwrap_or_default().to_owned();
        parts.iter().for_each(|part| parent.push(part));
        std::fs::create_dir_all(&parent).map_err(AssetError::io(&parent))?;
        let resolved = parent.canonicalize().map_err(AssetError::io(&parent))?;
        if !resolved.starts_with(&root) {
            return Err(AssetError::Escapes {
                path: entry.path,
                dir: dir.to_path_buf(),
            });
        }
        let target = resolved.join(file);
        let shown = dir.join(&entry.path);
        targets.push((entry, target, shown));
    }
    Ok(targets)
}

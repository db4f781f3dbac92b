//! [`AssetBuilder`]: which files to persist as an asset, and under which paths.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value as Json};

use super::{Asset, AssetEntry, AssetError, LocalFile, PersistRequest, current_host, glob};
use crate::sdk::current_execution;

/// The files of an asset to persist (start from [`Asset::file`], [`Asset::dir`],
/// [`Asset::matching`] or [`Asset::builder`]), persisted by [`AssetBuilder::persist`].
///
/// Relative local paths are resolved against the base directory ([`AssetBuilder::at`], itself
/// relative to the execution's [`working_dir`](super::working_dir); by default the working
/// directory). With no file or entry given, every file under the base directory is taken.
/// [`AssetBuilder::matching`] keeps only the files whose path inside the asset matches.
#[derive(Debug, Clone, Default)]
pub struct AssetBuilder {
    at: Option<PathBuf>,
    files: Vec<(Option<String>, PathBuf)>,
    entries: Vec<AssetEntry>,
    pattern: Option<String>,
    name: Option<String>,
    metadata: Map<String, Json>,
}

impl AssetBuilder {
    /// The base directory: relative local paths start there, and a file under it keeps its
    /// path relative to it inside the asset.
    pub fn at(mut self, dir: impl Into<PathBuf>) -> Self {
        self.at = Some(dir.into());
        self
    }

    /// Adds a local file; inside the asset it keeps its path relative to the base directory
    /// (or its file name, if it is outside).
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.push((None, path.into()));
        self
    }

    /// Adds local files (see [`AssetBuilder::file`]).
    pub fn files<P: Into<PathBuf>>(mut self, paths: impl IntoIterator<Item = P>) -> Self {
        self.files
            .extend(paths.into_iter().map(|p| (None, p.into())));
        self
    }

    /// Adds a local file at an explicit path inside the asset.
    pub fn file_as(mut self, path: impl Into<String>, local: impl Into<PathBuf>) -> Self {
        self.files.push((Some(path.into()), local.into()));
        self
    }

    /// Adds a file of another asset (its blob is reused, nothing is uploaded), at `path`.
    pub fn entry_as(mut self, path: impl Into<String>, entry: &AssetEntry) -> Self {
        self.entries.push(AssetEntry {
            path: path.into(),
            ..entry.clone()
        });
        self
    }

    /// Keeps only the files whose path inside the asset matches `pattern` (Python's `fnmatch`
    /// rules, see [`super::glob_matches`]: `*` also matches `/`).
    pub fn matching(mut self, pattern: impl Into<String>) -> Self {
        self.pattern = Some(pattern.into());
        self
    }

    /// Names the asset.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds `key: value` to the metadata of every local file persisted (next to its media
    /// `type`).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<Json>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Stores the files and records the asset (in the current execution's asset store).
    pub async fn persist(self) -> Result<Asset, AssetError> {
        let host = current_host().ok_or(AssetError::NoStore)?;
        let working_dir = super::working_dir();
        let request = tokio::task::spawn_blocking(move || self.request(&working_dir))
            .await
            .map_err(|e| AssetError::Unavailable(e.to_string()))??;
        host.persist(current_execution(), request).await
    }

    /// What to persist: the files found, checked.
    pub(crate) fn request(self, working_dir: &Path) -> Result<PersistRequest, AssetError> {
        let base = match &self.at {
            Some(at) => working_dir.join(at),
            None => working_dir.to_path_buf(),
        };
        let keep = |path: &str| self.pattern.as_ref().is_none_or(|p| glob::matches(p, path));
        let mut files = Vec::new();
        if self.files.is_empty() && self.entries.is_empty() {
            for source in walk(&base)? {
                let path = asset_path(source.strip_prefix(&base).unwrap_or(&source))?;
                if keep(&path) {
                    files.push((path, source));
                }
            }
        }
        for (path, local) in &self.files {
            let source = base.join(local);
            if !std::fs::metadata(&source).is_ok_and(|m| m.is_file()) {
                return Err(AssetError::NotAFile(source));
            }
            let path = match (path, source.strip_prefix(&base)) {
                (Some(path), _) => path.clone(),
                (None, Ok(relative)) => asset_path(relative)?,
                (None, Err(_)) => asset_path(Path::new(source.file_name().unwrap_or_default()))?,
            };
            if keep(&path) {
                files.push((path, source));
            }
        }
        let entries: Vec<AssetEntry> = self.entries.into_iter().filter(|e| keep(&e.path)).collect();
        let mut seen = BTreeSet::new();
        for path in files
            .iter()
            .map(|(p, _)| p)
            .chain(entries.iter().map(|e| &e.path))
        {
            if !seen.insert(path.as_str()) {
                return Err(AssetError::Clash(format!(
                    "asset path {path:?} is given twice"
                )));
            }
        }
        AssetError::check_paths(seen)?;
        if files.is_empty() && entries.is_empty() {
            return Err(AssetError::Empty);
        }
        let files = files
            .into_iter()
            .map(|(path, source)| LocalFile {
                path,
                source,
                metadata: self.metadata.clone(),
            })
            .collect();
        Ok(PersistRequest {
            name: self.name,
            files,
            entries,
        })
    }
}

/// A relative local path as a path inside an asset (`/`-separated).
fn asset_path(relative: &Path) -> Result<String, AssetError> {
    let mut parts = Vec::new();
    for component in relative.components() {
        let part = match component {
            Component::Normal(part) => part.to_str(),
            Component::CurDir => Some("."),
            Component::ParentDir => Some(".."),
            Component::RootDir | Component::Prefix(_) => Some(""),
        };
        parts.push(part.ok_or_else(|| AssetError::InvalidPath {
            path: relative.to_string_lossy().into_owned(),
            reason: "is not valid UTF-8".into(),
        })?);
    }
    Ok(parts.join("/"))
}

/// The regular files under `dir`, sorted; symbolic links to files are followed, links to
/// directories are not (so a link cycle cannot make it loop).
fn walk(dir: &Path) -> Result<Vec<PathBuf>, AssetError> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(AssetError::io(&dir))? {
            let entry = entry.map_err(AssetError::io(&dir))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(AssetError::io(&path))?;
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file()
                || (kind.is_symlink() && std::fs::metadata(&path).is_ok_and(|m| m.is_file()))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

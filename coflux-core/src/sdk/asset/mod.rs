//! Assets: files persisted by one execution, passed by reference as an argument or result, and
//! restored by another (possibly on another agent, possibly in Python).
//!
//! ```ignore
//! use coflux_core::sdk::{Asset, Failure, task, working_dir};
//!
//! #[task]
//! async fn produce() -> Result<Asset, Failure> {
//!     std::fs::create_dir_all(working_dir().join("results/data"))?;
//!     std::fs::write(working_dir().join("results/data/one.csv"), "1,2\n")?;
//!     Ok(Asset::dir("results").matching("data/*.csv").name("csvs").persist().await?)
//! }
//!
//! #[task]
//! async fn consume(csvs: Asset) -> Result<usize, Failure> {
//!     let restored = csvs.restore().to("input").await?;     // entry path → local file
//!     Ok(restored.len())
//! }
//! ```
//!
//! Local paths are relative to the execution's [`working_dir`]; paths inside an asset are
//! relative, `/`-separated and checked ([`crate::model::asset`]), and a restore never writes
//! outside its directory. An [`Asset`] serializes as the asset reference the Python SDK uses
//! (`["asset", id, name, count, size]`), so assets pass between the two SDKs.
//!
//! Where the files go depends on the host, reached through an [`AssetHost`]: under
//! `coflux-agent`, the executor asks the agent (`persist_asset`, `get_asset`, `download_blob`
//! requests, as the Python adapter does), which keeps them in the server's blob store; embedded,
//! they are kept under the data directory (`Project::assets`).

mod builder;
mod error;
mod glob;
mod restore;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value as Json};
use tokio::sync::OnceCell;

pub use builder::AssetBuilder;
pub use error::AssetError;
pub use glob::matches as glob_matches;
pub use restore::Restore;

use super::refs::{self, MARKER};
use super::{Context, current_execution};
use crate::model::{ExecutionId, Reference};

/// One file of an asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetEntry {
    /// Its path inside the asset (relative, `/`-separated).
    pub path: String,
    /// The content-addressed blob holding its bytes (SHA-256, hex).
    pub blob_key: String,
    /// Its size in bytes.
    pub size: u64,
    /// Free-form metadata, e.g. `{"type": "text/csv"}`.
    #[serde(default)]
    pub metadata: Map<String, Json>,
}

/// A persisted set of files, by reference: pass it as an argument or return it, and restore
/// it elsewhere. Its entries are fetched from the store once, when first needed.
#[derive(Clone)]
pub struct Asset {
    id: String,
    name: Option<String>,
    count: Option<u64>,
    size: Option<u64>,
    entries: Arc<OnceCell<Vec<AssetEntry>>>,
}

impl Asset {
    /// The asset with id `id` (e.g. one made elsewhere, whose id was passed as text).
    pub fn from_id(id: impl Into<String>) -> Result<Self, AssetError> {
        let id = id.into();
        if !crate::model::asset::valid_id(&id) {
            return Err(AssetError::InvalidId(id));
        }
        Ok(Self::described(id, None, None, None))
    }

    /// An asset with what its reference says about it (for [`AssetHost`] implementations).
    pub fn described(
        id: String,
        name: Option<String>,
        count: Option<u64>,
        size: Option<u64>,
    ) -> Self {
        Self {
            id,
            name,
            count,
            size,
            entries: Arc::default(),
        }
    }

    /// Files to persist: build with [`AssetBuilder`]'s methods, then call
    /// [`AssetBuilder::persist`].
    pub fn builder() -> AssetBuilder {
        AssetBuilder::default()
    }

    /// One file (or more, adding [`AssetBuilder::file`]), relative to the working directory;
    /// inside the asset it keeps its path relative to that directory (or its name, if it is
    /// elsewhere).
    pub fn file(path: impl Into<PathBuf>) -> AssetBuilder {
        AssetBuilder::default().file(path)
    }

    /// Every file under a directory (relative to the working directory), at its path relative
    /// to it; narrow it with [`AssetBuilder::matching`].
    pub fn dir(path: impl Into<PathBuf>) -> AssetBuilder {
        AssetBuilder::default().at(path)
    }

    /// The files under the working directory whose relative path matches `pattern`
    /// (Python's `fnmatch` rules: see [`glob_matches`]).
    pub fn matching(pattern: impl Into<String>) -> AssetBuilder {
        AssetBuilder::default().matching(pattern)
    }

    /// Its id (`A` and 16 hex digits, derived from its content).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its name, if it was given one (and the reference says so).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// How many files it holds, if the reference says so.
    pub fn count(&self) -> Option<u64> {
        self.count
    }

    /// Their total size in bytes, if the reference says so.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// Its files, sorted by path.
    pub async fn entries(&self) -> Result<Vec<AssetEntry>, AssetError> {
        let entries = self
            .entries
            .get_or_try_init(|| async {
                let host = current_host().ok_or(AssetError::NoStore)?;
                let mut entries = host.entries(current_execution(), self.id.clone()).await?;
                entries.sort_by(|a, b| a.path.cmp(&b.path));
                Ok::<_, AssetError>(entries)
            })
            .await?;
        Ok(entries.clone())
    }

    /// The file at `path`, if the asset has one.
    pub async fn entry(&self, path: &str) -> Result<Option<AssetEntry>, AssetError> {
        Ok(self.entries().await?.into_iter().find(|e| e.path == path))
    }

    /// Restores its files into the working directory: `asset.restore().await?`; narrow it with
    /// [`Restore::matching`] or [`Restore::paths`], choose the directory with [`Restore::to`].
    /// Gives each restored entry's local path.
    pub fn restore(&self) -> Restore<'_> {
        Restore::new(self)
    }

    fn reference(&self) -> Reference {
        Reference::Asset {
            id: self.id.clone(),
            name: self.name.clone(),
            count: self.count,
            size: self.size,
        }
    }
}

impl std::fmt::Debug for Asset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Asset")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("count", &self.count)
            .field("size", &self.size)
            .finish()
    }
}

impl PartialEq for Asset {
    fn eq(&self, other: &Self) -> bool {
        (&self.id, &self.name, self.count, self.size)
            == (&other.id, &other.name, other.count, other.size)
    }
}

/// The form an asset takes outside an encoded argument or result.
#[derive(Serialize, Deserialize)]
struct Plain {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    size: Option<u64>,
}

impl Serialize for Asset {
    /// An asset reference (`{"type":"ref","index":i}`) within an argument or result being
    /// encoded; elsewhere `{"id", "name", "count", "size"}`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match refs::push_reference(self.reference()) {
            Some(index) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry(MARKER, &index)?;
                map.end()
            }
            None => Plain {
                id: self.id.clone(),
                name: self.name.clone(),
                count: self.count,
                size: self.size,
            }
            .serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Asset {
    /// From an asset reference, `{"id", ...}`, or an id as text.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let json = Json::deserialize(deserializer)?;
        let (id, name, count, size) = match json {
            Json::String(id) => (id, None, None, None),
            Json::Object(map) if map.get("type").and_then(Json::as_str) == Some("ref") => {
                let index = map
                    .get("index")
                    .and_then(Json::as_u64)
                    .ok_or_else(|| D::Error::custom("a reference without its index"))?;
                match refs::reference_at(index as usize).map_err(D::Error::custom)? {
                    Reference::Asset {
                        id,
                        name,
                        count,
                        size,
                    } => (id, name, count, size),
                    other => {
                        return Err(D::Error::custom(format!("not an asset: {other:?}")));
                    }
                }
            }
            other => {
                let plain: Plain = serde_json::from_value(other).map_err(D::Error::custom)?;
                (plain.id, plain.name, plain.count, plain.size)
            }
        };
        if !crate::model::asset::valid_id(&id) {
            return Err(D::Error::custom(AssetError::InvalidId(id)));
        }
        Ok(Self::described(id, name, count, size))
    }
}

/// A file to persist: where it is, where it goes in the asset, extra metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalFile {
    /// Its path inside the asset (checked already).
    pub path: String,
    /// The local file (absolute).
    pub source: PathBuf,
    /// Metadata to add to the automatic `{"type": media type}`.
    pub metadata: Map<String, Json>,
}

/// What [`AssetHost::persist`] stores.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PersistRequest {
    /// The asset's name.
    pub name: Option<String>,
    /// Local files to store.
    pub files: Vec<LocalFile>,
    /// Entries whose blobs are stored already (taken from other assets).
    pub entries: Vec<AssetEntry>,
}

/// Where assets are kept: the agent (under `coflux-agent`), the embedded data directory, or
/// anything else implementing it. `execution` is the calling execution, if any.
pub trait AssetHost: Send + Sync + 'static {
    /// Stores the files as blobs and records the asset; gives it (with its name, count and
    /// size).
    fn persist(
        &self,
        execution: Option<ExecutionId>,
        request: PersistRequest,
    ) -> BoxFuture<'static, Result<Asset, AssetError>>;

    /// The entries of asset `id`.
    fn entries(
        &self,
        execution: Option<ExecutionId>,
        id: String,
    ) -> BoxFuture<'static, Result<Vec<AssetEntry>, AssetError>>;

    /// Writes the blob of `entry` to `target` (an absolute path whose directory exists, already
    /// checked to be inside the restore directory), replacing it atomically.
    fn fetch(
        &self,
        execution: Option<ExecutionId>,
        entry: AssetEntry,
        target: PathBuf,
    ) -> BoxFuture<'static, Result<(), AssetError>>;
}

tokio::task_local! {
    static HOST: Arc<dyn AssetHost>;
}

/// Runs `future` with `host` as its asset store (unless an inner scope sets another). The
/// executor and the embedded worker do this for every execution; call it yourself to use
/// assets outside an execution, e.g. `with_assets(Arc::new(project.assets()), async { .. })`.
pub async fn with_assets<F: Future>(host: Arc<dyn AssetHost>, future: F) -> F::Output {
    HOST.scope(host, future).await
}

/// The asset store of the running task, if any.
pub fn current_host() -> Option<Arc<dyn AssetHost>> {
    HOST.try_with(Arc::clone).ok()
}

/// The running execution's working directory: the one the agent gives it under
/// `coflux-agent` (created on the first call: a Rust executor serves many executions, so it
/// does not change the process's current directory; write files under this path), otherwise
/// the current directory.
pub fn working_dir() -> PathBuf {
    match Context::current().and_then(|c| c.working_dir().map(PathBuf::from)) {
        Some(dir) => {
            if let Err(e) = std::fs::create_dir_all(&dir) {
                tracing::warn!(path = %dir.display(), error = %e, "could not create the working directory");
            }
            dir
        }
        None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    }
}

pub use crate::model::asset::media_type;

/// The metadata of a persisted file: its media type, then `extra`.
pub fn entry_metadata(path: &str, extra: &Map<String, Json>) -> Map<String, Json> {
    let mut metadata = Map::new();
    if let Some(media) = media_type(path) {
        metadata.insert("type".into(), Json::String(media.into()));
    }
    metadata.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    metadata
}

#[cfg(test)]
mod tests;

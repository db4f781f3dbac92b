//! Assets of an embedded project, kept under its data directory as the server keeps them:
//! blobs in `<data_dir>/blobs/<project>/<key[0..2]>/<key>` (content-addressed, SHA-256) and
//! records in `<data_dir>/assets/<project>/<id>.json`, the id being `A` and 16 hex digits of
//! the SHA-256 of the record's canonical JSON. Every write is atomic (temporary file, sync,
//! rename). A project's worker ([`Project::serve`]) gives its executions this store.

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::blob_files;
use super::project::Project;
use crate::model::ExecutionId;
use crate::model::asset::{AssetEntry as RecordEntry, AssetRecord, valid_id};
use crate::sdk::asset::{PersistRequest, entry_metadata};
use crate::sdk::{Asset, AssetEntry, AssetError, AssetHost};
use crate::store::blobs::{BlobBackend, LocalBlobs};

/// The asset store of an embedded project (see the module docs). It implements [`AssetHost`];
/// outside an execution, use it with [`crate::sdk::with_assets`].
#[derive(Debug, Clone)]
pub struct EmbeddedAssets {
    blobs: LocalBlobs,
    records: PathBuf,
}

impl Project {
    /// The project's asset store.
    pub fn assets(&self) -> EmbeddedAssets {
        // The database is `<data_dir>/projects/<name>/project.sqlite`.
        let data_dir = self
            .handle()
            .db_path
            .ancestors()
            .nth(3)
            .map(PathBuf::from)
            .unwrap_or_default();
        EmbeddedAssets::new(data_dir, self.name())
    }
}

impl EmbeddedAssets {
    /// The store of project `project` under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>, project: &str) -> Self {
        let data_dir = data_dir.into();
        Self {
            blobs: LocalBlobs::new(data_dir.join("blobs").join(project)),
            records: data_dir.join("assets").join(project),
        }
    }

    /// Stores the files and the record (blocking).
    fn persist_now(&self, request: PersistRequest) -> Result<Asset, AssetError> {
        let paths = request.files.iter().map(|f| f.path.as_str());
        AssetError::check_paths(paths.chain(request.entries.iter().map(|e| e.path.as_str())))?;
        let mut entries = BTreeMap::new();
        for given in request.entries {
            match self.blobs.size(&given.blob_key)? {
                Some(size) if size == given.size => {}
                _ => return Err(AssetError::BlobMissing(given.blob_key)),
            }
            let entry = RecordEntry {
                blob_key: given.blob_key,
                size: given.size,
                metadata: given.metadata,
            };
            entries.insert(given.path, entry);
        }
        for file in request.files {
            let (blob_key, size) = blob_files::store(&self.blobs, &file.source)?;
            let metadata = entry_metadata(&file.path, &file.metadata);
            let entry = RecordEntry {
                blob_key,
                size,
                metadata,
            };
            entries.insert(file.path, entry);
        }
        if entries.is_empty() {
            return Err(AssetError::Empty);
        }
        let record = AssetRecord {
            name: request.name,
            entries,
        };
        let content = record.canonical();
        let id = record.id();
        let file = self.records.join(format!("{id}.json"));
        match std::fs::read(&file) {
            Ok(existing) if existing == content => {}
            Ok(_) => {
                return Err(AssetError::Refused {
                    code: "asset_conflict".into(),
                    message: format!("another asset has the id {id}"),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                blob_files::write_atomic(&file, &content)?;
            }
            Err(e) => return Err(AssetError::io(file)(e)),
        }
        let size = record.size();
        let count = record.entries.len() as u64;
        Ok(Asset::described(id, record.name, Some(count), Some(size)))
    }

    /// The entries of asset `id` (blocking).
    fn entries_now(&self, id: &str) -> Result<Vec<AssetEntry>, AssetError> {
        if !valid_id(id) {
            return Err(AssetError::InvalidId(id.to_owned()));
        }
        let file = self.records.join(format!("{id}.json"));
        let content = match std::fs::read(&file) {
            Ok(content) => content,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AssetError::NotFound(id.to_owned()));
            }
            Err(e) => return Err(AssetError::io(file)(e)),
        };
        let record: AssetRecord = serde_json::from_slice(&content)
            .map_err(|e| AssetError::io(&file)(std::io::Error::other(e)))?;
        AssetError::check_paths(record.entries.keys().map(String::as_str))?;
        Ok(record
            .entries
            .into_iter()
            .map(|(path, e)| AssetEntry {
                path,
                blob_key: e.blob_key,
                size: e.size,
                metadata: e.metadata,
            })
            .collect())
    }

    /// Runs `work` on a blocking thread.
    fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(Self) -> Result<T, AssetError> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, AssetError>> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || work(store))
            .map(|joined| joined.map_err(|e| AssetError::Unavailable(e.to_string()))?)
            .boxed()
    }
}

impl AssetHost for EmbeddedAssets {
    fn persist(
        &self,
        _execution: Option<ExecutionId>,
        request: PersistRequest,
    ) -> BoxFuture<'static, Result<Asset, AssetError>> {
        self.blocking(move |store| store.persist_now(request))
    }

    fn entries(
        &self,
        _execution: Option<ExecutionId>,
        id: String,
    ) -> BoxFuture<'static, Result<Vec<AssetEntry>, AssetError>> {
        self.blocking(move |store| store.entries_now(&id))
    }

    fn fetch(
        &self,
        _execution: Option<ExecutionId>,
        entry: AssetEntry,
        target: PathBuf,
    ) -> BoxFuture<'static, Result<(), AssetError>> {
        self.blocking(move |store| blob_files::copy_out(&store.blobs, &entry.blob_key, &target))
    }
}

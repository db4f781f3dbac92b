//! Asset records as files `<dir>/<project>/<id>.json`, written atomically with core's
//! [`AtomicWrite`] (a temporary file starting with `.`, synced, then renamed).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::SystemTime;

use coflux_core::api::delete_unreferenced_asset_records;
use coflux_core::model::ProjectName;
use coflux_core::store::blobs::{AtomicWrite, BlobFileError};

use super::AssetStoreError;

/// The records under one directory.
pub struct FileAssets {
    dir: PathBuf,
}

impl FileAssets {
    pub(super) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn project_dir(&self, project: &ProjectName) -> PathBuf {
        self.dir.join(project.as_str())
    }

    pub(super) fn put(
        &self,
        project: &ProjectName,
        id: &str,
        content: &[u8],
    ) -> Result<(), AssetStoreError> {
        let dir = self.project_dir(project);
        let target = dir.join(format!("{id}.json"));
        match std::fs::read(&target) {
            Ok(existing) if existing == content => return Ok(()),
            Ok(_) => return Err(AssetStoreError::Conflict),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let mut write = AtomicWrite::create_in(&dir).map_err(io)?;
        write.write(content).map_err(io)?;
        write.persist(&target, None).map_err(io)?;
        Ok(())
    }

    pub(super) fn get(
        &self,
        project: &ProjectName,
        id: &str,
    ) -> Result<Option<Vec<u8>>, AssetStoreError> {
        match std::fs::read(self.project_dir(project).join(format!("{id}.json"))) {
            Ok(content) => Ok(Some(content)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Calls `f` with the id and content of each record (temporary files are records being
    /// written, whose blobs were just checked: skipped).
    pub(super) fn for_each(
        &self,
        project: &ProjectName,
        f: &mut super::EachRecord<'_>,
    ) -> Result<(), AssetStoreError> {
        self.each_file(project, &mut |id, path| f(id, &std::fs::read(path)?))
    }

    pub(super) fn delete_unreferenced(
        &self,
        project: &ProjectName,
        referenced: &HashSet<String>,
        cutoff: SystemTime,
    ) -> Result<usize, AssetStoreError> {
        let directory = self.project_dir(project);
        Ok(delete_unreferenced_asset_records(
            &directory, referenced, cutoff,
        )?)
    }

    fn each_file(
        &self,
        project: &ProjectName,
        f: &mut dyn FnMut(&str, &std::path::Path) -> Result<(), AssetStoreError>,
    ) -> Result<(), AssetStoreError> {
        let entries = match std::fs::read_dir(self.project_dir(project)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            if let Some(id) = name.strip_suffix(".json") {
                f(id, &entry.path())?;
            }
        }
        Ok(())
    }
}

/// A failed write as the asset store reports it (unchecked writes cannot mismatch).
fn io(error: BlobFileError) -> AssetStoreError {
    match error {
        BlobFileError::Io { source, .. } => AssetStoreError::Io(source),
        mismatch @ BlobFileError::Mismatch { .. } => {
            AssetStoreError::Io(std::io::Error::other(mismatch.to_string()))
        }
    }
}

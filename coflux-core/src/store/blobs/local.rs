//! [`LocalBlobs`]: one project's blobs in a local directory, blob `key` at
//! `<root>/<key[0..2]>/<key>`. Uploads are [`AtomicWrite`]s in the root (a temporary file whose
//! name starts with `.`), renamed into their shard once committed.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{
    AtomicWrite, BlobBackend, BlobFileError, BlobUpload, StoredBlob, blob_path, io, shard_name,
    valid_key,
};

/// One project's blobs under a directory (embedded: `<data_dir>/blobs/<project>`, as the
/// server keeps them). Cheap to clone.
#[derive(Debug, Clone)]
pub struct LocalBlobs {
    root: PathBuf,
}

impl LocalBlobs {
    /// The blobs under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Where blob `key` is (or would be) kept; `None` for a key that is not valid.
    pub fn path(&self, key: &str) -> Option<PathBuf> {
        valid_key(key).then(|| blob_path(&self.root, key))
    }
}

/// A blob being stored in a [`LocalBlobs`].
#[derive(Debug)]
pub struct LocalUpload {
    write: AtomicWrite,
    root: PathBuf,
}

impl LocalUpload {
    /// Appends everything read from `input` (`source` names it in errors).
    pub fn copy_from(&mut self, input: &mut impl Read, source: &Path) -> Result<(), BlobFileError> {
        self.write.copy_from(input, source)
    }
}

impl BlobUpload for LocalUpload {
    fn write(&mut self, data: &[u8]) -> Result<(), BlobFileError> {
        self.write.write(data)
    }

    fn size(&self) -> u64 {
        self.write.size()
    }

    fn commit(self, expected: Option<&str>) -> Result<(String, u64), BlobFileError> {
        self.write.persist_blob(&self.root, expected)
    }
}

impl BlobBackend for LocalBlobs {
    type Reader = File;
    type Upload = LocalUpload;

    fn size(&self, key: &str) -> Result<Option<u64>, BlobFileError> {
        let Some(path) = self.path(key) else {
            return Ok(None);
        };
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn open(&self, key: &str) -> Result<Option<(File, u64)>, BlobFileError> {
        let Some(path) = self.path(key) else {
            return Ok(None);
        };
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let size = file.metadata().map_err(io(&path))?.len();
        Ok(Some((file, size)))
    }

    fn upload(&self) -> Result<LocalUpload, BlobFileError> {
        Ok(LocalUpload {
            write: AtomicWrite::create_in(&self.root)?,
            root: self.root.clone(),
        })
    }

    fn list(&self) -> Result<Vec<StoredBlob>, BlobFileError> {
        list_directory(&self.root)
    }

    fn delete(&self, key: &str) -> Result<(), BlobFileError> {
        let Some(path) = self.path(key) else {
            return Ok(());
        };
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path)(e)),
        }
    }
}

/// The blobs under `root`, laid out as [`blob_path`]; anything else (uploads in progress,
/// misplaced names) is skipped, and so is a file deleted while the listing runs.
fn list_directory(root: &Path) -> Result<Vec<StoredBlob>, BlobFileError> {
    let shards = match std::fs::read_dir(root) {
        Ok(shards) => shards,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(root)(e)),
    };
    let mut blobs = Vec::new();
    for shard in shards {
        let shard = shard.map_err(io(root))?;
        let Some(prefix) = shard.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !shard.file_type().map_err(io(&shard.path()))?.is_dir() {
            continue;
        }
        let directory = shard.path();
        for entry in std::fs::read_dir(&directory).map_err(io(&directory))? {
            let entry = entry.map_err(io(&directory))?;
            let Some(key) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !valid_key(&key) || shard_name(&key) != prefix {
                continue;
            }
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&entry.path())(e)),
            };
            if meta.is_file() {
                let modified = meta.modified().map_err(io(&entry.path()))?;
                blobs.push(StoredBlob {
                    key,
                    size: meta.len(),
                    modified,
                });
            }
        }
    }
    Ok(blobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_backend_stores_lists_and_deletes_verified_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = LocalBlobs::new(dir.path().join("p"));
        let mut upload = blobs.upload().unwrap();
        upload.write(b"hel").unwrap();
        upload.write(b"lo").unwrap();
        assert_eq!(upload.size(), 5);
        let (key, size) = upload.commit(None).unwrap();
        assert_eq!(size, 5);
        assert_eq!(blobs.size(&key).unwrap(), Some(5));
        let (mut reader, size) = blobs.open(&key).unwrap().unwrap();
        let mut content = String::new();
        reader.read_to_string(&mut content).unwrap();
        assert_eq!((content.as_str(), size), ("hello", 5));

        // A mismatching upload, an abandoned one and a stray file are not listed.
        let mut upload = blobs.upload().unwrap();
        upload.write(b"other").unwrap();
        assert!(matches!(
            upload.commit(Some(&key)),
            Err(BlobFileError::Mismatch { .. })
        ));
        let mut abandoned = blobs.upload().unwrap();
        abandoned.write(b"half").unwrap();
        std::fs::write(dir.path().join("p").join("2c").join("stray"), "x").unwrap();
        let listed = blobs.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].key.as_str(), listed[0].size), (key.as_str(), 5));
        drop(abandoned);

        // Bad keys never reach the filesystem; deleting twice is fine.
        for bad in ["../../etc/passwd", "ab", &key.to_uppercase()] {
            assert_eq!(blobs.size(bad).unwrap(), None);
            assert!(blobs.open(bad).unwrap().is_none());
            blobs.delete(bad).unwrap();
        }
        blobs.delete(&key).unwrap();
        blobs.delete(&key).unwrap();
        assert_eq!(blobs.size(&key).unwrap(), None);
        assert!(blobs.list().unwrap().is_empty());
    }
}

//! Embedded assets' blobs: a [`LocalBlobs`] (the layout of [`crate::store::blobs`], shared with
//! the server's local backend); restored files and records are written atomically. Blocking:
//! call from a blocking thread.

use std::fs::File;
use std::path::Path;

use crate::sdk::AssetError;
use crate::store::blobs::{AtomicWrite, BlobBackend, BlobFileError, BlobUpload, LocalBlobs};

impl From<BlobFileError> for AssetError {
    fn from(error: BlobFileError) -> Self {
        match error {
            BlobFileError::Io { path, source } => AssetError::Io { path, source },
            // Only a checked write can mismatch; `copy_out` names the blob instead.
            BlobFileError::Mismatch { .. } => AssetError::Io {
                path: Path::new(".").to_owned(),
                source: std::io::Error::other(error.to_string()),
            },
        }
    }
}

/// Stores the file at `source` as a blob; gives its key and size.
pub(crate) fn store(blobs: &LocalBlobs, source: &Path) -> Result<(String, u64), AssetError> {
    let mut input = File::open(source).map_err(AssetError::io(source))?;
    let mut upload = blobs.upload()?;
    upload.copy_from(&mut input, source)?;
    Ok(upload.commit(None)?)
}

/// Copies blob `key` to `target` (replacing it atomically), checking its content against the
/// key.
pub(crate) fn copy_out(blobs: &LocalBlobs, key: &str, target: &Path) -> Result<(), AssetError> {
    let Some((mut input, _)) = blobs.open(key)? else {
        return Err(AssetError::BlobMissing(key.to_owned()));
    };
    let path = blobs.path(key).unwrap_or_default();
    let mut write = AtomicWrite::create_in(target.parent().unwrap_or(Path::new(".")))?;
    write.copy_from(&mut input, &path)?;
    match write.persist(target, Some(key)) {
        Ok(_) => Ok(()),
        Err(BlobFileError::Mismatch { .. }) => Err(AssetError::Io {
            path,
            source: std::io::Error::other("the blob's content does not match its key"),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Writes `data` to `target` atomically (a temporary file in its directory, synced, renamed).
pub(crate) fn write_atomic(target: &Path, data: &[u8]) -> Result<(), AssetError> {
    let mut write = AtomicWrite::create_in(target.parent().unwrap_or(Path::new(".")))?;
    write.write(data)?;
    write.persist(target, None)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_content_addressed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("a.txt");
        std::fs::write(&source, "hello").unwrap();
        let blobs = LocalBlobs::new(dir.path().join("blobs"));
        let (key, size) = store(&blobs, &source).unwrap();
        assert_eq!(
            key,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(size, 5);
        assert_eq!(store(&blobs, &source).unwrap().0, key);
        assert_eq!(size_of(&blobs, &key), Some(5));

        let out = dir.path().join("out.txt");
        copy_out(&blobs, &key, &out).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "hello");

        // A corrupted blob is not restored; bad keys never reach the filesystem.
        std::fs::write(blobs.path(&key).unwrap(), "bye").unwrap();
        assert!(copy_out(&blobs, &key, &dir.path().join("bad.txt")).is_err());
        assert!(!dir.path().join("bad.txt").exists());
        for bad in ["../../etc/passwd", "%2e%2e", "ab", &key.to_uppercase()] {
            assert!(matches!(
                copy_out(&blobs, bad, &out),
                Err(AssetError::BlobMissing(_))
            ));
            assert_eq!(size_of(&blobs, bad), None);
        }
        // No temporary file is left behind.
        let leftovers = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".coflux-tmp")
            })
            .count();
        assert_eq!(leftovers, 0);
    }

    fn size_of(blobs: &LocalBlobs, key: &str) -> Option<u64> {
        blobs.size(key).unwrap()
    }
}

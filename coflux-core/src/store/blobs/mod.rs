//! Content-addressed blobs, as embedded assets and the server keep them: blob `key` is the
//! SHA-256 of its content (64 lower-case hex digits), checked ([`valid_key`]) before any path or
//! name is built from it.
//!
//! - [`BlobBackend`]: what a blob backend does (size, open, upload, list, delete), blocking;
//! - [`LocalBlobs`]: the local backend, one directory per project, blob `key` kept at
//!   `<root>/<key[0..2]>/<key>` ([`blob_path`]);
//! - [`AtomicWrite`]: a file written to a temporary file, hashed, synced, checked and only then
//!   renamed into place (the local backend's uploads, restored asset files, asset records).
//!
//! The server keeps its S3 backend (async) and drives [`LocalBlobs`] on blocking threads.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

mod atomic;
mod local;

pub use atomic::AtomicWrite;
pub use local::{LocalBlobs, LocalUpload};

/// Why a blob operation or an atomic write failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobFileError {
    /// The content's SHA-256 differs from the expected key.
    #[error("blob content does not match its key (sha256 {actual})")]
    Mismatch {
        /// The SHA-256 of the content written.
        actual: String,
    },
    /// The filesystem failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BlobFileError + '_ {
    move |source| BlobFileError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A stored blob, as listed for garbage collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// Its key (a valid one).
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub modified: SystemTime,
}

/// A blob backend holding one project's blobs. Blocking: call from a blocking thread. A key
/// that is not valid names no blob (absent, nothing to delete).
pub trait BlobBackend: Send + Sync {
    /// An open blob's content.
    type Reader: Read + Send + 'static;
    /// A blob being stored.
    type Upload: BlobUpload;

    /// The size of blob `key`, if it is stored.
    fn size(&self, key: &str) -> Result<Option<u64>, BlobFileError>;

    /// Opens blob `key`, if it is stored: its content and size.
    fn open(&self, key: &str) -> Result<Option<(Self::Reader, u64)>, BlobFileError>;

    /// Starts storing a blob: write its content to the upload, then commit it.
    fn upload(&self) -> Result<Self::Upload, BlobFileError>;

    /// Every blob stored, with its size and last write time, in no particular order (anything
    /// else in the storage, such as uploads in progress, is left out).
    fn list(&self) -> Result<Vec<StoredBlob>, BlobFileError>;

    /// Deletes blob `key`; one that is not there is no error.
    fn delete(&self, key: &str) -> Result<(), BlobFileError>;
}

/// A blob being stored ([`BlobBackend::upload`]); dropped uncommitted, it leaves nothing.
pub trait BlobUpload: Send + 'static {
    /// Appends `data`.
    fn write(&mut self, data: &[u8]) -> Result<(), BlobFileError>;

    /// The bytes written so far.
    fn size(&self) -> u64;

    /// Makes the blob visible at its key, unless its content does not match `expected` (when
    /// given); gives the key and size.
    fn commit(self, expected: Option<&str>) -> Result<(String, u64), BlobFileError>;
}

/// Whether `key` is a blob key: exactly 64 lower-case hex digits (so no `..`, separator, NUL).
pub fn valid_key(key: &str) -> bool {
    key.len() == 64
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The shard directory of blob `key` under `root` (the key must be valid).
pub fn shard_dir(root: &Path, key: &str) -> PathBuf {
    debug_assert!(valid_key(key), "blob key checked before building a path");
    root.join(shard_name(key))
}

/// The name of blob `key`'s shard directory: its first two digits.
pub fn shard_name(key: &str) -> &str {
    &key[..2]
}

/// Where blob `key` is kept under `root` (the key must be valid).
pub fn blob_path(root: &Path, key: &str) -> PathBuf {
    shard_dir(root, key).join(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn keys_are_strict_and_laid_out_in_shards() {
        assert!(valid_key(HELLO));
        for bad in [
            "",
            "..",
            "../../etc/passwd",
            "%2e%2e",
            &HELLO.to_uppercase(),
        ] {
            assert!(!valid_key(bad), "{bad:?}");
        }
        assert!(!valid_key(&format!("{}/", &HELLO[..63])));
        assert_eq!(
            blob_path(Path::new("/r"), HELLO),
            Path::new("/r").join("2c").join(HELLO)
        );
    }
}

//! What every blob backend shares: the validated [`BlobKey`], a listed [`BlobEntry`], an open
//! [`BlobReader`] and [`BlobError`].

use std::fmt;
use std::time::SystemTime;

use bytes::Bytes;
use coflux_core::store::blobs::{self, BlobFileError};
use futures::stream::BoxStream;
use sha2::{Digest, Sha256};

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The key is not 64 lower-case hexadecimal characters.
    #[error("invalid blob key")]
    InvalidKey,
    /// The content's SHA-256 differs from the key.
    #[error("blob content does not match its key (sha256 {actual})")]
    Mismatch {
        /// The SHA-256 of what was received.
        actual: String,
    },
    /// The content is larger than the limit.
    #[error("blob larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The upload stream failed.
    #[error("reading the upload failed: {0}")]
    Payload(String),
    /// The filesystem failed.
    #[error("blob storage failed: {0}")]
    Io(#[from] std::io::Error),
}

impl From<BlobFileError> for BlobError {
    fn from(error: BlobFileError) -> Self {
        match error {
            BlobFileError::Mismatch { actual } => Self::Mismatch { actual },
            // The path stays out of the error (it may reach a response).
            BlobFileError::Io { source, .. } => Self::Io(source),
        }
    }
}

/// A validated blob key: exactly 64 lower-case hexadecimal characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobKey(String);

impl BlobKey {
    /// Validates a key (see [`blobs::valid_key`]): no `..`, separators, NUL or upper case.
    pub fn parse(key: &str) -> Result<Self, BlobError> {
        if blobs::valid_key(key) {
            Ok(Self(key.to_owned()))
        } else {
            Err(BlobError::InvalidKey)
        }
    }

    /// The key of some content (its SHA-256).
    pub fn of(content: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(content)))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
/// A stored blob, as listed for garbage collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobEntry {
    /// Its key.
    pub key: BlobKey,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written (the file's mtime; the object's `LastModified` on S3).
    pub modified: SystemTime,
}

/// An open blob: its size and its content as a stream of chunks.
pub struct BlobReader {
    /// The blob's size in bytes.
    pub size: u64,
    /// The content, in chunks.
    pub stream: BoxStream<'static, Result<Bytes, std::io::Error>>,
}

impl fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobReader")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

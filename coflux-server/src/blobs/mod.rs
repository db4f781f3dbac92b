//! Blob storage: content-addressed blobs per project ([`BlobStore`]), in a local directory
//! (core's `store::blobs::LocalBlobs`, driven on blocking threads) or an S3-compatible bucket;
//! the routes that serve them are in `http::blobs`.

mod key;
mod local;
mod s3;
mod shared_usage;
mod store;
mod usage;

pub use key::{BlobEntry, BlobError, BlobKey, BlobReader};
pub use local::LocalDir;
pub use s3::{PART_SIZE, S3Blobs};
pub use shared_usage::SWEEP_LOCK;
pub use store::{BlobStore, DEFAULT_MAX_BLOB_SIZE, Deletion};
pub use usage::Sweep;

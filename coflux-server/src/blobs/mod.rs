//! Blob storage: content-addressed blobs per project, in a local directory or an S3-compatible
//! bucket ([`BlobStore`]); the routes that serve them are in `http::blobs`.

mod key;
mod local;
mod s3;
mod shared_usage;
mod store;
mod usage;

pub use key::{BlobEntry, BlobError, BlobKey, BlobReader};
pub use local::{LocalBlobs, file_stream};
pub use s3::{PART_SIZE, S3Blobs};
pub use shared_usage::SWEEP_LOCK;
pub use store::{BlobStore, DEFAULT_MAX_BLOB_SIZE, Deletion};
pub use usage::Sweep;

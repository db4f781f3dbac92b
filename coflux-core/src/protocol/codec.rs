//! The one codec for agent ⇄ server frames: bincode 2 (serde, standard configuration) with a
//! size limit on decode. Swapping the format means changing this file only.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest frame either side accepts (16 MiB). Larger values travel as blobs.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Why a frame could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The frame is larger than [`MAX_FRAME_BYTES`].
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_BYTES} bytes")]
    TooLarge(usize),
    /// The bytes are not a valid frame.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The value could not be encoded.
    #[error("cannot encode frame: {0}")]
    Encode(String),
}

impl CodecError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "frame_too_large",
            Self::Malformed(_) => "malformed_frame",
            Self::Encode(_) => "encode_failed",
        }
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME_BYTES>()
}

/// Encodes a frame.
pub fn encode<T: Serialize>(frame: &T) -> Result<Vec<u8>, CodecError> {
    let bytes = bincode::serde::encode_to_vec(frame, config())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(CodecError::TooLarge(bytes.len()));
    }
    Ok(bytes)
}

/// Decodes a frame, rejecting oversized input and trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(CodecError::TooLarge(bytes.len()));
    }
    let (frame, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::Malformed(format!(
            "{} trailing bytes",
            bytes.len() - used
        )));
    }
    Ok(frame)
}

/// The protocol version a hello claims, read from its first fields only: an agent of another
/// version may send a hello this version cannot decode, and still deserves to hear that its
/// version is the problem. `None` when `bytes` does not start like a hello.
pub fn hello_version(bytes: &[u8]) -> Option<u32> {
    // A hello is the first variant of the agent's frames, and its version its first field.
    let ((variant, version), _): ((u32, u32), usize) =
        bincode::serde::decode_from_slice(bytes, config()).ok()?;
    (variant == 0).then_some(version)
}

//! Errors of the local image store: which path or image, what went wrong,
//! what to do next.

use std::io;
use std::path::PathBuf;

use crate::image::unpack::UnpackError;
use crate::oci::reference::ReferenceError;
use crate::oci::types::Digest;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("image store: cannot {op} {path:?}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "image store: no home directory: set FERRY_DATA_ROOT (or HOME) to choose where images are kept"
    )]
    NoHome,
    #[error(
        "blob digest mismatch: expected {expected}, got {actual} ({size} bytes); the content was discarded, nothing was recorded"
    )]
    DigestMismatch {
        expected: Digest,
        actual: Digest,
        size: u64,
    },
    #[error(
        "blob {digest}: expected {expected} bytes, got {actual}; the content was discarded, nothing was recorded"
    )]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("blob {digest} is larger than {max} bytes, refusing to read it into memory")]
    TooLarge { digest: Digest, max: u64 },
    #[error(
        "image `{reference}` is not in the local store {root:?}: pull or load it first (`ferry images` lists what is there)"
    )]
    NotFound { reference: String, root: PathBuf },
    #[error(
        "`{reference}` matches several images ({candidates}); give more of the digest or the full name"
    )]
    Ambiguous {
        reference: String,
        candidates: String,
    },
    #[error(
        "image `{reference}` is incomplete in the store: blob {digest} ({what}) is missing; pull it again"
    )]
    BlobMissing {
        reference: String,
        digest: Digest,
        what: &'static str,
    },
    #[error("image store: {what} {digest} is not valid JSON for its media type: {reason}")]
    Corrupt {
        what: &'static str,
        digest: String,
        reason: String,
    },
    #[error("image store: {path:?} is corrupt ({reason}); move it aside and re-pull the images")]
    CorruptIndex { path: PathBuf, reason: String },
    #[error(
        "image `{reference}` has no manifest for platform {platform} (available: {available}); pass --platform"
    )]
    NoPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error("image `{reference}`: unsupported media type `{media_type}`")]
    MediaType {
        reference: String,
        media_type: String,
    },
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("image `{reference}`: {source}")]
    Unpack {
        reference: String,
        #[source]
        source: Box<UnpackError>,
    },
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| StoreError::Io { op, path, source }
    }
}

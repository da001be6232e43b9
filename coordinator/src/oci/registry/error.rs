//! Errors talking to registries: which registry, which image or blob, what
//! to do next. Credentials never appear in these messages.

use std::path::PathBuf;

use crate::oci::store::StoreError;
use crate::oci::types::Digest;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "registry {registry} rejected the credentials of user `{user}`: check them with `ferry login {registry}`"
    )]
    BadCredentials { registry: String, user: String },
    #[error(
        "registry {registry} requires authentication for {reference}: run `ferry login {registry}` first"
    )]
    AuthRequired { registry: String, reference: String },
    #[error(
        "registry {registry} has no {reference} ({what}): check the repository and tag (`ferry images` lists local images)"
    )]
    NotFound {
        registry: String,
        reference: String,
        what: String,
    },
    #[error("registry {registry}: {op} {reference}: {message}")]
    Request {
        registry: String,
        op: &'static str,
        reference: String,
        message: String,
    },
    #[error(
        "registry {registry}: {what} {expected} of {reference} failed verification: the content hashes to {actual}; nothing was recorded (the registry's copy is corrupt or was tampered with)"
    )]
    DigestMismatch {
        registry: String,
        reference: String,
        what: &'static str,
        expected: Digest,
        actual: Digest,
    },
    #[error("registry {registry}: {reference}: unsupported manifest media type `{media_type}`")]
    MediaType {
        registry: String,
        reference: String,
        media_type: String,
    },
    #[error(
        "registry {registry}: {reference} has no image for platform {platform} (available: {available}); pass --platform"
    )]
    NoPlatform {
        registry: String,
        reference: String,
        platform: String,
        available: String,
    },
    #[error("registry {registry}: {reference}: invalid {what}: {reason}")]
    Invalid {
        registry: String,
        reference: String,
        what: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("credentials file {path:?}: {reason}")]
    AuthFile { path: PathBuf, reason: String },
    #[error("a download task failed: {0}")]
    Task(String),
}

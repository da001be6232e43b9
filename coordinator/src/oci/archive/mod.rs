//! Image archives, as `ferry save` writes and `ferry load` reads them:
//! - `oci-archive`: a tar of an OCI image layout (`oci-layout`,
//!   `index.json` naming each image, `blobs/sha256/<hex>`);
//! - `docker-archive`: what `docker save` (25+) writes: the same layout plus
//!   docker's `manifest.json` (`Config`, `RepoTags`, `Layers` paths), so
//!   `docker load` and ferry both read it and digests survive a round trip.
//!   Older docker archives (`<id>/layer.tar`, `<hex>.json`, no `index.json`)
//!   load too: ferry writes a new OCI manifest for them.
//!
//! Names: docker's `RepoTags`, containerd's image name or the OCI
//! `org.opencontainers.image.ref.name` (a bare tag becomes
//! `localhost/<archive stem>:<tag>`); an image the archive does not name
//! becomes `localhost/<archive stem>:latest` (the store names every image;
//! sealos keeps such an image by its ID).
//!
//! Invariant: load reads every entry before naming anything: paths are
//! checked (no absolute, `..`, links or devices), blobs are verified against
//! their names while streaming into the store, and every blob an image
//! needs must be present; only then are images tagged.

mod load;
mod save;

use std::path::PathBuf;

pub use load::{LoadReport, load};
pub use save::save;

use crate::oci::store::StoreError;

/// Archive flavours (sealos/buildah names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ArchiveFormat {
    OciArchive,
    DockerArchive,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive {path:?}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("archive {path:?}: entry `{entry}` rejected: {reason}; nothing was loaded")]
    Hostile {
        path: PathBuf,
        entry: String,
        reason: String,
    },
    #[error("archive {path:?}: {reason}; nothing was loaded")]
    Invalid { path: PathBuf, reason: String },
    #[error("archive {path:?}: blob {entry}: {source}")]
    Blob {
        path: PathBuf,
        entry: String,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

//! The coordinator side of the distribution engine: build the manifest of
//! a local tree ([`source`]) and bring one node's destination to it over
//! `ferry.transfer.v1` ([`session`]): fed directly (star), or through a
//! relay chain/tree of agents ([`relay`]) so each chunk leaves the bastion
//! once.

pub mod args;
pub mod convert;
pub mod parts;
pub mod progress;
pub mod registry;
pub mod relay;
pub mod session;
pub mod source;

use std::path::PathBuf;

pub use registry::{RegistrySources, sync_registry};
pub use relay::{Outcome, SenderStats, Target, relay};
pub use session::{NodeStats, Progress, transfer_to};
pub use source::{BuildOptions, Source, build, build_with};

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is not valid UTF-8; ferry transfers only UTF-8 paths and symlink targets")]
    NotUtf8(PathBuf),
    #[error("{0}")]
    Path(ferry_shared::transfer::PathError),
    #[error("manifest: {0}")]
    Manifest(#[from] ferry_shared::transfer::ManifestError),
    #[error(
        "{path}: content hashes to sha256:{actual} but its path names sha256:{expected}{}: the source registry is corrupt, so nothing was sent; re-pull the image (or rebuild the cluster image) so the blob is rewritten, then re-run",
        if *others > 0 { format!(" (and {others} more blob(s) like it)") } else { String::new() }
    )]
    DigestMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
        others: usize,
    },
    #[error("{0} changed while it was being sent; re-run the copy")]
    SourceChanged(PathBuf),
    #[error("agent at {endpoint}: {rpc} failed: {status}")]
    Rpc {
        endpoint: String,
        rpc: &'static str,
        status: String,
    },
    #[error("agent at {endpoint}: {detail}")]
    Protocol { endpoint: String, detail: String },
    #[error("agent at {endpoint} went silent for {secs}s during {rpc}")]
    Idle {
        endpoint: String,
        rpc: &'static str,
        secs: u64,
    },
}

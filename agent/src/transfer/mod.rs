//! The agent side of the distribution engine (`ferry.transfer.v1`):
//! plans against what the destination and the chunk cache already hold,
//! receives verified chunks into the bounded cache, and commits manifests
//! atomically per file. See `proto/ferry/transfer/v1/transfer.proto`.

pub mod apply;
pub mod beneath;
pub mod budget;
pub mod cache;
pub mod convert;
pub mod decode;
pub mod parts;
pub mod plan;
pub mod relay;
pub mod scan;
pub mod service;
pub mod stat_index;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_shared::transfer::{DestRoot, Manifest, ManifestError, TreeDiff};

pub use budget::{Budget, PlanBudget, Reservation};
pub use cache::ChunkCache;
pub use service::TransferService;

/// Default chunk cache location on nodes.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/ferry/cache";
/// Default cache bound.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 2 << 30;
/// Planned transfers kept at once; the oldest is dropped beyond this.
pub const MAX_SESSIONS: usize = 32;
/// A planned transfer not committed within this time is dropped.
pub const SESSION_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct TransferConfig {
    pub cache_dir: PathBuf,
    pub cache_max_bytes: u64,
    /// What planned transfers may hold at once (`budget.rs`).
    pub budget: PlanBudget,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            cache_dir: PathBuf::from(DEFAULT_CACHE_DIR),
            cache_max_bytes: DEFAULT_CACHE_MAX_BYTES,
            budget: PlanBudget::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("destination {0} exists and is not a directory")]
    NotADirectory(PathBuf),
    #[error(
        "destination {path} is a symlink (to {}) on this node; ferry never writes through a symlinked destination: give the directory it points to, or remove the link",
        target.display()
    )]
    SymlinkRoot { path: PathBuf, target: PathBuf },
    #[error(
        "{0} is a symlink on this node where the transfer expects a directory or file (changed since the plan?); nothing was written through it: remove the link, then re-run the transfer"
    )]
    SymlinkInTheWay(PathBuf),
    #[error("{0} changed type on this node since the plan; re-run the transfer")]
    TypeChanged(PathBuf),
    #[error(
        "cache entry {path} was corrupt (sha256 {hash} mismatch) and was removed; re-run the transfer"
    )]
    Corrupt { path: PathBuf, hash: String },
    #[error(
        "no planned transfer `{0}` on this node (expired, or the agent restarted); re-run the transfer"
    )]
    NoSession(String),
    #[error("transfer `{id}`: {missing} chunks are still missing; push them before commit")]
    MissingChunks { id: String, missing: usize },
    #[error(
        "{0} is a directory on the node where the source has a file; give the destination file's full path, or remove that directory"
    )]
    DirectoryInTheWay(PathBuf),
    #[error("bad chunk: {0}")]
    BadChunk(String),
    #[error("manifest: {0}")]
    Manifest(#[from] ManifestError),
    #[error("{0}")]
    Busy(String),
    #[error("transfer task failed: {0}")]
    Task(String),
}

/// A unique suffix for temp names (process id + counter).
pub fn unique_suffix() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}.{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A planned transfer, waiting for its chunks and commit.
#[derive(Debug)]
pub struct Session {
    pub op: String,
    pub dest: DestRoot,
    pub manifest: Manifest,
    pub diff: TreeDiff,
    pub created: Instant,
}

/// Sessions by transfer id, bounded and expiring; each holds its share
/// of the plan budget until it leaves.
#[derive(Clone, Default)]
pub struct Sessions {
    inner: Arc<Mutex<Open>>,
}

type Open = HashMap<String, (Arc<Session>, Reservation)>;

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, id: String, s: Session, held: Reservation) {
        let mut map = self.lock();
        map.retain(|_, v| v.0.created.elapsed() < SESSION_TTL);
        while map.len() >= MAX_SESSIONS {
            let oldest = map
                .iter()
                .min_by_key(|(_, v)| v.0.created)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        map.insert(id, (Arc::new(s), held));
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.lock().get(id).map(|v| v.0.clone())
    }

    /// Drops the session (and returns its budget).
    pub fn remove(&self, id: &str) {
        let gone = self.lock().remove(id);
        drop(gone);
    }

    /// Drops expired sessions, returning their budget.
    pub fn expire(&self) {
        self.lock()
            .retain(|_, v| v.0.created.elapsed() < SESSION_TTL);
    }

    /// Whether no unexpired session is open.
    pub fn is_idle(&self) -> bool {
        self.expire();
        self.lock().is_empty()
    }
}

//! The agent's trust settings, changed only by the coordinator (the
//! `ferry.agent.v1.Trust` service): the revoked serials ([`Revocations`],
//! checked on every RPC by `authz.rs`) and the TLS identity and CA bundle
//! (`store.rs` writes them, `accept::TlsState` serves them). Both persist in
//! the TLS directory, so a restarted agent keeps refusing what it refused.

pub mod service;
pub mod store;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

pub use ferry_shared::pki::revoked::AGENT_REVOKED_FILE as REVOKED_FILE;
use ferry_shared::pki::revoked::AgentRevoked;

pub use service::TrustService;
pub use store::TlsDir;

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{what} {path}: {source}; check the agent's TLS directory and its disk")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a valid revocation list ({detail}); remove it and push it again (`ferry agent rotate-certs`)"
    )]
    Corrupt { path: PathBuf, detail: String },
}

pub(crate) fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> TrustError {
    let path = path.to_path_buf();
    move |source| TrustError::Io { what, path, source }
}

#[derive(Debug, Default)]
struct RevokedSet {
    generation: u64,
    serials: HashSet<String>,
}

/// The serials the coordinator revoked; persisted when a file is given.
#[derive(Clone, Default)]
pub struct Revocations {
    inner: Arc<RwLock<RevokedSet>>,
    file: Option<PathBuf>,
}

impl Revocations {
    /// Loads `file` if it exists (None: in memory only, for tests).
    pub fn load(file: Option<PathBuf>) -> Result<Self, TrustError> {
        let mut set = RevokedSet::default();
        if let Some(path) = &file {
            match std::fs::read(path) {
                Ok(bytes) => {
                    let f: AgentRevoked =
                        serde_json::from_slice(&bytes).map_err(|e| TrustError::Corrupt {
                            path: path.clone(),
                            detail: e.to_string(),
                        })?;
                    set.generation = f.generation;
                    set.serials = f.serials.into_iter().collect();
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("cannot read", path)(e)),
            }
        }
        Ok(Self {
            inner: Arc::new(RwLock::new(set)),
            file,
        })
    }

    pub fn is_revoked(&self, serial: &str) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .serials
            .contains(serial)
    }

    /// (generation, number of serials).
    pub fn status(&self) -> (u64, usize) {
        let s = self.inner.read().unwrap_or_else(|p| p.into_inner());
        (s.generation, s.serials.len())
    }

    /// Replaces the list (persisted first). Returns false, changing
    /// nothing, when `generation` is older than the current one.
    pub fn replace(&self, generation: u64, serials: Vec<String>) -> Result<bool, TrustError> {
        let mut s = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if generation < s.generation {
            return Ok(false);
        }
        if let Some(path) = &self.file {
            let mut sorted = serials.clone();
            sorted.sort();
            sorted.dedup();
            let f = AgentRevoked {
                generation,
                serials: sorted,
            };
            let bytes = serde_json::to_vec_pretty(&f).map_err(|e| TrustError::Corrupt {
                path: path.clone(),
                detail: e.to_string(),
            })?;
            store::write_synced(path, &bytes, 0o600)?;
        }
        s.generation = generation;
        s.serials = serials.into_iter().collect();
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revocation_list_survives_a_restart_and_never_goes_back() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(REVOKED_FILE);
        let r = Revocations::load(Some(path.clone())).unwrap();
        assert!(r.replace(3, vec!["0a".into(), "0b".into()]).unwrap());
        assert!(!r.replace(2, vec![]).unwrap(), "older generation ignored");
        let again = Revocations::load(Some(path.clone())).unwrap();
        assert!(again.is_revoked("0a") && again.is_revoked("0b"));
        assert_eq!(again.status(), (3, 2));
        std::fs::write(&path, "{").unwrap();
        let e = Revocations::load(Some(path)).err().unwrap().to_string();
        assert!(e.contains("revoked.json"), "{e}");
    }
}

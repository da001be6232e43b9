//! The coordinator's local state: `~/.ferry/<cluster>/` (or `--home` /
//! `FERRY_HOME`). Holds the agent CA and client certificate (`pki/`), the
//! agent inventory (`agents.json`), and later the Clusterfile.
//!
//! Invariant: every file is written atomically (temp + fsync + rename) and
//! private keys are created 0600 inside 0700 directories.

mod file_set;
mod files;
mod inventory;
mod lock;
mod pki;
mod ssh_settings;

pub use files::{StateError, write_atomic};
pub use inventory::{Inventory, NodeRecord};
pub use lock::ClusterLock;
pub use pki::{AgentPki, read_client_tls, renewal_due};
pub use ssh_settings::{SSH_SETTINGS_FILE, SshSettings};

use std::path::{Path, PathBuf};

/// Root of all ferry state on the bastion.
#[derive(Debug, Clone)]
pub struct FerryHome(PathBuf);

impl FerryHome {
    /// `explicit` (from `--home`/`FERRY_HOME`) or `$HOME/.ferry`.
    pub fn resolve(explicit: Option<PathBuf>) -> Result<Self, StateError> {
        if let Some(p) = explicit {
            return Ok(Self(p));
        }
        match std::env::var_os("HOME") {
            Some(h) if !h.is_empty() => Ok(Self(PathBuf::from(h).join(".ferry"))),
            _ => Err(StateError::NoHome),
        }
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Opens (creating if needed) the state directory of one cluster.
    pub fn cluster(&self, name: &str) -> Result<ClusterState, StateError> {
        validate_cluster_name(name)?;
        let dir = self.0.join(name);
        files::ensure_private_dir(&self.0)?;
        files::ensure_private_dir(&dir)?;
        Ok(ClusterState {
            name: name.to_string(),
            dir,
        })
    }
}

/// Cluster names become directory names and systemd-free identifiers.
pub fn validate_cluster_name(name: &str) -> Result<(), StateError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(StateError::BadClusterName(name.to_string()))
    }
}

#[derive(Debug, Clone)]
pub struct ClusterState {
    name: String,
    dir: PathBuf,
}

impl ClusterState {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn inventory_path(&self) -> PathBuf {
        self.dir.join("agents.json")
    }

    pub fn load_inventory(&self) -> Result<Inventory, StateError> {
        Inventory::load(&self.inventory_path())
    }

    pub fn save_inventory(&self, inv: &Inventory) -> Result<(), StateError> {
        inv.save(&self.inventory_path())
    }

    /// Loads the agent PKI, creating the CA and client certificate on first use.
    pub fn agent_pki(&self) -> Result<AgentPki, StateError> {
        AgentPki::load_or_create(&self.dir.join("pki"), &self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names() {
        for ok in ["default", "prod-1", "a"] {
            assert!(validate_cluster_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../x", "A", "a/b", "-x", &"x".repeat(64)] {
            assert!(validate_cluster_name(bad).is_err(), "{bad}");
        }
    }
}

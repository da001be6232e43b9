//! `agents.json`: the nodes whose agents this cluster installed, so later
//! commands (`exec`, `agent status`) reach them over gRPC without SSH.
//! Holds no secrets.

use std::path::Path;

use ferry_shared::HostAddr;
use ferry_shared::pki::Revoked;
use serde::{Deserialize, Serialize};

use super::files::{StateError, read_to_string, write_atomic};

pub const INVENTORY_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// SSH address; `addr.ip` is also where the agent listens.
    pub addr: HostAddr,
    pub agent_port: u16,
    /// sealos roles: `master`, `node`, `registry`, arch names.
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub ssh_user: String,
    #[serde(default)]
    pub agent_version: String,
    #[serde(default)]
    pub agent_sha256: String,
    /// `systemd` or `daemon`.
    #[serde(default)]
    pub supervisor: String,
    #[serde(default)]
    pub installed_at_ms: i64,
    /// The agent certificate's serial (DER octets, hex) and expiry (Unix
    /// s): what `ferry delete` revokes. Empty for agents installed before
    /// ferry recorded it (then asked from the agent).
    #[serde(default)]
    pub cert_serial: String,
    #[serde(default)]
    pub cert_not_after: i64,
    /// The agent certificate an install replaced, for the caller to revoke.
    #[serde(skip)]
    pub replaced_cert: Option<Revoked>,
}

impl NodeRecord {
    /// A host known only by address and roles (no agent recorded there).
    pub fn unrecorded(addr: HostAddr, roles: Vec<String>) -> Self {
        Self {
            addr,
            agent_port: 0,
            roles,
            hostname: String::new(),
            ssh_user: String::new(),
            agent_version: String::new(),
            agent_sha256: String::new(),
            supervisor: String::new(),
            installed_at_ms: 0,
            cert_serial: String::new(),
            cert_not_after: 0,
            replaced_cert: None,
        }
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// The revocation entry of this node's certificate, if it is known.
    pub fn cert_revocation(&self, what: &str) -> Option<Revoked> {
        (!self.cert_serial.is_empty()).then(|| Revoked {
            serial: self.cert_serial.clone(),
            what: format!("{what} {}", self.addr),
            not_after: self.cert_not_after,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub version: u32,
    pub nodes: Vec<NodeRecord>,
}

impl Inventory {
    pub fn load(path: &Path) -> Result<Self, StateError> {
        if !path.exists() {
            return Ok(Self {
                version: INVENTORY_VERSION,
                nodes: Vec::new(),
            });
        }
        let text = read_to_string(path)?;
        let inv: Inventory = serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if inv.version != INVENTORY_VERSION {
            return Err(StateError::Corrupt {
                path: path.to_path_buf(),
                reason: format!(
                    "inventory version {} is not supported (want {INVENTORY_VERSION})",
                    inv.version
                ),
            });
        }
        Ok(inv)
    }

    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let mut me = self.clone();
        me.version = INVENTORY_VERSION;
        me.nodes.sort_by_key(|n| n.addr);
        let text = serde_json::to_string_pretty(&me).map_err(|e| StateError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        write_atomic(path, text.as_bytes(), 0o600)
    }

    /// Inserts or replaces the record for `rec.addr`.
    pub fn upsert(&mut self, rec: NodeRecord) {
        match self.nodes.iter_mut().find(|n| n.addr == rec.addr) {
            Some(slot) => *slot = rec,
            None => self.nodes.push(rec),
        }
    }

    pub fn remove(&mut self, addr: &HostAddr) -> bool {
        let before = self.nodes.len();
        self.nodes.retain(|n| &n.addr != addr);
        before != self.nodes.len()
    }

    pub fn find(&self, addr: &HostAddr) -> Option<&NodeRecord> {
        self.nodes.iter().find(|n| &n.addr == addr)
    }

    /// The node at `ip`, whatever its SSH port.
    pub fn find_ip(&self, ip: std::net::IpAddr) -> Option<&NodeRecord> {
        self.nodes.iter().find(|n| n.addr.ip == ip)
    }

    /// Nodes matching sealos' `--roles` and `--ips` filters (both optional;
    /// an IP filter matches on the IP whatever the SSH port).
    pub fn select(&self, roles: &[String], ips: &[HostAddr]) -> Vec<NodeRecord> {
        self.nodes
            .iter()
            .filter(|n| roles.is_empty() || roles.iter().any(|r| n.has_role(r)))
            .filter(|n| ips.is_empty() || ips.iter().any(|a| a.ip == n.addr.ip))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ip: &str, role: &str) -> NodeRecord {
        NodeRecord {
            agent_port: 7443,
            ssh_user: "root".into(),
            ..NodeRecord::unrecorded(ip.parse().unwrap(), vec![role.into()])
        }
    }

    #[test]
    fn round_trip_and_select() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("agents.json");
        let mut inv = Inventory::load(&p).unwrap();
        inv.upsert(rec("10.0.0.3", "node"));
        inv.upsert(rec("10.0.0.2", "master"));
        inv.upsert(rec("10.0.0.3", "node"));
        inv.save(&p).unwrap();
        let back = Inventory::load(&p).unwrap();
        assert_eq!(back.nodes.len(), 2);
        assert_eq!(back.nodes[0].addr.to_string(), "10.0.0.2");
        assert_eq!(back.select(&["master".into()], &[]).len(), 1);
        assert_eq!(
            back.select(&[], &["10.0.0.3:2222".parse().unwrap()]).len(),
            1
        );
        assert_eq!(back.select(&[], &[]).len(), 2);
    }

    #[test]
    fn corrupt_file_is_named() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("agents.json");
        std::fs::write(&p, "{").unwrap();
        let e = Inventory::load(&p).unwrap_err().to_string();
        assert!(e.contains("agents.json"), "{e}");
    }
}

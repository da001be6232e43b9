//! Host resolution from `spec.hosts`: addresses with ports, roles, per-host
//! SSH (host block over the global one) and env; master0 and registry hosts
//! as sealos defines them.

use std::str::FromStr;

use super::{Cluster, ClusterfileError, Ssh};
use crate::hosts::HostAddr;

pub const ROLE_MASTER: &str = "master";
pub const ROLE_NODE: &str = "node";
pub const ROLE_REGISTRY: &str = "registry";

#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedHost {
    pub addr: HostAddr,
    pub roles: Vec<String>,
    pub env: Vec<String>,
    pub ssh: Ssh,
}

impl ResolvedHost {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

fn has(roles: &[String], role: &str) -> bool {
    roles.iter().any(|r| r == role)
}

/// Whether an `ips` item names its port (`ip:port`, `[v6]:port`).
fn has_port(item: &str) -> bool {
    if item.starts_with('[') {
        item.contains("]:")
    } else {
        item.matches(':').count() == 1
    }
}

impl Cluster {
    /// Every host in file order, validated: parsable addresses, no duplicate,
    /// no host both master and node, at least one master.
    pub fn resolved_hosts(&self) -> Result<Vec<ResolvedHost>, ClusterfileError> {
        let mut out: Vec<ResolvedHost> = Vec::new();
        for group in &self.spec.hosts {
            let ssh = match &group.ssh {
                Some(s) => s.over(&self.spec.ssh),
                None => self.spec.ssh.clone(),
            };
            for item in &group.ips {
                let item = item.trim();
                let mut addr =
                    HostAddr::from_str(item).map_err(|source| ClusterfileError::BadHost {
                        item: item.to_string(),
                        source,
                    })?;
                if !has_port(item) {
                    addr.port = ssh.port_or_default();
                }
                if let Some(prev) = out.iter().find(|h| h.addr.ip == addr.ip) {
                    let roles = |r: &[String]| (has(r, ROLE_MASTER), has(r, ROLE_NODE));
                    let both = matches!(
                        (roles(&prev.roles), roles(&group.roles)),
                        ((true, _), (_, true)) | ((_, true), (true, _))
                    );
                    return Err(if both {
                        ClusterfileError::MasterAndNode {
                            addr: addr.to_string(),
                        }
                    } else {
                        ClusterfileError::DuplicateHost {
                            addr: addr.to_string(),
                        }
                    });
                }
                let h = ResolvedHost {
                    addr,
                    roles: group.roles.clone(),
                    env: group.env.clone(),
                    ssh: ssh.clone(),
                };
                if h.has_role(ROLE_MASTER) && h.has_role(ROLE_NODE) {
                    return Err(ClusterfileError::MasterAndNode {
                        addr: addr.to_string(),
                    });
                }
                out.push(h);
            }
        }
        if !out.iter().any(|h| h.has_role(ROLE_MASTER)) {
            return Err(ClusterfileError::NoMaster);
        }
        Ok(out)
    }

    /// The first IP of the first group with the master role.
    pub fn master0(&self) -> Result<ResolvedHost, ClusterfileError> {
        self.resolved_hosts()?
            .into_iter()
            .find(|h| h.has_role(ROLE_MASTER))
            .ok_or(ClusterfileError::NoMaster)
    }

    /// Hosts with the `registry` role, or master0 when none has it.
    pub fn registry_hosts(&self) -> Result<Vec<ResolvedHost>, ClusterfileError> {
        let hosts = self.resolved_hosts()?;
        let reg: Vec<ResolvedHost> = hosts
            .iter()
            .filter(|h| h.has_role(ROLE_REGISTRY))
            .cloned()
            .collect();
        if !reg.is_empty() {
            return Ok(reg);
        }
        hosts
            .into_iter()
            .find(|h| h.has_role(ROLE_MASTER))
            .map(|m| vec![m])
            .ok_or(ClusterfileError::NoMaster)
    }
}

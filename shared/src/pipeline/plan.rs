//! What an apply changes: hosts added and removed between the stored
//! Clusterfile and the new one, and per host the steps still to run.

use serde::Serialize;

use super::Step;
use crate::clusterfile::{ClusterfileError, ROLE_MASTER, ResolvedHost};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostChange {
    Add,
    Keep,
    Remove,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostPlan {
    pub host: String,
    pub roles: Vec<String>,
    pub change: HostChange,
    /// Steps to run (removals: the teardown).
    pub steps: Vec<String>,
    /// Bytes of image trees this host receives (upper bound: content
    /// already on the node is not sent again).
    pub bytes: u64,
    /// How the run reaches this host, when the plan asked (`ferry plan`
    /// probes each recorded agent; `None`: not asked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reach: Option<HostReach>,
}

/// Whether a run opens SSH to a host, and why: only hosts without an
/// agent that answers over mTLS with the expected binary need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostReach {
    pub ssh: bool,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub cluster: String,
    pub images: Vec<String>,
    pub hosts: Vec<HostPlan>,
}

impl Plan {
    pub fn added(&self) -> impl Iterator<Item = &HostPlan> {
        self.hosts.iter().filter(|h| h.change == HostChange::Add)
    }

    pub fn removed(&self) -> impl Iterator<Item = &HostPlan> {
        self.hosts.iter().filter(|h| h.change == HostChange::Remove)
    }
}

/// Hosts of `new` marked add/keep (by IP) against `old`, then hosts only in
/// `old` marked remove. Removing master0 of `old` is refused by the caller.
pub fn host_diff(old: &[ResolvedHost], new: &[ResolvedHost]) -> Vec<(ResolvedHost, HostChange)> {
    let mut out: Vec<(ResolvedHost, HostChange)> = new
        .iter()
        .map(|h| {
            let kept = old.iter().any(|o| o.addr.ip == h.addr.ip);
            let c = if kept {
                HostChange::Keep
            } else {
                HostChange::Add
            };
            (h.clone(), c)
        })
        .collect();
    for o in old {
        if !new.iter().any(|h| h.addr.ip == o.addr.ip) {
            out.push((o.clone(), HostChange::Remove));
        }
    }
    out
}

impl HostPlan {
    /// The plan row of one host; `master0` is the new cluster's master0.
    pub fn new(
        h: &ResolvedHost,
        change: HostChange,
        master0: &ResolvedHost,
        rootfs_bytes: u64,
        app_bytes: u64,
    ) -> Result<Self, ClusterfileError> {
        let is_master0 = h.addr.ip == master0.addr.ip;
        let steps = match change {
            HostChange::Remove => vec!["kubeadm-reset", "clean-hooks", "hosts-entries", "data"]
                .into_iter()
                .map(String::from)
                .collect(),
            _ => Step::for_host(h.has_role(ROLE_MASTER), is_master0)
                .into_iter()
                .map(|s| s.as_str().to_string())
                .collect(),
        };
        let bytes = match change {
            HostChange::Remove => 0,
            _ => rootfs_bytes + if is_master0 { app_bytes } else { 0 },
        };
        Ok(Self {
            host: h.addr.to_string(),
            roles: h.roles.clone(),
            change,
            steps,
            bytes,
            reach: None,
        })
    }
}

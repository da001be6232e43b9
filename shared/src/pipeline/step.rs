//! The steps of `ferry run` in execution order. Persisted in the journal and
//! shown in events through [`Step::as_str`], which is stable.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// Agents installed/up to date, facts gathered, cluster checks.
    Check,
    /// Images loaded, Config documents applied, templates rendered (bastion).
    Images,
    /// rootfs/patch trees to every host, application trees to master0,
    /// registry data to registry hosts.
    Distribute,
    /// `/etc/hosts` entries, `check`, `init-registry`, `init-cri`, `init` hooks.
    Bootstrap,
    /// Cluster PKI generated once on the bastion, copied to masters.
    Pki,
    /// `kubeadm init` on master0.
    InitMaster,
    /// Control-plane `kubeadm join`, one master at a time.
    JoinMaster,
    /// The VIP load balancer on a worker (agent LB controller).
    LbSync,
    /// Worker `kubeadm join` through the VIP.
    JoinWorker,
    /// A Kubernetes upgrade (a rootfs of a newer version): `kubeadm upgrade
    /// apply` on master0, `upgrade node` elsewhere, then per host drain,
    /// new kubelet/kubectl, kubelet restart, Ready at the new version,
    /// uncordon.
    Upgrade,
    /// Image CMDs (rootfs/patch on every host, applications on master0).
    Guest,
    /// The Clusterfile with status written to the state directory.
    Writeback,
    /// The state directory copied to the masters.
    Backup,
}

impl Step {
    pub const ALL: [Step; 13] = [
        Step::Check,
        Step::Images,
        Step::Distribute,
        Step::Bootstrap,
        Step::Pki,
        Step::InitMaster,
        Step::JoinMaster,
        Step::LbSync,
        Step::JoinWorker,
        Step::Upgrade,
        Step::Guest,
        Step::Writeback,
        Step::Backup,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Step::Check => "check",
            Step::Images => "images",
            Step::Distribute => "distribute",
            Step::Bootstrap => "bootstrap",
            Step::Pki => "pki",
            Step::InitMaster => "init-master",
            Step::JoinMaster => "join-master",
            Step::LbSync => "lb-sync",
            Step::JoinWorker => "join-worker",
            Step::Upgrade => "upgrade",
            Step::Guest => "guest",
            Step::Writeback => "writeback",
            Step::Backup => "backup",
        }
    }

    /// Whether the step is journaled per host (otherwise cluster-wide).
    pub const fn per_host(self) -> bool {
        matches!(
            self,
            Step::Distribute
                | Step::Bootstrap
                | Step::Pki
                | Step::InitMaster
                | Step::JoinMaster
                | Step::LbSync
                | Step::JoinWorker
                | Step::Upgrade
                | Step::Guest
                | Step::Backup
        )
    }

    /// The per-host steps a host with these roles goes through, in order.
    pub fn for_host(master: bool, master0: bool) -> Vec<Step> {
        let mut v = vec![Step::Distribute, Step::Bootstrap];
        if master {
            v.push(Step::Pki);
            v.push(if master0 {
                Step::InitMaster
            } else {
                Step::JoinMaster
            });
        } else {
            v.push(Step::LbSync);
            v.push(Step::JoinWorker);
        }
        v.push(Step::Guest);
        if master {
            v.push(Step::Backup);
        }
        v
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown pipeline step `{0}`")]
pub struct UnknownStep(pub String);

impl FromStr for Step {
    type Err = UnknownStep;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Step::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownStep(s.to_string()))
    }
}

impl serde::Serialize for Step {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Step {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

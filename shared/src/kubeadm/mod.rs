//! kubeadm, kubelet and kube-proxy configuration documents for `kubeadm
//! init` and `kubeadm join`, generated the way sealos does: built-in
//! defaults (`defaults.yaml`) < the image's `etc/kubeadm.yml` < the
//! Clusterfile's documents, then the cluster facts (advertise address,
//! certSANs, VIP excluded from kube-proxy's IPVS cleanup, token, certificate
//! key). Emitted as `kubeadm.k8s.io/v1beta3` below Kubernetes 1.31 and
//! `v1beta4` (list-style extraArgs, 100-year validity periods) from 1.31.

mod generate;
mod host_traits;
mod net;
mod token;
mod upgrade;
mod v1beta4;

pub use generate::{ClusterFacts, JoinRole, KubeadmDocs};
pub use host_traits::HostTraits;
pub use net::cidr_contains;
pub use token::{BootstrapToken, ca_cert_hash, certificate_key};
pub use upgrade::{
    KubeVersion, Upgrade, UpgradeRefusal, kubelet_skew_ok, upgrade_order, upgrade_path,
};

/// Where the default ClusterConfiguration points `--audit-policy-file`
/// (inside the `/etc/kubernetes` hostPath volume it mounts).
pub const AUDIT_POLICY_PATH: &str = "/etc/kubernetes/audit-policy.yml";
/// The audit policy ferry writes there on every master before init/join.
pub const AUDIT_POLICY: &str = include_str!("audit-policy.yml");

#[derive(Debug, thiserror::Error)]
pub enum KubeadmError {
    #[error("bootstrap token must look like [a-z0-9]{{6}}.[a-z0-9]{{16}}")]
    BadToken,
    #[error("the CA certificate is not valid PEM/X.509")]
    BadCaCert,
    #[error("Kubernetes version `{0}` is not vMAJOR.MINOR.PATCH")]
    BadVersion(String),
    #[error("{what} document is invalid: {reason}")]
    BadDocument { what: String, reason: String },
    #[error("`{0}` is not a network in CIDR notation")]
    BadCidr(String),
    #[error(
        "the VIP {vip} lies inside the {which} CIDR {cidr}; choose another VIP (-e defaultVIP=...) or CIDR"
    )]
    VipInCidr {
        vip: std::net::IpAddr,
        which: &'static str,
        cidr: String,
    },
}

#[cfg(test)]
mod tests;

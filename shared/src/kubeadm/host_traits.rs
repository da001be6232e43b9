//! Defaults that depend on the hosts rather than on the image: the
//! kubelet's cgroup driver (the init system), kube-proxy's mode (whether
//! the kernels have IPVS) and cgroup v1 acceptance (explicit from 1.31).
//! Each applies only when no image or Clusterfile document sets the field:
//! a user's explicit choice always wins.

use serde_yaml_ng::Value;

use super::generate::{KubeadmDocs, kind_of, minor_of, set};

/// What the check step learned about every host of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostTraits {
    /// systemd is PID 1 on every host (else the kubelet and the container
    /// runtime use the cgroupfs driver).
    pub systemd: bool,
    /// Every host's kernel has IPVS (built in or as a module).
    pub ipvs: bool,
    /// Some host runs cgroup v1 (or the v1 hybrid).
    pub cgroup_v1: bool,
    /// Some host cannot change `nf_conntrack_max` (it is read-only outside
    /// the initial network namespace: nodes in containers or namespaces).
    pub conntrack_max_fixed: bool,
}

impl Default for HostTraits {
    /// A typical modern host: systemd, IPVS, cgroup v2 (changes nothing).
    fn default() -> Self {
        Self {
            systemd: true,
            ipvs: true,
            cgroup_v1: false,
            conntrack_max_fixed: false,
        }
    }
}

/// Whether some overlay document of `kind` sets the field at `path`.
fn overlay_sets(overlays: &[Value], kind: &str, path: &[&str]) -> bool {
    overlays.iter().filter(|o| kind_of(o) == kind).any(|o| {
        let mut cur = Some(o);
        for k in path {
            cur = cur.and_then(|c| c.get(*k));
        }
        cur.is_some_and(|v| !v.is_null())
    })
}

impl KubeadmDocs {
    /// Applies the host-derived defaults the overlays leave open:
    /// - `KubeletConfiguration.cgroupDriver`: `systemd` where systemd runs
    ///   the hosts, else `cgroupfs` (the container runtime's init script
    ///   makes the same choice on each host);
    /// - `KubeProxyConfiguration.mode`: `ipvs` (sealos' default) where every
    ///   kernel has IPVS, else `nftables` from 1.31 (beta, on by default)
    ///   and `iptables` before;
    /// - `KubeletConfiguration.failCgroupV1: false` when a host runs cgroup
    ///   v1, wherever the field exists (1.31+): the kubelet refuses v1 by
    ///   default since 1.35, and the cluster's kubelet-config ConfigMap
    ///   carries the setting into an upgrade to 1.35;
    /// - `KubeProxyConfiguration.conntrack.maxPerCore: 0` (keep the host's
    ///   limit) where a host's `nf_conntrack_max` is read-only: kube-proxy
    ///   exits when it cannot raise it (kind does the same for its nodes).
    pub fn for_hosts(mut self, traits: &HostTraits, overlays: &[Value]) -> Self {
        let minor = minor_of(self.kube_version()).unwrap_or(0);
        if !overlay_sets(overlays, "KubeletConfiguration", &["cgroupDriver"])
            && let Some(k) = self.doc_mut("KubeletConfiguration")
        {
            let driver = if traits.systemd {
                "systemd"
            } else {
                "cgroupfs"
            };
            set(k, &["cgroupDriver"], Value::from(driver));
        }
        if minor >= 31
            && traits.cgroup_v1
            && !overlay_sets(overlays, "KubeletConfiguration", &["failCgroupV1"])
            && let Some(k) = self.doc_mut("KubeletConfiguration")
        {
            set(k, &["failCgroupV1"], Value::from(false));
        }
        if !traits.ipvs
            && !overlay_sets(overlays, "KubeProxyConfiguration", &["mode"])
            && let Some(kp) = self.doc_mut("KubeProxyConfiguration")
        {
            let mode = if minor >= 31 { "nftables" } else { "iptables" };
            set(kp, &["mode"], Value::from(mode));
        }
        if traits.conntrack_max_fixed
            && !overlay_sets(
                overlays,
                "KubeProxyConfiguration",
                &["conntrack", "maxPerCore"],
            )
            && let Some(kp) = self.doc_mut("KubeProxyConfiguration")
        {
            set(kp, &["conntrack", "maxPerCore"], Value::from(0));
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubeadm::{BootstrapToken, ClusterFacts};

    fn docs(version: &str, overlays: &[Value], t: &HostTraits) -> String {
        let facts = ClusterFacts {
            kube_version: version.to_string(),
            master0: "10.0.0.2".parse().unwrap(),
            masters: vec!["10.0.0.2".parse().unwrap()],
            vip: "10.103.97.2".parse().unwrap(),
            token: BootstrapToken::parse("abcdef.0123456789abcdef").unwrap(),
            certificate_key: "0".repeat(64),
        };
        KubeadmDocs::new(facts, overlays)
            .unwrap()
            .for_hosts(t, overlays)
            .init_yaml()
            .unwrap()
    }

    fn doc(yaml: &str, kind: &str) -> Value {
        serde_yaml_ng::Deserializer::from_str(yaml)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .find(|v: &Value| kind_of(v) == kind)
            .unwrap()
    }

    const TESTBED: HostTraits = HostTraits {
        systemd: false,
        ipvs: false,
        cgroup_v1: true,
        conntrack_max_fixed: true,
    };

    #[test]
    fn typical_hosts_keep_sealos_defaults() {
        let y = docs("v1.34.4", &[], &HostTraits::default());
        assert_eq!(doc(&y, "KubeletConfiguration")["cgroupDriver"], "systemd");
        assert_eq!(doc(&y, "KubeProxyConfiguration")["mode"], "ipvs");
        assert!(
            doc(&y, "KubeletConfiguration")
                .get("failCgroupV1")
                .is_none()
        );
    }

    #[test]
    fn hosts_without_systemd_or_ipvs() {
        let y = docs("v1.34.4", &[], &TESTBED);
        assert_eq!(doc(&y, "KubeletConfiguration")["cgroupDriver"], "cgroupfs");
        assert_eq!(doc(&y, "KubeProxyConfiguration")["mode"], "nftables");
        assert_eq!(
            doc(&y, "KubeProxyConfiguration")["conntrack"]["maxPerCore"],
            0
        );
        // Set explicitly from 1.31 (the field's first release), so an
        // upgrade to 1.35 keeps accepting cgroup v1.
        assert_eq!(doc(&y, "KubeletConfiguration")["failCgroupV1"], false);
        let y = docs("v1.30.2", &[], &TESTBED);
        assert_eq!(doc(&y, "KubeProxyConfiguration")["mode"], "iptables");
        assert!(
            doc(&y, "KubeletConfiguration")
                .get("failCgroupV1")
                .is_none()
        );
        let y = docs("v1.35.4", &[], &TESTBED);
        assert_eq!(doc(&y, "KubeletConfiguration")["failCgroupV1"], false);
    }

    #[test]
    fn explicit_documents_win() {
        let o: Vec<Value> = vec![
            serde_yaml_ng::from_str(
                "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\nfailCgroupV1: true\n",
            )
            .unwrap(),
            serde_yaml_ng::from_str(
                "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: iptables\n",
            )
            .unwrap(),
        ];
        let y = docs("v1.35.4", &o, &TESTBED);
        assert_eq!(doc(&y, "KubeletConfiguration")["cgroupDriver"], "systemd");
        assert_eq!(doc(&y, "KubeletConfiguration")["failCgroupV1"], true);
        assert_eq!(doc(&y, "KubeProxyConfiguration")["mode"], "iptables");
    }
}

//! Kubernetes upgrades as sealos allows them (`UpgradeIfNeed`): a rootfs
//! image whose `version` differs from the cluster's upgrades it, one minor
//! step at a time, never down; and the kubelet version skew Kubernetes
//! supports (a kubelet at most three minors older than the apiserver,
//! never newer).

use std::fmt;

use semver::Version;

/// Why an upgrade is refused (before any host changes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeRefusal {
    #[error("`{0}` is not a Kubernetes version (vMAJOR.MINOR.PATCH)")]
    BadVersion(String),
    #[error("{from} → {to} is a downgrade; kubeadm cannot downgrade a cluster")]
    Downgrade { from: String, to: String },
    #[error(
        "{from} → {to} skips a minor version; upgrade one minor at a time (first to v{major}.{next}.x)"
    )]
    SkipsMinor {
        from: String,
        to: String,
        major: u64,
        next: u64,
    },
    #[error("{from} → {to} changes the major version")]
    Major { from: String, to: String },
}

/// One Kubernetes version (`v1.34.4`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KubeVersion(Version);

impl KubeVersion {
    pub fn parse(text: &str) -> Result<Self, UpgradeRefusal> {
        let t = text.trim();
        Version::parse(t.strip_prefix('v').unwrap_or(t))
            .map(Self)
            .map_err(|_| UpgradeRefusal::BadVersion(text.to_string()))
    }

    pub fn minor(&self) -> u64 {
        self.0.minor
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// A permitted upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    pub from: KubeVersion,
    pub to: KubeVersion,
}

/// The upgrade from the cluster's version to the image's: None when they
/// are equal; refused when it goes down, skips a minor or changes major.
pub fn upgrade_path(current: &str, target: &str) -> Result<Option<Upgrade>, UpgradeRefusal> {
    let (from, to) = (KubeVersion::parse(current)?, KubeVersion::parse(target)?);
    let names = || (from.to_string(), to.to_string());
    if from == to {
        return Ok(None);
    }
    if to < from {
        let (from, to) = names();
        return Err(UpgradeRefusal::Downgrade { from, to });
    }
    if to.0.major != from.0.major {
        let (from, to) = names();
        return Err(UpgradeRefusal::Major { from, to });
    }
    if to.minor() > from.minor() + 1 {
        let (major, next) = (from.0.major, from.minor() + 1);
        let (from, to) = names();
        return Err(UpgradeRefusal::SkipsMinor {
            from,
            to,
            major,
            next,
        });
    }
    Ok(Some(Upgrade { from, to }))
}

/// Whether a kubelet of `kubelet` may run against an apiserver of
/// `apiserver` (same major, not newer, at most three minors older).
pub fn kubelet_skew_ok(kubelet: &KubeVersion, apiserver: &KubeVersion) -> bool {
    kubelet.0.major == apiserver.0.major
        && kubelet.minor() <= apiserver.minor()
        && apiserver.minor() - kubelet.minor() <= 3
}

/// The hosts of an upgrade in order: master0 (`kubeadm upgrade apply`),
/// the other masters one at a time, then the workers in batches of
/// `max_unavailable` (at least 1).
pub fn upgrade_order<T: Clone>(
    master0: &T,
    other_masters: &[T],
    workers: &[T],
    max_unavailable: usize,
) -> Vec<Vec<T>> {
    let mut out = vec![vec![master0.clone()]];
    out.extend(other_masters.iter().map(|m| vec![m.clone()]));
    out.extend(workers.chunks(max_unavailable.max(1)).map(<[T]>::to_vec));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> KubeVersion {
        KubeVersion::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn one_minor_up_or_a_patch_is_an_upgrade() {
        let u = upgrade_path("v1.34.4", "v1.35.4").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            u,
            Some(Upgrade {
                from: v("v1.34.4"),
                to: v("v1.35.4")
            })
        );
        assert!(matches!(upgrade_path("v1.34.2", "v1.34.4"), Ok(Some(_))));
        assert_eq!(upgrade_path("v1.34.4", "1.34.4"), Ok(None));
    }

    #[test]
    fn refused_before_anything_changes() {
        assert!(matches!(
            upgrade_path("v1.34.4", "v1.36.1"),
            Err(UpgradeRefusal::SkipsMinor { next: 35, .. })
        ));
        assert!(matches!(
            upgrade_path("v1.35.4", "v1.34.4"),
            Err(UpgradeRefusal::Downgrade { .. })
        ));
        assert!(matches!(
            upgrade_path("v1.34.4", "v1.34.3"),
            Err(UpgradeRefusal::Downgrade { .. })
        ));
        assert!(matches!(
            upgrade_path("v1.34.4", "latest"),
            Err(UpgradeRefusal::BadVersion(_))
        ));
        assert!(matches!(
            upgrade_path("v1.34.4", "v2.0.0"),
            Err(UpgradeRefusal::Major { .. })
        ));
        let e = upgrade_path("v1.34.4", "v1.36.1").unwrap_err().to_string();
        assert!(e.contains("first to v1.35.x"), "{e}");
    }

    #[test]
    fn kubelet_skew() {
        assert!(kubelet_skew_ok(&v("v1.34.4"), &v("v1.35.4")));
        assert!(kubelet_skew_ok(&v("v1.32.0"), &v("v1.35.4")));
        assert!(!kubelet_skew_ok(&v("v1.31.9"), &v("v1.35.4")));
        assert!(
            !kubelet_skew_ok(&v("v1.36.0"), &v("v1.35.4")),
            "newer than the apiserver"
        );
    }

    #[test]
    fn order_master0_masters_one_by_one_workers_in_batches() {
        let o = upgrade_order(&"m0", &["m1", "m2"], &["w1", "w2", "w3"], 2);
        assert_eq!(
            o,
            vec![
                vec!["m0"],
                vec!["m1"],
                vec!["m2"],
                vec!["w1", "w2"],
                vec!["w3"]
            ]
        );
        assert_eq!(
            upgrade_order(&"m0", &[], &["w1"], 0),
            vec![vec!["m0"], vec!["w1"]]
        );
    }
}

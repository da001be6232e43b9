//! Well-known labels of cluster images.

use std::collections::BTreeMap;

use super::subst::substitute;

/// `sealos.io.type` (old) and `apps.sealos.io/type` (new); the new key wins.
pub const TYPE_LABELS: [&str; 2] = ["apps.sealos.io/type", "sealos.io.type"];
pub const VERSION_LABELS: [&str; 2] = ["apps.sealos.io/version", "sealos.io.version"];
pub const DISTRIBUTION_LABELS: [&str; 2] =
    ["apps.sealos.io/distribution", "sealos.io.distribution"];
/// The Kubernetes version carried by a rootfs image.
pub const KUBE_VERSION_LABEL: &str = "version";
/// The lvscare image.
pub const LVSCARE_IMAGE_LABEL: &str = "image";
pub const VIP_LABEL: &str = "vip";

/// How an image is laid onto the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ImageType {
    /// The base filesystem: copied to every node, CMD runs on every node.
    Rootfs,
    /// Overlaid on the rootfs; copied to every node.
    Patch,
    /// Copied to master0 only; CMD runs once there.
    Application,
}

impl ImageType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rootfs => "rootfs",
            Self::Patch => "patch",
            Self::Application => "application",
        }
    }

    /// Unknown or missing values are applications, as in sealos.
    pub fn from_label(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            Some("rootfs") => Self::Rootfs,
            Some("patch") => Self::Patch,
            _ => Self::Application,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distribution {
    Kubernetes,
    K3s,
    Other(String),
}

impl Distribution {
    fn from_label(value: &str) -> Self {
        match value {
            "kubernetes" => Self::Kubernetes,
            "k3s" => Self::K3s,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// Script hooks, run as `cd <rootfs>/scripts && bash <value>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    Check,
    Init,
    Clean,
    InitRegistry,
    CleanRegistry,
    InitCri,
    CleanCri,
}

impl Hook {
    pub const ALL: [Hook; 7] = [
        Hook::Check,
        Hook::Init,
        Hook::Clean,
        Hook::InitRegistry,
        Hook::CleanRegistry,
        Hook::InitCri,
        Hook::CleanCri,
    ];

    /// The label key (also the script base name).
    pub fn label(self) -> &'static str {
        match self {
            Self::Check => "check",
            Self::Init => "init",
            Self::Clean => "clean",
            Self::InitRegistry => "init-registry",
            Self::CleanRegistry => "clean-registry",
            Self::InitCri => "init-cri",
            Self::CleanCri => "clean-cri",
        }
    }

    /// The script used when the label is absent: `<name>.sh`.
    pub fn default_script(self) -> String {
        format!("{}.sh", self.label())
    }

    /// The command line for this hook (label value or default), with env
    /// references substituted.
    pub fn command(
        self,
        labels: &BTreeMap<String, String>,
        env: &BTreeMap<String, String>,
    ) -> String {
        match labels
            .get(self.label())
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
        {
            Some(v) => substitute(v, env),
            None => self.default_script(),
        }
    }
}

fn first<'a>(labels: &'a BTreeMap<String, String>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| labels.get(*k))
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// What the labels of one image (or a merged stack) say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMeta {
    pub image_type: ImageType,
    pub schema_version: Option<String>,
    pub distribution: Option<Distribution>,
    pub kube_version: Option<String>,
    pub lvscare_image: Option<String>,
    /// The `vip` label with env references substituted (`$defaultVIP`).
    pub vip: Option<String>,
}

impl ImageMeta {
    pub fn from_labels(labels: &BTreeMap<String, String>, env: &BTreeMap<String, String>) -> Self {
        Self {
            image_type: ImageType::from_label(first(labels, &TYPE_LABELS)),
            schema_version: first(labels, &VERSION_LABELS).map(str::to_owned),
            distribution: first(labels, &DISTRIBUTION_LABELS).map(Distribution::from_label),
            kube_version: first(labels, &[KUBE_VERSION_LABEL]).map(str::to_owned),
            lvscare_image: first(labels, &[LVSCARE_IMAGE_LABEL]).map(str::to_owned),
            vip: first(labels, &[VIP_LABEL])
                .map(|v| substitute(v, env))
                .filter(|v| !v.is_empty()),
        }
    }

    /// The apiserver VIP the cluster uses, as text: the `vip` label when it
    /// resolved to a value, else `defaultVIP` from the env, else sealos'
    /// default. Every command that programs the load balancer takes it from
    /// here, so `run` and a later `delete` agree.
    pub fn effective_vip(&self, env: &BTreeMap<String, String>) -> String {
        self.vip
            .clone()
            .filter(|v| !v.starts_with('$'))
            .or_else(|| env.get(DEFAULT_VIP_ENV).cloned())
            .unwrap_or_else(|| DEFAULT_VIP_TEXT.to_string())
    }
}

/// The env key sealos reads the VIP from.
pub const DEFAULT_VIP_ENV: &str = "defaultVIP";
/// sealos' default apiserver VIP.
pub const DEFAULT_VIP_TEXT: &str = "10.103.97.2";

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn type_from_either_label() {
        let e = BTreeMap::new();
        assert_eq!(
            ImageMeta::from_labels(&map(&[("sealos.io.type", "rootfs")]), &e).image_type,
            ImageType::Rootfs
        );
        assert_eq!(
            ImageMeta::from_labels(&map(&[("apps.sealos.io/type", "patch")]), &e).image_type,
            ImageType::Patch
        );
        assert_eq!(
            ImageMeta::from_labels(&map(&[]), &e).image_type,
            ImageType::Application
        );
        assert_eq!(
            ImageMeta::from_labels(&map(&[("sealos.io.type", "weird")]), &e).image_type,
            ImageType::Application
        );
        let both = map(&[
            ("sealos.io.type", "rootfs"),
            ("apps.sealos.io/type", "patch"),
        ]);
        assert_eq!(
            ImageMeta::from_labels(&both, &e).image_type,
            ImageType::Patch
        );
    }

    #[test]
    fn meta_fields() {
        let labels = map(&[
            ("sealos.io.type", "rootfs"),
            ("sealos.io.version", "v1beta1"),
            ("sealos.io.distribution", "kubernetes"),
            ("version", "v1.27.7"),
            ("image", "ghcr.io/labring/lvscare:v4.3.7"),
            ("vip", "$defaultVIP"),
        ]);
        let env = map(&[("defaultVIP", "10.103.97.2")]);
        let m = ImageMeta::from_labels(&labels, &env);
        assert_eq!(m.schema_version.as_deref(), Some("v1beta1"));
        assert_eq!(m.distribution, Some(Distribution::Kubernetes));
        assert_eq!(m.kube_version.as_deref(), Some("v1.27.7"));
        assert_eq!(
            m.lvscare_image.as_deref(),
            Some("ghcr.io/labring/lvscare:v4.3.7")
        );
        assert_eq!(m.vip.as_deref(), Some("10.103.97.2"));
    }

    #[test]
    fn effective_vip_label_then_env_then_default() {
        let with_label = map(&[("vip", "$defaultVIP")]);
        let literal = map(&[("vip", "10.1.2.3")]);
        let none = map(&[]);
        let env = map(&[("defaultVIP", "10.9.9.9")]);
        let empty = map(&[]);
        let vip = |l: &BTreeMap<String, String>, e: &BTreeMap<String, String>| {
            ImageMeta::from_labels(l, e).effective_vip(e)
        };
        assert_eq!(vip(&with_label, &env), "10.9.9.9");
        assert_eq!(vip(&with_label, &empty), DEFAULT_VIP_TEXT);
        assert_eq!(vip(&literal, &env), "10.1.2.3");
        assert_eq!(vip(&none, &env), "10.9.9.9");
        assert_eq!(vip(&none, &empty), "10.103.97.2");
    }

    #[test]
    fn hooks_default_and_substitute() {
        let labels = map(&[
            (
                "init",
                "init-cri.sh $registryDomain $registryPort && bash init.sh",
            ),
            ("check", "  "),
        ]);
        let env = map(&[("registryDomain", "sealos.hub"), ("registryPort", "5000")]);
        assert_eq!(
            Hook::Init.command(&labels, &env),
            "init-cri.sh sealos.hub 5000 && bash init.sh"
        );
        assert_eq!(Hook::Check.command(&labels, &env), "check.sh");
        assert_eq!(
            Hook::CleanRegistry.command(&labels, &env),
            "clean-registry.sh"
        );
        assert_eq!(Hook::ALL.len(), 7);
    }
}

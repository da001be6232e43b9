//! Env precedence and the `SEALOS_SYS_*` built-ins.
//!
//! Order, lowest first: merged image ENV < Clusterfile `spec.env` < CLI `-e`
//! < the host's `env` (per host, as sealos' `getHostEnv` merges it last) <
//! built-ins. Keys starting with `SEALOS_SYS` are reserved: users (spec, CLI,
//! host) cannot set them; such entries are dropped and returned as warnings.
//! Image ENV may set them (labring images set the CRI/image endpoints).

use std::collections::BTreeMap;
use std::fmt;

pub const RESERVED_PREFIX: &str = "SEALOS_SYS";
pub const SYS_KUBE_VERSION: &str = "SEALOS_SYS_KUBE_VERSION";
pub const SYS_SEALOS_VERSION: &str = "SEALOS_SYS_SEALOS_VERSION";
pub const SYS_RUN_MODE: &str = "SEALOS_SYS_RUN_MODE";
pub const SYS_CRI_ENDPOINT: &str = "SEALOS_SYS_CRI_ENDPOINT";
pub const SYS_IMAGE_ENDPOINT: &str = "SEALOS_SYS_IMAGE_ENDPOINT";

/// Where an env entry came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvSource {
    Image,
    Clusterfile,
    Cli,
    Host(String),
}

impl fmt::Display for EnvSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Image => f.write_str("image ENV"),
            Self::Clusterfile => f.write_str("Clusterfile spec.env"),
            Self::Cli => f.write_str("--env"),
            Self::Host(h) => write!(f, "env of host {h}"),
        }
    }
}

/// An env entry that was ignored, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvWarning {
    pub source: EnvSource,
    pub entry: String,
    pub reason: &'static str,
}

impl fmt::Display for EnvWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: ignoring {:?}: {}",
            self.source, self.entry, self.reason
        )
    }
}

/// Parses `KEY=VALUE` entries (split at the first `=`; later keys win).
/// Entries without `=` or with an empty key are returned separately.
pub fn parse_env_list(items: &[String]) -> (BTreeMap<String, String>, Vec<String>) {
    let mut map = BTreeMap::new();
    let mut bad = Vec::new();
    for item in items {
        match item.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                map.insert(k.trim().to_owned(), v.to_owned());
            }
            _ => bad.push(item.clone()),
        }
    }
    (map, bad)
}

fn user_layer(
    source: EnvSource,
    items: &[String],
    out: &mut BTreeMap<String, String>,
    warnings: &mut Vec<EnvWarning>,
) {
    let (map, bad) = parse_env_list(items);
    for entry in bad {
        warnings.push(EnvWarning {
            source: source.clone(),
            entry,
            reason: "not KEY=VALUE",
        });
    }
    for (k, v) in map {
        if k.starts_with(RESERVED_PREFIX) {
            warnings.push(EnvWarning {
                source: source.clone(),
                entry: format!("{k}={v}"),
                reason: "keys starting with SEALOS_SYS are reserved",
            });
        } else {
            out.insert(k, v);
        }
    }
}

/// The env layers of a cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvLayers {
    /// Merged image ENV of the stack.
    pub image: BTreeMap<String, String>,
    /// Clusterfile `spec.env`.
    pub spec: Vec<String>,
    /// CLI `-e/--env`.
    pub cli: Vec<String>,
}

impl EnvLayers {
    /// The same cluster layers over one image's own ENV instead of the
    /// stack's (sealos: each mount's env, `lifecycle/pkg/guest`).
    pub fn for_image(&self, image_env: &[String]) -> EnvLayers {
        EnvLayers {
            image: parse_env_list(image_env).0,
            spec: self.spec.clone(),
            cli: self.cli.clone(),
        }
    }

    /// The cluster-wide env (no host layer).
    pub fn cluster_env(&self) -> (BTreeMap<String, String>, Vec<EnvWarning>) {
        let mut env = self.image.clone();
        let mut warnings = Vec::new();
        user_layer(EnvSource::Clusterfile, &self.spec, &mut env, &mut warnings);
        user_layer(EnvSource::Cli, &self.cli, &mut env, &mut warnings);
        (env, warnings)
    }

    /// The env of one host: the cluster env overridden by the host's `env`.
    pub fn host_env(
        &self,
        host: &str,
        host_env: &[String],
    ) -> (BTreeMap<String, String>, Vec<EnvWarning>) {
        let (mut env, mut warnings) = self.cluster_env();
        user_layer(
            EnvSource::Host(host.to_owned()),
            host_env,
            &mut env,
            &mut warnings,
        );
        (env, warnings)
    }
}

/// The built-ins ferry sets (they override everything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SysEnv {
    /// Kubernetes version (the rootfs `version` label).
    pub kube_version: Option<String>,
    pub sealos_version: Option<String>,
    /// Host roles joined by `,` (e.g. `master,amd64`).
    pub run_mode: Option<String>,
}

/// `SEALOS_SYS_RUN_MODE` of a host: its roles joined by `,`, with its
/// architecture appended when the roles name none (sealos' Clusterfiles
/// carry it as a role: `master,amd64`).
pub fn run_mode(roles: &[String], arch: Option<&str>) -> String {
    let mut parts: Vec<&str> = roles.iter().map(String::as_str).collect();
    let named = parts
        .iter()
        .any(|r| crate::pipeline::check::ARCH_NAMES.contains(r));
    if let Some(a) = arch.filter(|a| !a.is_empty() && !named) {
        parts.push(a);
    }
    parts.join(",")
}

impl SysEnv {
    pub fn apply(&self, env: &mut BTreeMap<String, String>) {
        for (key, value) in [
            (SYS_KUBE_VERSION, &self.kube_version),
            (SYS_SEALOS_VERSION, &self.sealos_version),
            (SYS_RUN_MODE, &self.run_mode),
        ] {
            if let Some(v) = value {
                env.insert(key.to_owned(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests;

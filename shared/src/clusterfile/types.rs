//! The sealos `apps.sealos.io/v1beta1` `Cluster` document, field for field
//! (sealos `lifecycle/pkg/types/v1beta1/cluster.go`). Fields ferry does not
//! model are kept in `extra` maps so an unmodified sealos Clusterfile
//! round-trips. Secrets are [`Secret`]s: written to the (0600) file, never
//! shown by `Debug`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

use crate::secret::Secret;

pub const API_VERSION: &str = "apps.sealos.io/v1beta1";
pub const KIND_CLUSTER: &str = "Cluster";
pub const KIND_CONFIG: &str = "Config";

pub type Extra = BTreeMap<String, Value>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ClusterSpec,
    #[serde(default, skip_serializing_if = "ClusterStatus::is_empty")]
    pub status: ClusterStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    /// Set on the first successful apply; non-empty means later applies reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image: Vec<String>,
    #[serde(default)]
    pub ssh: Ssh,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<Host>,
    /// `K=V` items; a list because keys may repeat (CertSANS=a CertSANS=b).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Overrides the CMD of the first image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ssh {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub passwd: Secret,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pk_name: String,
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub pk_data: Secret,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pk: String,
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub pk_passwd: Secret,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub port: u16,
}

fn is_zero(p: &u16) -> bool {
    *p == 0
}

impl Ssh {
    /// This block with every empty field taken from `base` (sealos' per-host
    /// override semantics).
    pub fn over(&self, base: &Ssh) -> Ssh {
        fn pick<T: Clone + PartialEq + Default>(a: &T, b: &T) -> T {
            if *a == T::default() {
                b.clone()
            } else {
                a.clone()
            }
        }
        Ssh {
            user: pick(&self.user, &base.user),
            passwd: pick(&self.passwd, &base.passwd),
            pk_name: pick(&self.pk_name, &base.pk_name),
            pk_data: pick(&self.pk_data, &base.pk_data),
            pk: pick(&self.pk, &base.pk),
            pk_passwd: pick(&self.pk_passwd, &base.pk_passwd),
            port: pick(&self.port, &base.port),
        }
    }

    pub fn port_or_default(&self) -> u16 {
        if self.port == 0 { 22 } else { self.port }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Host {
    /// `ip` or `ip:port`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// `master` | `node` | `registry`, plus an arch (`amd64`, `arm64`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<Ssh>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterPhase {
    ClusterInProcess,
    ClusterSuccess,
    ClusterFailed,
}

impl ClusterPhase {
    pub const fn as_str(self) -> &'static str {
        match self {
            ClusterPhase::ClusterInProcess => "ClusterInProcess",
            ClusterPhase::ClusterSuccess => "ClusterSuccess",
            ClusterPhase::ClusterFailed => "ClusterFailed",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ClusterPhase>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountImage>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(
        default,
        rename = "commandCondition",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub command_conditions: Vec<Condition>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ClusterStatus {
    pub fn is_empty(&self) -> bool {
        *self == ClusterStatus::default()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MountImage {
    pub name: String,
    /// rootfs | patch | application (empty = application).
    #[serde(default, rename = "type")]
    pub kind: String,
    pub image_name: String,
    #[serde(default)]
    pub mount_point: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
}

/// `status.conditions[]` and `status.commandCondition[]` entries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    /// "True" | "False" | "Unknown"
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

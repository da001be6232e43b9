//! sealos Clusterfiles: a multi-document YAML whose first document is the
//! `apps.sealos.io/v1beta1` `Cluster`, followed by `Config` documents and
//! kubeadm/kubelet/kube-proxy configuration documents. ferry reads them
//! unmodified and writes the same schema back.

mod env;
mod hosts;
mod types;

pub use hosts::{ROLE_MASTER, ROLE_NODE, ROLE_REGISTRY, ResolvedHost};
pub use types::*;

use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::hosts::HostListError;

#[derive(Debug, thiserror::Error)]
pub enum ClusterfileError {
    #[error("Clusterfile document {doc}: invalid YAML: {source}")]
    Yaml {
        doc: usize,
        source: serde_yaml_ng::Error,
    },
    #[error("Clusterfile document {doc} has no `kind`; every document needs apiVersion and kind")]
    MissingKind { doc: usize },
    #[error("the Clusterfile has no `kind: Cluster` document")]
    NoCluster,
    #[error("the `kind: Cluster` document must come first (found it as document {doc})")]
    ClusterNotFirst { doc: usize },
    #[error("the Clusterfile has more than one `kind: Cluster` document")]
    DuplicateCluster,
    #[error("Cluster apiVersion is `{found}`, expected `{API_VERSION}`")]
    WrongApiVersion { found: String },
    #[error("Clusterfile host `{item}`: {source}")]
    BadHost { item: String, source: HostListError },
    #[error("host {addr} appears more than once in spec.hosts")]
    DuplicateHost { addr: String },
    #[error("host {addr} has both the master and the node role")]
    MasterAndNode { addr: String },
    #[error("spec.hosts has no host with the master role")]
    NoMaster,
    #[error("cannot serialize the Clusterfile: {0}")]
    Serialize(serde_yaml_ng::Error),
}

/// Any document after the Cluster, kept verbatim.
#[derive(Debug, Clone, PartialEq)]
pub struct OtherDoc {
    pub api_version: String,
    pub kind: String,
    pub value: Value,
}

impl OtherDoc {
    /// kubeadm, kubelet and kube-proxy configuration documents.
    pub fn is_kube_config(&self) -> bool {
        [
            "kubeadm.k8s.io/",
            "kubelet.config.k8s.io/",
            "kubeproxy.config.k8s.io/",
        ]
        .iter()
        .any(|p| self.api_version.starts_with(p))
    }

    pub fn is_config(&self) -> bool {
        self.api_version == API_VERSION && self.kind == KIND_CONFIG
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Clusterfile {
    pub cluster: Cluster,
    pub docs: Vec<OtherDoc>,
}

fn str_field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl Clusterfile {
    pub fn parse(text: &str) -> Result<Self, ClusterfileError> {
        let mut cluster = None;
        let mut docs = Vec::new();
        for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let index = i + 1;
            let value = Value::deserialize(de)
                .map_err(|source| ClusterfileError::Yaml { doc: index, source })?;
            if value.is_null() {
                continue; // an empty document, e.g. a leading `---`
            }
            let kind = str_field(&value, "kind");
            if kind.is_empty() {
                return Err(ClusterfileError::MissingKind { doc: index });
            }
            let api_version = str_field(&value, "apiVersion");
            if kind == KIND_CLUSTER && api_version.starts_with("apps.sealos.io/") {
                if cluster.is_some() {
                    return Err(ClusterfileError::DuplicateCluster);
                }
                if !docs.is_empty() {
                    return Err(ClusterfileError::ClusterNotFirst { doc: index });
                }
                if api_version != API_VERSION {
                    return Err(ClusterfileError::WrongApiVersion { found: api_version });
                }
                let c: Cluster = serde_yaml_ng::from_value(value)
                    .map_err(|source| ClusterfileError::Yaml { doc: index, source })?;
                cluster = Some(c);
            } else {
                docs.push(OtherDoc {
                    api_version,
                    kind,
                    value,
                });
            }
        }
        let cluster = cluster.ok_or(ClusterfileError::NoCluster)?;
        Ok(Self { cluster, docs })
    }

    pub fn config_docs(&self) -> impl Iterator<Item = &OtherDoc> {
        self.docs.iter().filter(|d| d.is_config())
    }

    pub fn kube_config_docs(&self) -> impl Iterator<Item = &OtherDoc> {
        self.docs.iter().filter(|d| d.is_kube_config())
    }

    /// The Clusterfile as ferry stores it: Cluster (with status) and the
    /// other documents, in order. `with_kube_configs = false` drops the
    /// kubeadm documents, as sealos' write-back does.
    pub fn to_yaml(&self, with_kube_configs: bool) -> Result<String, ClusterfileError> {
        let mut out =
            serde_yaml_ng::to_string(&self.cluster).map_err(ClusterfileError::Serialize)?;
        for d in &self.docs {
            if !with_kube_configs && d.is_kube_config() {
                continue;
            }
            out.push_str("---\n");
            out.push_str(&serde_yaml_ng::to_string(&d.value).map_err(ClusterfileError::Serialize)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;

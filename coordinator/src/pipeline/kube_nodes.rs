//! Node objects during `delete`: the optional drain before a host is torn
//! down and the deletion of its Node after `kubeadm reset` (sealos deletes
//! it through the API too). Both run `kubectl --kubeconfig
//! /etc/kubernetes/admin.conf ...` as an argv through the agent of a
//! remaining master (master0 first; the next one when an agent is
//! unreachable). The node name is the host's hostname, lower-cased, as
//! kubeadm registers it (asked from the host's agent, else the inventory).
//!
//! Drain: `kubectl drain <node> --ignore-daemonsets --delete-emptydir-data
//! --timeout=<t>s`, without `--force`: pods no controller would recreate
//! stop the drain instead of being lost, and the operator decides.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use ferry_shared::pipeline::Step;

use super::PipelineError;
use super::journal::Recorder;
use super::node::{self, Cmd, NodeRef};
use crate::client::ClientTls;

pub const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
/// Room for kubectl itself beyond `--timeout`.
const SLACK: Duration = Duration::from_secs(30);
const DELETE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum NodeApiError {
    #[error(
        "{host}: drain of node `{node}` (kubectl on master {master}) failed: {detail}\nnext: nothing was removed from {host} and it stays in the Clusterfile; make its pods evictable (PodDisruptionBudgets, pods without a controller) and re-run `ferry delete --drain`, or delete without --drain"
    )]
    Drain {
        host: String,
        node: String,
        master: String,
        detail: String,
    },
    #[error(
        "{host}: {what} of node `{node}`: no remaining master could run kubectl ({tried}); next: bring a master's agent back (`ferry agent status`), then {next}"
    )]
    NoMaster {
        host: String,
        what: &'static str,
        node: String,
        tried: String,
        next: String,
    },
    #[error(
        "{host}: delete of Node object `{node}` (kubectl on master {master}) failed: {detail}; next: run `kubectl --kubeconfig {ADMIN_CONF} delete node {node}` on {master}"
    )]
    Delete {
        host: String,
        node: String,
        master: String,
        detail: String,
    },
    #[error(
        "{host}: the Kubernetes node name is unknown (agent unreachable, no hostname in agents.json); the Node object was not deleted: run `kubectl delete node <its hostname>` on master0"
    )]
    NoName { host: String },
}

enum Fail {
    /// No master's agent answered (what each said).
    NoMaster(String),
    /// kubectl ran on `master` and failed.
    Failed { master: String, detail: String },
}

/// How the API is reached for one delete: the remaining masters.
pub struct NodeApi<'a> {
    pub tls: &'a ClientTls,
    pub rec: &'a Recorder,
    /// Remaining masters, master0 first.
    pub masters: &'a [NodeRef],
    /// Hostnames from the inventory, by IP (fallback for the node name).
    pub hostnames: &'a BTreeMap<IpAddr, String>,
}

fn detail(e: &PipelineError) -> String {
    match e {
        PipelineError::Command { outcome, tail, .. } => format!("{outcome}: {}", tail.trim()),
        other => other.to_string(),
    }
}

impl NodeApi<'_> {
    /// The Node name of `n`: its agent's hostname, else the inventory's.
    pub async fn node_name(&self, n: &NodeRef) -> Result<String, NodeApiError> {
        let live = match n.connect(self.tls, Step::Bootstrap).await {
            Ok(c) => c.facts().await.ok().map(|f| f.hostname),
            Err(_) => None,
        };
        live.or_else(|| self.hostnames.get(&n.ip).cloned())
            .filter(|h| !h.is_empty())
            .map(|h| h.to_ascii_lowercase())
            .ok_or_else(|| NodeApiError::NoName {
                host: n.host.clone(),
            })
    }

    /// Runs `kubectl --kubeconfig admin.conf ARGS` on the first master
    /// whose agent answers; returns that master's host.
    async fn kubectl(&self, args: &[&str], timeout: Duration) -> Result<String, Fail> {
        let mut argv = vec!["kubectl", "--kubeconfig", ADMIN_CONF];
        argv.extend_from_slice(args);
        let mut tried = Vec::new();
        for m in self.masters {
            let mut cmd = Cmd::new(&argv);
            cmd.timeout = timeout;
            match node::run(m, self.tls, self.rec, Step::Bootstrap, cmd).await {
                Ok(_) => return Ok(m.host.clone()),
                Err(e @ PipelineError::Agent { .. }) => tried.push(e.to_string()),
                Err(e) => {
                    return Err(Fail::Failed {
                        master: m.host.clone(),
                        detail: detail(&e),
                    });
                }
            }
        }
        Err(Fail::NoMaster(if tried.is_empty() {
            "no master is left in the cluster".to_string()
        } else {
            tried.join("; ")
        }))
    }

    fn error(&self, n: &NodeRef, what: &'static str, node: &str, f: Fail) -> NodeApiError {
        let (host, node) = (n.host.clone(), node.to_string());
        match (what, f) {
            (_, Fail::NoMaster(tried)) => NodeApiError::NoMaster {
                next: if what == "drain" {
                    format!("re-run (nothing was removed from {host})")
                } else {
                    format!(
                        "run `kubectl --kubeconfig {ADMIN_CONF} delete node {node}` on a master"
                    )
                },
                host,
                what,
                node,
                tried,
            },
            ("drain", Fail::Failed { master, detail }) => NodeApiError::Drain {
                host,
                node,
                master,
                detail,
            },
            (_, Fail::Failed { master, detail }) => NodeApiError::Delete {
                host,
                node,
                master,
                detail,
            },
        }
    }

    /// `kubectl drain`; an error means nothing should be torn down.
    pub async fn drain(&self, n: &NodeRef, timeout: Duration) -> Result<(), NodeApiError> {
        let node = self.node_name(n).await?;
        let t = format!("--timeout={}s", timeout.as_secs());
        let args = [
            "drain",
            &node,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            &t,
        ];
        self.kubectl(&args, timeout + SLACK)
            .await
            .map(|_| ())
            .map_err(|f| self.error(n, "drain", &node, f))
    }

    /// `kubectl delete node <name> --ignore-not-found` (a Node already gone
    /// is fine).
    pub async fn delete(&self, n: &NodeRef, node: &str) -> Result<String, NodeApiError> {
        let args = ["delete", "node", node, "--ignore-not-found"];
        self.kubectl(&args, DELETE_TIMEOUT)
            .await
            .map_err(|f| self.error(n, "delete", node, f))
    }
}

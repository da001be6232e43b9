//! `ferry status`: the cluster's health per node, as `sealos status`
//! shows it, through the agents only (no SSH): agent, kubelet, container
//! runtime, registry reachability, VIP load balancer, Kubernetes Node
//! Ready (where the API answers, read through master0's agent) and the
//! apiserver certificate's expiry. Exits non-zero when anything is
//! unhealthy.

mod probe;

use std::collections::BTreeMap;

use ferry_shared::clusterfile::ROLE_MASTER;
use ferry_shared::{EventKind, Phase};
use serde_json::Value;

use super::{CliError, Exit};
use crate::cli::ClusterStatusArgs;
use crate::client::ClientTls;
use crate::fanout;
use crate::output::Reporter;
use crate::state::{ClusterState, NodeRecord};

pub use probe::Check;

/// The registry and CRI socket sealos' images use unless their env says
/// otherwise.
const DEFAULT_REGISTRY: (&str, &str) = ("sealos.hub", "5000");
const DEFAULT_CRI_SOCKET: &str = "/var/run/containerd/containerd.sock";
const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";

pub async fn status(
    cluster: &ClusterState,
    r: &Reporter,
    a: ClusterStatusArgs,
) -> Result<Exit, CliError> {
    let unfiltered = a.select.roles.is_empty() && a.select.ips.trim().is_empty();
    let (nodes, unrecorded) = members(cluster, super::select(cluster, &a.select), unfiltered)?;
    let tls = ClientTls::from_pki(&cluster.agent_pki()?);
    let targets = targets(cluster)?;
    let (t, tl, op) = (targets.clone(), tls.clone(), r.op().to_string());
    let mut health = fanout::for_each(nodes.clone(), a.fanout.concurrency, move |n: NodeRecord| {
        let (t, tls, op) = (t.clone(), tl.clone(), op.clone());
        async move { probe::node(&n, &tls, &t, &op).await }
    })
    .await;
    // Clusterfile hosts ferry has no agent record of: shown, unhealthy.
    let mut nodes = nodes;
    for n in unrecorded {
        health.push(probe::NodeHealth::unreachable(
            "no agent recorded for this host; next: `ferry apply -f <Clusterfile>` (installs it) or `ferry agent install`".into(),
        ));
        nodes.push(n);
    }
    let ready = node_ready(cluster, &tls, r.op()).await;
    r.finish();
    r.text(&format!(
        "{:<20} {:<14} {:<7} {:<8} {:<10} {:<10} {:<10} {:<10} {:<22} {}",
        "NODE",
        "HOSTNAME",
        "ROLE",
        "AGENT",
        "KUBELET",
        "RUNTIME",
        "REGISTRY",
        "READY",
        "LB",
        "CERTS"
    ));
    let mut unhealthy = 0;
    for (n, h) in nodes.iter().zip(health) {
        let host = n.addr.to_string();
        let ready = match &ready {
            Ok(m) => m
                .get(&n.hostname.to_ascii_lowercase())
                .cloned()
                .unwrap_or_else(|| Check::Failed("no Node object".into())),
            Err(e) => Check::Failed(e.clone()),
        };
        let ok = h.healthy() && ready.healthy();
        unhealthy += usize::from(!ok);
        let mut doc = serde_json::to_value(&h).unwrap_or(Value::Null);
        doc["node_ready"] = serde_json::to_value(&ready).unwrap_or(Value::Null);
        doc["healthy"] = Value::Bool(ok);
        r.emit(
            r.event(
                &host,
                Phase::Status,
                if ok {
                    EventKind::Finished
                } else {
                    EventKind::Failed
                },
            )
            .message(doc.to_string()),
        );
        let role = if n.has_role(ROLE_MASTER) {
            "master"
        } else {
            "node"
        };
        r.text(&format!(
            "{host:<20} {:<14} {role:<7} {:<8} {:<10} {:<10} {:<10} {:<10} {:<22} {}",
            n.hostname,
            h.agent.cell(),
            h.kubelet.cell(),
            h.runtime.cell(),
            h.registry.cell(),
            ready.cell(),
            h.load_balancer.cell(),
            h.certificates.cell()
        ));
        for (what, c) in [
            ("agent", &h.agent),
            ("kubelet", &h.kubelet),
            ("runtime", &h.runtime),
            ("registry", &h.registry),
            ("node Ready", &ready),
            ("load balancer", &h.load_balancer),
            ("certificates", &h.certificates),
        ] {
            if let Check::Failed(why) = c {
                r.text(&format!("  {host}: {what}: {why}"));
            }
        }
    }
    if unhealthy > 0 {
        r.text(&format!("{unhealthy} of {} nodes unhealthy", nodes.len()));
    }
    Ok(Exit::from_failures(unhealthy))
}

/// The selected agents that are cluster members: a host `ferry delete`
/// removed keeps its agent (and inventory record) but is no longer shown.
/// With no role or host filter, the Clusterfile's hosts without an agent
/// record come second (as records with only address and roles).
fn members(
    cluster: &ClusterState,
    selected: Result<Vec<NodeRecord>, CliError>,
    unfiltered: bool,
) -> Result<(Vec<NodeRecord>, Vec<NodeRecord>), CliError> {
    let Some(cf) = crate::pipeline::load_clusterfile(cluster)? else {
        return Ok((selected?, Vec::new()));
    };
    let hosts = cf
        .cluster
        .resolved_hosts()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    // An empty inventory is not an error while the Clusterfile has hosts.
    let selected = match selected {
        Ok(s) => s,
        Err(CliError::NoTargets { .. }) if unfiltered => Vec::new(),
        Err(e) => return Err(e),
    };
    let nodes: Vec<NodeRecord> = selected
        .into_iter()
        .filter(|n| hosts.iter().any(|h| h.addr.ip == n.addr.ip))
        .collect();
    let unrecorded: Vec<NodeRecord> = if unfiltered {
        let inv = cluster.load_inventory()?;
        hosts
            .iter()
            .filter(|h| inv.find_ip(h.addr.ip).is_none())
            .map(|h| NodeRecord::unrecorded(h.addr, h.roles.clone()))
            .collect()
    } else {
        Vec::new()
    };
    if nodes.is_empty() && unrecorded.is_empty() {
        return Err(CliError::NoTargets {
            cluster: cluster.name().to_string(),
            hint: " among the Clusterfile's hosts".into(),
        });
    }
    Ok((nodes, unrecorded))
}

/// The registry and CRI socket the cluster's run used: the images' env
/// (kept in the stored Clusterfile's status) under the Clusterfile's env,
/// as the pipeline layers them; sealos' defaults otherwise.
fn targets(cluster: &ClusterState) -> Result<probe::Targets, CliError> {
    let env = match crate::pipeline::load_clusterfile(cluster)? {
        Some(cf) => {
            let mut image = BTreeMap::new();
            for m in &cf.cluster.status.mounts {
                image.extend(m.env.clone());
            }
            ferry_shared::image::EnvLayers {
                image,
                spec: cf.cluster.spec.env.clone(),
                cli: Vec::new(),
            }
            .cluster_env()
            .0
        }
        None => BTreeMap::new(),
    };
    let get = |k: &str, d: &str| env.get(k).cloned().unwrap_or_else(|| d.to_string());
    Ok(probe::Targets {
        registry: format!(
            "{}:{}",
            get("registryDomain", DEFAULT_REGISTRY.0),
            get("registryPort", DEFAULT_REGISTRY.1)
        ),
        cri_socket: get("SEALOS_SYS_CRI_ENDPOINT", DEFAULT_CRI_SOCKET),
    })
}

/// Node name → Ready, from `kubectl get nodes` on the first master that
/// answers; `Err` when no apiserver answers.
async fn node_ready(
    cluster: &ClusterState,
    tls: &ClientTls,
    op: &str,
) -> Result<BTreeMap<String, Check>, String> {
    let inv = cluster.load_inventory().map_err(|e| e.to_string())?;
    let mut last = "no master in the inventory".to_string();
    for m in inv.nodes.iter().filter(|n| n.has_role(ROLE_MASTER)) {
        let argv = [
            "kubectl",
            "--kubeconfig",
            ADMIN_CONF,
            "get",
            "nodes",
            "-o",
            "json",
        ];
        match probe::run_on(m, tls, &argv, op).await {
            Ok((out, true)) => {
                return parse_ready(&out).map_err(|e| format!("kubectl output: {e}"));
            }
            Ok((out, false)) => {
                last = format!("{}: kubectl: {}", m.addr, out.lines().last().unwrap_or(""))
            }
            Err(e) => last = format!("{}: {e}", m.addr),
        }
    }
    Err(format!("the API does not answer ({last})"))
}

fn parse_ready(json: &str) -> Result<BTreeMap<String, Check>, serde_json::Error> {
    let v: Value = serde_json::from_str(json)?;
    let mut out = BTreeMap::new();
    for item in v["items"].as_array().into_iter().flatten() {
        let name = item["metadata"]["name"].as_str().unwrap_or_default();
        let version = item["status"]["nodeInfo"]["kubeletVersion"]
            .as_str()
            .unwrap_or("");
        let ready = item["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Ready");
        let check = match ready {
            Some(c) if c["status"] == "True" => Check::Ok(version.to_string()),
            Some(c) => Check::Failed(format!(
                "NotReady: {}",
                c["message"].as_str().unwrap_or_default()
            )),
            None => Check::Failed("no Ready condition reported".into()),
        };
        out.insert(name.to_ascii_lowercase(), check);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn ready_from_node_list() {
        let json = r#"{"items":[
          {"metadata":{"name":"Node1"},"status":{"nodeInfo":{"kubeletVersion":"v1.34.4"},
            "conditions":[{"type":"MemoryPressure","status":"False"},{"type":"Ready","status":"True"}]}},
          {"metadata":{"name":"node2"},"status":{"conditions":[{"type":"Ready","status":"False","message":"PLEG is not healthy"}]}},
          {"metadata":{"name":"node3"},"status":{}}]}"#;
        let m = parse_ready(json).unwrap();
        assert_eq!(m["node1"], Check::Ok("v1.34.4".into()));
        assert_eq!(
            m["node2"],
            Check::Failed("NotReady: PLEG is not healthy".into())
        );
        assert!(!m["node3"].healthy());
        assert!(parse_ready("{").is_err());
    }
}

//! Pushing the revocation list to agents. Every agent holds the whole list
//! (generation-numbered), so a removed host's or a replaced certificate is
//! refused by every agent that received it, from its next RPC on.

use std::net::IpAddr;
use std::time::Duration;

use ferry_shared::pki::{Revoked, RevokedList};
use ferry_shared::{EventKind, Phase};

use super::TrustClient;
use crate::client::{AgentClient, ClientTls};
use crate::fanout;
use crate::output::Reporter;
use crate::state::{AgentPki, ClusterState, NodeRecord, StateError};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Pushes `list` to the agent of `node`.
pub async fn push_one(
    node: &NodeRecord,
    tls: &ClientTls,
    list: &RevokedList,
) -> Result<(), String> {
    let c = AgentClient::connect(node.addr.ip, node.agent_port, tls, CONNECT_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    TrustClient::new(&c)
        .set_revoked(list)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Pushes `list` to every agent of `nodes` (bounded fan-out); returns one
/// problem line per agent that did not take it, naming what to do.
pub async fn push_all(
    nodes: &[NodeRecord],
    tls: &ClientTls,
    list: &RevokedList,
    r: &Reporter,
) -> Vec<String> {
    let jobs: Vec<(NodeRecord, ClientTls, RevokedList)> = nodes
        .iter()
        .map(|n| (n.clone(), tls.clone(), list.clone()))
        .collect();
    let results = fanout::for_each(
        jobs,
        fanout::DEFAULT_CONCURRENCY,
        |(n, tls, list)| async move { push_one(&n, &tls, &list).await },
    )
    .await;
    let mut problems = Vec::new();
    for (n, res) in nodes.iter().zip(results) {
        let host = n.addr.to_string();
        match res {
            Ok(()) => r.emit(
                r.event(&host, Phase::Agent, EventKind::Progress)
                    .message(format!(
                        "revocation list generation {} applied",
                        list.generation
                    ))
                    .counter("revoked", list.entries.len() as u64),
            ),
            Err(e) => problems.push(not_applied(&host, list.generation, &e)),
        }
    }
    problems
}

/// The problem line of an agent that did not take the list. The list stays
/// in the cluster state: the next command that reaches the agent through
/// `install_host` (`agent install`/`upgrade`, `run`, `apply`, `add`) or
/// `rotate-certs` gives it the whole current list.
fn not_applied(host: &str, generation: u64, e: &str) -> String {
    format!(
        "{host}: the revocation list (generation {generation}) was not applied ({e}); revoked certificates still work there until it is; next: once the agent answers, run `ferry agent install` with this host (or `ferry apply`), which gives it the current list, or `ferry agent rotate-certs`"
    )
}

/// Revokes `certs` and, when that changed the list, pushes it to every
/// agent of the inventory but `skip`; returns the agents that did not take
/// it.
pub async fn revoke_and_push(
    cluster: &ClusterState,
    certs: Vec<Revoked>,
    skip: &[IpAddr],
    r: &Reporter,
) -> Result<Vec<String>, StateError> {
    let mut pki = cluster.agent_pki()?;
    if !pki.revoke(certs)? {
        return Ok(Vec::new());
    }
    let nodes: Vec<NodeRecord> = members(cluster, &pki)?
        .into_iter()
        .filter(|n| !skip.contains(&n.addr.ip))
        .collect();
    Ok(push_all(&nodes, &ClientTls::from_pki(&pki), &pki.revoked, r).await)
}

/// The agents of the inventory that are members: not hosts `ferry delete`
/// removed (whose recorded certificate is revoked).
pub fn members(cluster: &ClusterState, pki: &AgentPki) -> Result<Vec<NodeRecord>, StateError> {
    Ok(cluster
        .load_inventory()?
        .nodes
        .into_iter()
        .filter(|n| !pki.revoked.contains(&n.cert_serial))
        .collect())
}

/// Revokes the certificates of `removed` hosts (as recorded, else as their
/// agents report them) on every other agent: `ferry delete` and `agent
/// uninstall`. Returns what could not be done.
pub async fn revoke_nodes(
    cluster: &ClusterState,
    removed: &[NodeRecord],
    r: &Reporter,
) -> Result<Vec<String>, StateError> {
    let tls = ClientTls::from_pki(&cluster.agent_pki()?);
    let mut certs = Vec::new();
    let mut problems = Vec::new();
    for n in removed {
        let what = "removed host";
        if let Some(c) = n.cert_revocation(what) {
            certs.push(c);
            continue;
        }
        let asked = async {
            let c = AgentClient::connect(n.addr.ip, n.agent_port, &tls, CONNECT_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
            TrustClient::new(&c).get().await.map_err(|e| e.to_string())
        };
        match asked.await {
            Ok(t) => certs.push(Revoked {
                serial: t.cert.serial,
                what: format!("{what} {}", n.addr),
                not_after: t.cert.not_after,
            }),
            Err(e) => problems.push(format!(
                "{}: its certificate is not recorded and its agent did not say ({e}); it is not revoked — run `ferry agent rotate-certs --ca` to retire it",
                n.addr
            )),
        }
    }
    let skip: Vec<IpAddr> = removed.iter().map(|n| n.addr.ip).collect();
    problems.extend(revoke_and_push(cluster, certs, &skip, r).await?);
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_left_out_is_named_with_what_to_do() {
        let m = not_applied("10.0.0.3:22", 7, "connection refused");
        assert!(m.starts_with("10.0.0.3:22: the revocation list (generation 7)"));
        assert!(m.contains("(connection refused)"));
        assert!(m.contains("next: once the agent answers, run `ferry agent install`"));
    }
}

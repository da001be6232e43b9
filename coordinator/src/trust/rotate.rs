//! Certificate rotation over mTLS (no SSH): `ferry agent rotate-certs`
//! and the rotation `ferry agent upgrade` ends with.
//!
//! Leaves ([`rotate`]): a new coordinator certificate first (agents accept
//! it at once: the identity is the coordinator EKU, not a pin), then a new
//! certificate per agent through InstallTls, then every replaced serial is
//! revoked on every agent.
//!
//! CA ([`rotate_ca`]), with a grace period: a new CA issues from now on and
//! both are trusted (the coordinator's bundle, each agent's through
//! InstallTls, with a leaf of the new CA). Only when every agent holds both
//! does the coordinator move to a certificate of the new CA, and each agent
//! then drops the old CA. An agent that cannot be reached keeps the
//! rotation open (both CAs trusted); a re-run continues it.

use std::sync::Arc;
use std::time::Duration;

use ferry_shared::pki::{CertInfo, Revoked};
use ferry_shared::{EventKind, Phase};

use super::{TrustClient, push};
use crate::client::{AgentClient, ClientTls};
use crate::fanout;
use crate::install::issue_leaf;
use crate::output::Reporter;
use crate::state::{AgentPki, ClusterState, NodeRecord, StateError, renewal_due};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a rotation does besides the agents' certificates.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    /// Issue a new coordinator certificate first.
    pub renew_client: bool,
    /// Re-issue an agent certificate only when it is due (last third of its
    /// life) or not of the current CA and bundle.
    pub only_due: bool,
}

/// The outcome: per host, what was done or why not; and the cluster-wide
/// problems (agents that did not take the revocation list, an open CA
/// rotation).
#[derive(Debug, Default)]
pub struct Report {
    pub hosts: Vec<(String, Result<String, String>)>,
    pub problems: Vec<String>,
}

/// What became of one agent's certificate.
enum Leaf {
    /// Current and not due (only with `only_due`).
    Current,
    /// Revoked: a host `ferry delete` removed. Left alone; `ferry add` or
    /// `ferry agent install` makes it a member again.
    Removed,
    Rotated {
        old: Revoked,
        serial: String,
        not_after: i64,
    },
}

/// Whether `node` serves a certificate of the current CA with the current
/// bundle, not yet due for renewal.
fn is_current(pki: &AgentPki, cert: &CertInfo, cas: &[CertInfo]) -> bool {
    let want = CertInfo::all_from_pem(&pki.trust_bundle(), "bundle").unwrap_or_default();
    let ca = want.first();
    let mut have: Vec<&str> = cas.iter().map(|c| c.sha256.as_str()).collect();
    let mut need: Vec<&str> = want.iter().map(|c| c.sha256.as_str()).collect();
    have.sort_unstable();
    need.sort_unstable();
    ca.is_some_and(|ca| cert.issued_by(ca)) && have == need && !renewal_due(cert.not_after)
}

/// Gives `node`'s agent a new certificate of the current CA and the
/// current bundle.
async fn rotate_leaf(
    pki: &AgentPki,
    tls: &ClientTls,
    node: &NodeRecord,
    only_due: bool,
) -> Result<Leaf, String> {
    let c = AgentClient::connect(node.addr.ip, node.agent_port, tls, CONNECT_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let t = TrustClient::new(&c);
    let cur = t.get().await.map_err(|e| e.to_string())?;
    if pki.revoked.contains(&cur.cert.serial) {
        return Ok(Leaf::Removed);
    }
    if only_due && is_current(pki, &cur.cert, &cur.cas) {
        return Ok(Leaf::Current);
    }
    let leaf = issue_leaf(pki, node.addr.ip, &node.hostname)
        .map_err(|e| format!("issuing its certificate: {e}"))?;
    let new = t
        .install_tls(&pki.trust_bundle(), Some(&leaf))
        .await
        .map_err(|e| e.to_string())?;
    Ok(Leaf::Rotated {
        old: Revoked {
            serial: cur.cert.serial,
            what: format!("replaced agent certificate {}", node.addr),
            not_after: cur.cert.not_after,
        },
        serial: new.cert.serial,
        not_after: new.cert.not_after,
    })
}

/// Rotates the certificates of `targets` (bounded fan-out); records the new
/// serials in the inventory and revokes the old ones (not pushed yet).
/// Returns the PKI and the members: the targets but removed hosts.
async fn rotate_leaves(
    cluster: &ClusterState,
    r: &Reporter,
    pki: AgentPki,
    targets: &[NodeRecord],
    only_due: bool,
    report: &mut Report,
) -> Result<(AgentPki, Vec<NodeRecord>), StateError> {
    let tls = ClientTls::from_pki(&pki);
    let pki = Arc::new(pki);
    let jobs: Vec<NodeRecord> = targets.to_vec();
    let (p, t) = (pki.clone(), tls.clone());
    let results = fanout::for_each(jobs, fanout::DEFAULT_CONCURRENCY, move |n| {
        let (p, t) = (p.clone(), t.clone());
        async move { rotate_leaf(&p, &t, &n, only_due).await }
    })
    .await;
    let mut pki = match Arc::into_inner(pki) {
        Some(p) => p,
        None => cluster.agent_pki()?,
    };
    let mut inv = cluster.load_inventory()?;
    let mut replaced = Vec::new();
    let mut members = Vec::new();
    for (n, res) in targets.iter().zip(results) {
        let host = n.addr.to_string();
        if !matches!(res, Ok(Leaf::Removed)) {
            members.push(n.clone());
        }
        let line = match res {
            Ok(Leaf::Current) => Ok("certificate current".to_string()),
            Ok(Leaf::Removed) => Ok("skipped: its certificate is revoked (a removed host)".into()),
            Ok(Leaf::Rotated {
                old,
                serial,
                not_after,
            }) => {
                if let Some(rec) = inv.nodes.iter_mut().find(|x| x.addr == n.addr) {
                    rec.cert_serial = serial.clone();
                    rec.cert_not_after = not_after;
                }
                replaced.push(old);
                let msg = format!("new certificate (serial {serial})");
                r.emit(
                    r.event(&host, Phase::Agent, EventKind::Progress)
                        .message(msg.clone()),
                );
                Ok(msg)
            }
            Err(e) => Err(format!(
                "{e}; it keeps its certificate: re-run `ferry agent rotate-certs`, or `ferry agent install --force` if it stays unreachable"
            )),
        };
        report.hosts.push((host, line));
    }
    cluster.save_inventory(&inv)?;
    pki.revoke(replaced)?;
    Ok((pki, members))
}

/// Pushes the revocation list to every member agent.
async fn push_list(
    cluster: &ClusterState,
    pki: &AgentPki,
    r: &Reporter,
    report: &mut Report,
) -> Result<(), StateError> {
    let nodes = push::members(cluster, pki)?;
    let tls = ClientTls::from_pki(pki);
    report
        .problems
        .extend(push::push_all(&nodes, &tls, &pki.revoked, r).await);
    Ok(())
}

/// Rotates the agent certificates of `targets` (and the coordinator's,
/// per `rot`), then pushes the revocations to every agent. Continues an
/// open CA rotation instead.
pub async fn rotate(
    cluster: &ClusterState,
    r: &Reporter,
    targets: &[NodeRecord],
    rot: Rotation,
) -> Result<Report, StateError> {
    let mut pki = cluster.agent_pki()?;
    if pki.prev_ca.is_some() {
        return rotate_ca(cluster, r).await;
    }
    if rot.renew_client {
        pki.renew_client()?;
    }
    let mut report = Report::default();
    let (pki, _) = rotate_leaves(cluster, r, pki, targets, rot.only_due, &mut report).await?;
    push_list(cluster, &pki, r, &mut report).await?;
    Ok(report)
}

/// Replaces the agent CA of the cluster (see the module docs).
pub async fn rotate_ca(cluster: &ClusterState, r: &Reporter) -> Result<Report, StateError> {
    let mut pki = cluster.agent_pki()?;
    pki.begin_ca_rotation(cluster.name())?;
    let nodes = cluster.load_inventory()?.nodes;
    let mut report = Report::default();
    // 1. Every agent: both CAs and a certificate of the new one.
    let (mut pki, nodes) = rotate_leaves(cluster, r, pki, &nodes, true, &mut report).await?;
    let open = |why: String| {
        format!(
            "{why}; the CA rotation stays open (both CAs trusted): re-run `ferry agent rotate-certs --ca` once every agent answers"
        )
    };
    if report.hosts.iter().any(|(_, res)| res.is_err()) {
        report
            .problems
            .push(open("some agents do not hold the new CA yet".into()));
        push_list(cluster, &pki, r, &mut report).await?;
        return Ok(report);
    }
    // 2. The coordinator moves to the new CA; every agent drops the old one.
    let ca = CertInfo::from_pem(pki.ca.cert_pem(), "agent-ca.crt").map_err(|source| {
        StateError::Cert {
            path: pki.dir.join("agent-ca.crt"),
            source,
        }
    })?;
    if !pki.client_info()?.issued_by(&ca) {
        pki.renew_client()?;
    }
    let tls = ClientTls::from_pki(&pki);
    let only_new = pki.ca.cert_pem().to_string();
    let results = fanout::for_each(nodes.clone(), fanout::DEFAULT_CONCURRENCY, move |n| {
        let (tls, ca) = (tls.clone(), only_new.clone());
        async move {
            let c = AgentClient::connect(n.addr.ip, n.agent_port, &tls, CONNECT_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
            TrustClient::new(&c)
                .install_tls(&ca, None)
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await;
    let mut dropped = true;
    for (n, res) in nodes.iter().zip(results) {
        if let Err(e) = res {
            dropped = false;
            report.problems.push(open(format!(
                "{}: the old CA was not dropped ({e})",
                n.addr
            )));
        }
    }
    if dropped {
        pki.finish_ca_rotation()?;
    }
    push_list(cluster, &pki, r, &mut report).await?;
    Ok(report)
}

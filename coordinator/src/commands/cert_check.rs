//! `ferry cert --check-expiration`: per master, the certificates as they
//! are on the node (read through its agent: certificate blocks and
//! kubeconfigs without their keys), in kubeadm's table, each compared with
//! the bastion copy. A master without an agent in the inventory shows the
//! bastion copy, labelled so; an agent that does not answer is a failure.

use std::collections::BTreeMap;
use std::path::Path;

use ferry_shared::{EventKind, Phase};
use time::OffsetDateTime;

use super::cert::master_dirs;
use super::cert_expiry::{BastionCopy, Row, node_paths, node_rows, rows, table};
use super::cert_node::{CertError, Master};
use super::{CliError, Exit};
use crate::client::ClientTls;
use crate::output::Reporter;
use crate::state::ClusterState;

pub async fn check_expiration(cluster: &ClusterState, r: &Reporter) -> Result<Exit, CliError> {
    let now = OffsetDateTime::now_utc();
    let inventory = cluster.load_inventory()?;
    let tls = if inventory.nodes.is_empty() {
        None
    } else {
        Some(ClientTls::from_pki(&cluster.agent_pki()?))
    };
    let mut bad = 0;
    for (ip, dir) in master_dirs(cluster)? {
        let node = inventory.nodes.iter().find(|n| n.addr.ip.to_string() == ip);
        let (leaves, cas, source) = match (node, &tls) {
            (Some(n), Some(tls)) => match read_node(r, &ip, n.addr.ip, n.agent_port, tls).await {
                Ok(files) => {
                    let (l, c) = node_rows(&files, &dir);
                    (l, c, "on the node".to_string())
                }
                Err(e) => {
                    bad += 1;
                    r.text(&format!("[{ip}] {e}\n"));
                    r.emit(
                        r.event(&ip, Phase::Facts, EventKind::Failed)
                            .message(e.to_string()),
                    );
                    continue;
                }
            },
            _ => {
                let (l, c) = rows(&dir);
                (
                    l,
                    c,
                    format!("bastion copy {} (no agent for this master)", dir.display()),
                )
            }
        };
        r.text(&format!("[{ip}] {source}"));
        for line in table(now, &leaves, &cas) {
            r.text(&line);
        }
        r.text("");
        bad += report(r, &ip, now, &leaves, &cas, &dir);
    }
    Ok(Exit::from_failures(bad))
}

async fn read_node(
    r: &Reporter,
    host: &str,
    ip: std::net::IpAddr,
    port: u16,
    tls: &ClientTls,
) -> Result<BTreeMap<String, String>, CertError> {
    let m = Master::connect(host, ip, port, tls).await?;
    m.read_certs(r, &node_paths()).await
}

/// JSON events per certificate; returns how many are expired or unreadable.
fn report(
    r: &Reporter,
    ip: &str,
    now: OffsetDateTime,
    leaves: &[Row],
    cas: &[Row],
    dir: &Path,
) -> usize {
    let mut bad = 0;
    for row in leaves.iter().chain(cas) {
        let ev = match &row.facts {
            Ok(f) => {
                let days = (f.not_after - now).whole_days().max(0) as u64;
                if f.not_after <= now {
                    bad += 1;
                }
                let unix = |t: OffsetDateTime| t.unix_timestamp().max(0) as u64;
                let copy = match row.copy {
                    Some(c) => format!(" (read on the node; bastion copy: {})", c.as_str()),
                    None => format!(" (bastion copy {})", dir.display()),
                };
                let mut ev = r
                    .event(ip, Phase::Facts, EventKind::Finished)
                    .message(format!(
                        "certificate {} expires {}{copy}",
                        row.name, f.not_after
                    ))
                    .counter("residual_days", days)
                    .counter("not_before_unix", unix(f.not_before))
                    .counter("not_after_unix", unix(f.not_after));
                if let Some(c) = row.copy {
                    ev = ev.counter("differs_from_bastion", u64::from(c != BastionCopy::Same));
                }
                ev
            }
            Err(e) => {
                bad += 1;
                r.event(ip, Phase::Facts, EventKind::Failed)
                    .message(format!("certificate {}: {e}", row.name))
            }
        };
        if r.is_json() {
            r.emit(ev);
        }
    }
    bad
}

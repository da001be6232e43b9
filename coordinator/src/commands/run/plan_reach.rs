//! The plan's "how each host is reached" column: for every host, whether
//! the run will open SSH to it and why, found the way the run's check step
//! finds it (the recorded agent asked over mTLS for its facts, its binary
//! compared with the one the run would push). Read-only: nothing is
//! created, a cluster without recorded agents is not even contacted.

use std::path::PathBuf;
use std::sync::Arc;

use ferry_shared::HostAddr;
use ferry_shared::pipeline::{HostChange, HostReach, Plan};

use super::CliError;
use crate::client::ClientTls;
use crate::install::LocalAgent;
use crate::install::reach::{self, REUSE_TIMEOUT};
use crate::state::{ClusterState, NodeRecord};

struct Probe {
    index: usize,
    ip: std::net::IpAddr,
    change: HostChange,
    known: Option<NodeRecord>,
}

/// Fills `reach` on every host of `p`; a note says when the run's agent
/// binary is not found here (answering agents are then taken as usable).
pub async fn annotate(
    cluster: &ClusterState,
    p: &mut Plan,
    agent_bin: Option<PathBuf>,
    concurrency: usize,
    notes: &mut Vec<String>,
) -> Result<(), CliError> {
    let inv = cluster.load_inventory()?;
    let mut probes = Vec::new();
    for (index, h) in p.hosts.iter().enumerate() {
        let Ok(addr) = h.host.parse::<HostAddr>() else {
            continue;
        };
        let known = inv.find_ip(addr.ip).cloned();
        probes.push(Probe {
            index,
            ip: addr.ip,
            change: h.change,
            known,
        });
    }
    let tls = if probes.iter().any(|p| p.known.is_some()) {
        Some(ClientTls::from_pki(&cluster.agent_pki()?))
    } else {
        None
    };
    let expected = match LocalAgent::locate(agent_bin) {
        Ok(a) => Some(a.sha256),
        Err(e) => {
            if tls.is_some() {
                notes.push(format!(
                    "the agent binary a run would push is not found here ({e}): agents that answer are counted as usable without comparing their binary"
                ));
            }
            None
        }
    };
    let shared = Arc::new((tls, expected));
    let results = crate::fanout::for_each(probes, concurrency, move |pr| {
        let shared = shared.clone();
        async move {
            let (tls, expected) = &*shared;
            (
                pr.index,
                reach_of(&pr, tls.as_ref(), expected.as_deref()).await,
            )
        }
    })
    .await;
    for (index, r) in results {
        if let Some(h) = p.hosts.get_mut(index) {
            h.reach = Some(r);
        }
    }
    Ok(())
}

async fn reach_of(pr: &Probe, tls: Option<&ClientTls>, expected: Option<&str>) -> HostReach {
    if let Some(why) = reach::needs_ssh_without_probe(pr.known.as_ref(), false) {
        return match pr.change {
            // Teardown talks to agents only: no agent, nothing to undo there.
            HostChange::Remove => HostReach {
                ssh: false,
                why: format!("{why}: its teardown parts will fail"),
            },
            _ => HostReach { ssh: true, why },
        };
    }
    let (Some(known), Some(tls)) = (&pr.known, tls) else {
        return HostReach {
            ssh: true,
            why: "no agent recorded for this host".into(),
        };
    };
    // A removed host's teardown uses whatever agent answers there.
    let expected = expected.filter(|_| pr.change != HostChange::Remove);
    match reach::answering_agent(pr.ip, known.agent_port, tls, expected, REUSE_TIMEOUT).await {
        Ok(facts) => HostReach {
            ssh: false,
            why: format!("agent {} answers over mTLS", facts.agent_version),
        },
        Err(why) if pr.change == HostChange::Remove => HostReach {
            ssh: false,
            why: format!(
                "{why}: its teardown parts will fail; next: start the agent, or reset the node by hand"
            ),
        },
        Err(why) => HostReach { ssh: true, why },
    }
}

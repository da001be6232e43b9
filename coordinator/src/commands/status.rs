//! `ferry agent status`: facts from every agent over mTLS, no SSH.

use std::time::{Duration, Instant};

use ferry_shared::{EventKind, Facts, Phase};

use super::{CliError, Exit, select};
use crate::cli::StatusArgs;
use crate::client::{AgentClient, ClientError, ClientTls};
use crate::fanout;
use crate::output::{Reporter, now_ms};
use crate::state::{ClusterState, NodeRecord};

pub async fn status(cluster: &ClusterState, r: &Reporter, a: StatusArgs) -> Result<Exit, CliError> {
    let nodes = select(cluster, &a.select)?;
    let tls = ClientTls::from_pki(&cluster.agent_pki()?);
    let results = fanout::for_each(nodes.clone(), a.fanout.concurrency, move |n: NodeRecord| {
        let tls = tls.clone();
        async move {
            let t0 = Instant::now();
            let c =
                AgentClient::connect(n.addr.ip, n.agent_port, &tls, Duration::from_secs(5)).await?;
            let f = c.facts().await?;
            // Skew estimate: the node's clock minus ours at the RPC midpoint.
            let rtt = t0.elapsed().as_millis() as i64;
            Ok::<(Facts, i64), ClientError>((f.clone(), f.unix_time_ms - (now_ms() - rtt / 2)))
        }
    })
    .await;
    r.finish();
    r.text(&format!(
        "{:<22} {:<14} {:<8} {:>9} {:<9} {:<22} {:<8} {:>4} {:>8} {:>7}",
        "NODE",
        "HOSTNAME",
        "VERSION",
        "UPTIME",
        "SUPERVISOR",
        "OS",
        "ARCH",
        "CPUS",
        "MEMORY",
        "SKEW"
    ));
    let mut failed = 0;
    for (n, res) in nodes.iter().zip(results) {
        let host = n.addr.to_string();
        match res {
            Ok((f, skew)) => {
                r.emit(
                    r.event(&host, Phase::Facts, EventKind::Finished)
                        .message(serde_json::to_string(&f).unwrap_or_default())
                        .counter("uptime_ms", f.agent_uptime_ms)
                        .counter("clock_skew_ms_abs", skew.unsigned_abs()),
                );
                r.text(&format!(
                    "{host:<22} {:<14} {:<8} {:>8}s {:<9} {:<22} {:<8} {:>4} {:>6}Mi {:>6}ms",
                    f.hostname,
                    f.agent_version,
                    f.agent_uptime_ms / 1000,
                    f.supervisor,
                    truncate(&f.os_pretty_name, 22),
                    f.arch,
                    f.cpus,
                    f.memory_bytes >> 20,
                    skew
                ));
            }
            Err(e) => {
                failed += 1;
                r.emit(
                    r.event(&host, Phase::Facts, EventKind::Failed)
                        .message(e.to_string()),
                );
                r.text(&format!("{host:<22} UNREACHABLE  {e}"));
            }
        }
    }
    Ok(Exit::from_failures(failed))
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

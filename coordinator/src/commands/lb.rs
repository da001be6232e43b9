//! `ferry lb sync|status|delete`: the agents' VIP load balancer, driven over
//! mTLS in parallel (no SSH). Without `--roles`/`--ips` the targets are the
//! `node` role, like lvscare runs on workers.

use std::time::{Duration, Instant};

use ferry_shared::lb::{BackendKind, HealthCheck, LbSpec, RealServer, Scheduler, parse_addr};
use ferry_shared::{EventKind, Phase};

use super::{CliError, Exit, select};
use crate::cli::{LbCommand, LbSelectArgs, LbSyncArgs, SelectArgs};
use crate::client::{AgentClient, ClientTls};
use crate::fanout;
use crate::lb::{LbClient, NodeLbStatus};
use crate::output::{Reporter, now_ms};
use crate::state::{ClusterState, NodeRecord};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RPC_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(cluster: &ClusterState, r: &Reporter, c: LbCommand) -> Result<Exit, CliError> {
    match c {
        LbCommand::Sync(a) => sync(cluster, r, a).await,
        LbCommand::Status(a) => status(cluster, r, a).await,
        LbCommand::Delete(a) => delete(cluster, r, a).await,
    }
}

fn targets(cluster: &ClusterState, a: &LbSelectArgs) -> Result<Vec<NodeRecord>, CliError> {
    let roles = if a.roles.is_empty() && a.ips.trim().is_empty() {
        vec!["node".to_string()]
    } else {
        a.roles.clone()
    };
    select(
        cluster,
        &SelectArgs {
            roles,
            ips: a.ips.clone(),
        },
    )
}

fn usage(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(e.to_string())
}

/// The desired state from flags; the version is the wall clock in ms, so
/// later syncs win.
pub fn spec_from_args(a: &LbSyncArgs, version: u64) -> Result<LbSpec, CliError> {
    let vip = parse_addr(&a.vip, 0).map_err(usage)?;
    let real_servers = a
        .masters
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse_addr(s, vip.port()).map(|addr| RealServer { addr, weight: 1 }))
        .collect::<Result<Vec<_>, _>>()
        .map_err(usage)?;
    let spec = LbSpec {
        vip,
        real_servers,
        scheduler: a.scheduler.parse::<Scheduler>().map_err(usage)?,
        health: HealthCheck {
            path: a.health_path.clone(),
            interval_ms: a.health_interval_ms,
            timeout_ms: a.health_timeout_ms,
            healthy_threshold: a.healthy_threshold,
            unhealthy_threshold: a.unhealthy_threshold,
            ok_statuses: a.health_status.clone(),
        },
        backend: a.backend.parse::<BackendKind>().map_err(usage)?,
        version,
    };
    spec.validate().map_err(usage)?;
    Ok(spec)
}

/// Runs `f` on every target's LB client in parallel; results in order.
async fn each<R, F, Fut>(
    cluster: &ClusterState,
    nodes: &[NodeRecord],
    concurrency: usize,
    f: F,
) -> Result<Vec<Result<R, String>>, CliError>
where
    R: Send + 'static,
    F: Fn(LbClient) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Result<R, String>> + Send + 'static,
{
    let tls = ClientTls::from_pki(&cluster.agent_pki()?);
    Ok(
        fanout::for_each(nodes.to_vec(), concurrency, move |n: NodeRecord| {
            let (tls, f) = (tls.clone(), f.clone());
            async move {
                let c = AgentClient::connect(n.addr.ip, n.agent_port, &tls, CONNECT_TIMEOUT)
                    .await
                    .map_err(|e| e.to_string())?;
                f(LbClient::new(&c, RPC_TIMEOUT)).await
            }
        })
        .await,
    )
}

async fn sync(cluster: &ClusterState, r: &Reporter, a: LbSyncArgs) -> Result<Exit, CliError> {
    let version = u64::try_from(now_ms()).unwrap_or(1).max(1);
    let spec = spec_from_args(&a, version)?;
    let nodes = targets(cluster, &a.select)?;
    let t0 = Instant::now();
    let op = r.op().to_string();
    let s = spec.clone();
    let results = each(cluster, &nodes, a.select.fanout.concurrency, move |c| {
        let (s, op) = (s.clone(), op.clone());
        async move { c.set(&s, &op).await.map_err(|e| e.to_string()) }
    })
    .await?;
    let took = t0.elapsed();
    r.finish();
    let mut failed = 0;
    for (n, res) in nodes.iter().zip(results) {
        let host = n.addr.to_string();
        match res {
            Ok(reply) => {
                let what = if reply.changed {
                    "applied"
                } else {
                    "unchanged"
                };
                r.emit(
                    r.event(&host, Phase::LoadBalancer, EventKind::Finished)
                        .counter("version", reply.version)
                        .counter("changed", u64::from(reply.changed))
                        .message(format!(
                            "{} → {} members: {what} ({})",
                            spec.vip,
                            spec.real_servers.len(),
                            reply.backend
                        )),
                );
                r.text(&format!(
                    "{host:<22} {what:<9} {} {}",
                    reply.backend, spec.vip
                ));
            }
            Err(e) => {
                failed += 1;
                r.emit(
                    r.event(&host, Phase::LoadBalancer, EventKind::Failed)
                        .message(&e),
                );
                r.text(&format!("{host:<22} FAILED    {e}"));
            }
        }
    }
    r.emit(
        r.event("", Phase::LoadBalancer, EventKind::Finished)
            .counter("hosts", nodes.len() as u64)
            .counter("failed", failed as u64)
            .counter("duration_ms", took.as_millis() as u64)
            .counter("version", version),
    );
    r.text(&format!(
        "{} of {} nodes synced in {} ms (version {version})",
        nodes.len() - failed,
        nodes.len(),
        took.as_millis()
    ));
    Ok(Exit::from_failures(failed))
}

fn render(host: &str, s: &NodeLbStatus) -> String {
    if !s.configured {
        return format!("{host:<22} (no load balancer)");
    }
    let mut out = format!(
        "{host:<22} {} {} {} v{}{}",
        s.backend,
        s.vip,
        s.scheduler,
        s.version,
        if s.last_error.is_empty() {
            String::new()
        } else {
            format!("  ERROR {}", s.last_error)
        }
    );
    for m in &s.members {
        let w = m.rule_weight.map_or("-".to_string(), |w| w.to_string());
        out.push_str(&format!(
            "\n    {:<22} {:<9} weight {w:<3} {}",
            m.addr, m.state, m.last_check
        ));
    }
    out
}

async fn status(cluster: &ClusterState, r: &Reporter, a: LbSelectArgs) -> Result<Exit, CliError> {
    let nodes = targets(cluster, &a)?;
    let results = each(cluster, &nodes, a.fanout.concurrency, |c| async move {
        c.get().await.map_err(|e| e.to_string())
    })
    .await?;
    r.finish();
    let mut failed = 0;
    for (n, res) in nodes.iter().zip(results) {
        let host = n.addr.to_string();
        match res {
            Ok(s) => {
                r.emit(
                    r.event(&host, Phase::LoadBalancer, EventKind::Finished)
                        .counter("version", s.version)
                        .message(serde_json::to_string(&s).unwrap_or_default()),
                );
                r.text(&render(&host, &s));
            }
            Err(e) => {
                failed += 1;
                r.emit(
                    r.event(&host, Phase::LoadBalancer, EventKind::Failed)
                        .message(&e),
                );
                r.text(&format!("{host:<22} UNREACHABLE  {e}"));
            }
        }
    }
    Ok(Exit::from_failures(failed))
}

async fn delete(cluster: &ClusterState, r: &Reporter, a: LbSelectArgs) -> Result<Exit, CliError> {
    let nodes = targets(cluster, &a)?;
    let op = r.op().to_string();
    let results = each(cluster, &nodes, a.fanout.concurrency, move |c| {
        let op = op.clone();
        async move { c.delete(&op).await.map_err(|e| e.to_string()) }
    })
    .await?;
    r.finish();
    let mut failed = 0;
    for (n, res) in nodes.iter().zip(results) {
        let host = n.addr.to_string();
        match res {
            Ok(deleted) => {
                let what = if deleted {
                    "deleted"
                } else {
                    "nothing to delete"
                };
                r.emit(
                    r.event(&host, Phase::LoadBalancer, EventKind::Finished)
                        .counter("deleted", u64::from(deleted))
                        .message(what),
                );
                r.text(&format!("{host:<22} {what}"));
            }
            Err(e) => {
                failed += 1;
                r.emit(
                    r.event(&host, Phase::LoadBalancer, EventKind::Failed)
                        .message(&e),
                );
                r.text(&format!("{host:<22} FAILED  {e}"));
            }
        }
    }
    Ok(Exit::from_failures(failed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn sync_flags_build_a_valid_spec() {
        let c = Cli::try_parse_from([
            "ferry",
            "lb",
            "sync",
            "--masters",
            "10.0.0.2,10.0.0.3:7443",
            "--health-interval-ms",
            "1000",
            "--health-status",
            "403",
        ])
        .unwrap();
        let Command::Lb(LbCommand::Sync(a)) = c.command else {
            panic!()
        };
        let s = spec_from_args(&a, 7).unwrap();
        assert_eq!(s.vip.to_string(), "10.103.97.2:6443");
        assert_eq!(s.real_servers[0].addr.to_string(), "10.0.0.2:6443");
        assert_eq!(s.real_servers[1].addr.to_string(), "10.0.0.3:7443");
        assert_eq!((s.health.interval_ms, s.version), (1000, 7));
        assert_eq!(s.health.ok_statuses, vec![403]);
        let mut bad = a;
        bad.scheduler = "fastest".into();
        assert!(matches!(spec_from_args(&bad, 7), Err(CliError::Usage(_))));
    }
}

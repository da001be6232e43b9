//! `ferry agent install | upgrade | uninstall | rotate-certs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_shared::{EventKind, HostAddr, Phase};

use super::summary::Summary;
use super::{CliError, Exit, select, ssh_args};
use crate::cli::{
    AgentOpts, InstallArgs, RotateCertsArgs, SelectArgs, SshArgs, UninstallArgs, UpgradeArgs,
};
use crate::client::ClientTls;
use crate::fanout;
use crate::install::{self, HostJob, InstallCtx, LocalAgent};
use crate::output::Reporter;
use crate::ssh::SshTarget;
use crate::state::{ClusterState, NodeRecord};
use crate::trust::{push, rotate};

pub async fn install(
    cluster: &ClusterState,
    r: &Reporter,
    a: InstallArgs,
) -> Result<Exit, CliError> {
    let masters = ssh_args::hosts(&a.masters, a.ssh.port)?;
    let nodes = ssh_args::hosts(&a.nodes, a.ssh.port)?;
    if let Some(dup) = masters.iter().find(|m| nodes.iter().any(|n| n.ip == m.ip)) {
        return Err(CliError::Usage(format!(
            "{dup} is listed in both --masters and --nodes"
        )));
    }
    if masters.is_empty() && nodes.is_empty() {
        return Err(CliError::Usage(
            "give the hosts: --masters and/or --nodes".into(),
        ));
    }
    let mut jobs = Vec::new();
    for (list, role) in [(&masters, "master"), (&nodes, "node")] {
        // `agent install` is the SSH command: no reuse of running agents.
        for t in ssh_args::targets(&a.ssh, list)? {
            jobs.push(HostJob::ssh(t, vec![role.to_string()], None));
        }
    }
    let started = Instant::now();
    let (sum, problems) =
        run_install(cluster, r, &a.ssh, &a.agent, a.agent_port, a.force, jobs).await?;
    Ok(finish(r, "install", &sum, &problems, started))
}

pub async fn upgrade(
    cluster: &ClusterState,
    r: &Reporter,
    a: UpgradeArgs,
) -> Result<Exit, CliError> {
    let records = select(cluster, &a.select)?;
    let port = records[0].agent_port;
    if records.iter().any(|n| n.agent_port != port) {
        return Err(CliError::Usage(
            "the selected agents listen on different ports; upgrade them per port with --ips"
                .into(),
        ));
    }
    let addrs: Vec<HostAddr> = records.iter().map(|n| n.addr).collect();
    let jobs = ssh_args::targets(&a.ssh, &addrs)?
        .into_iter()
        .zip(&records)
        .map(|(target, rec)| HostJob::ssh(target, rec.roles.clone(), Some(rec.clone())))
        .collect();
    let started = Instant::now();
    let (sum, mut problems) = run_install(cluster, r, &a.ssh, &a.agent, port, false, jobs).await?;
    // Rotation on upgrade: a new coordinator certificate, and a new one for
    // each upgraded agent whose certificate is due (uploads got one already).
    let inv = cluster.load_inventory()?;
    let upgraded: Vec<NodeRecord> = records
        .iter()
        .filter_map(|n| inv.find(&n.addr).cloned())
        .collect();
    let rot = rotate::Rotation {
        renew_client: true,
        only_due: true,
    };
    let report = rotate::rotate(cluster, r, &upgraded, rot).await?;
    for (host, res) in report.hosts {
        if let Err(e) = res {
            problems.push(format!("{host}: certificate not rotated: {e}"));
        }
    }
    problems.extend(report.problems);
    Ok(finish(r, "upgrade", &sum, &problems, started))
}

pub async fn rotate_certs(
    cluster: &ClusterState,
    r: &Reporter,
    a: RotateCertsArgs,
) -> Result<Exit, CliError> {
    let started = Instant::now();
    let all = SelectArgs {
        roles: Vec::new(),
        ips: String::new(),
    };
    let nodes = select(cluster, &all)?;
    let report = if a.ca {
        rotate::rotate_ca(cluster, r).await?
    } else {
        let rot = rotate::Rotation {
            renew_client: true,
            only_due: false,
        };
        rotate::rotate(cluster, r, &nodes, rot).await?
    };
    let mut sum = Summary::default();
    for (host, res) in report.hosts {
        match res {
            Ok(detail) => sum.ok(&host, detail),
            Err(e) => {
                r.emit(
                    r.event(&host, Phase::Agent, EventKind::Failed)
                        .message(e.clone()),
                );
                sum.failed(&host, e);
            }
        }
    }
    Ok(finish(r, "rotate-certs", &sum, &report.problems, started))
}

/// Installs `jobs`; returns the per-host summary and the agents that did
/// not take the revocation of the certificates the installs replaced.
async fn run_install(
    cluster: &ClusterState,
    r: &Reporter,
    ssh: &SshArgs,
    opts: &AgentOpts,
    port: u16,
    force: bool,
    jobs: Vec<HostJob>,
) -> Result<(Summary, Vec<String>), CliError> {
    let agent = LocalAgent::locate(opts.agent_bin.clone())?;
    let pki = Arc::new(cluster.agent_pki()?);
    let ctx = Arc::new(InstallCtx {
        tls: ClientTls::from_pki(&pki),
        agent,
        pki,
        ssh: ssh_args::options(ssh, cluster)?,
        port,
        force,
        ready_timeout: Duration::from_secs(opts.ready_timeout.max(1)),
        reporter: r.clone(),
        remember: Some(cluster.dir().to_path_buf()),
    });
    let hosts: Vec<String> = jobs.iter().map(|j| j.addr.to_string()).collect();
    let c = ctx.clone();
    let results = fanout::for_each(jobs, opts.concurrency, move |job| {
        install::install_host(job, c.clone())
    })
    .await;
    drop(ctx);
    let mut inv = cluster.load_inventory()?;
    let mut sum = Summary::default();
    let mut replaced = Vec::new();
    for (host, res) in hosts.iter().zip(results) {
        match res {
            Ok(rec) => {
                sum.ok(
                    host,
                    format_args!(
                        "{} agent {} ({})",
                        rec.hostname, rec.agent_version, rec.supervisor
                    ),
                );
                replaced.extend(rec.replaced_cert.clone());
                inv.upsert(rec);
            }
            Err(e) => {
                r.emit(
                    r.event(host, e.phase(), EventKind::Failed)
                        .message(e.to_string()),
                );
                sum.failed(host, format_args!("[{}] {e}", e.phase()));
            }
        }
    }
    cluster.save_inventory(&inv)?;
    let problems = push::revoke_and_push(cluster, replaced, &[], r).await?;
    Ok((sum, problems))
}

pub async fn uninstall(
    cluster: &ClusterState,
    r: &Reporter,
    a: UninstallArgs,
) -> Result<Exit, CliError> {
    let started = Instant::now();
    let addrs: Vec<HostAddr> = if a.select.ips.is_empty() {
        select(cluster, &a.select)?
            .iter()
            .map(|n: &NodeRecord| n.addr)
            .collect()
    } else {
        ssh_args::hosts(&a.select.ips, a.ssh.port)?
    };
    let opts = ssh_args::options(&a.ssh, cluster)?;
    // SSH only for hosts whose agent does not answer: credentials are
    // needed (and checked) only then.
    let targets: Vec<Result<SshTarget, String>> = match ssh_args::targets(&a.ssh, &addrs) {
        Ok(t) => t.into_iter().map(Ok).collect(),
        Err(e) => addrs.iter().map(|_| Err(e.to_string())).collect(),
    };
    let tls = ClientTls::from_pki(&cluster.agent_pki()?);
    let inv = cluster.load_inventory()?;
    let jobs: Vec<install::RemoveJob> = addrs
        .iter()
        .zip(targets)
        .map(|(addr, target)| install::RemoveJob {
            ip: addr.ip,
            host: addr.to_string(),
            known: inv.find(addr).cloned(),
            target,
        })
        .collect();
    let rr = r.clone();
    let results = fanout::for_each(jobs, a.fanout.concurrency, move |job| {
        install::remove_host(job, opts.clone(), tls.clone(), rr.clone())
    })
    .await;
    let mut inv = cluster.load_inventory()?;
    let mut sum = Summary::default();
    let mut removed = Vec::new();
    for (addr, res) in addrs.iter().zip(results) {
        let host = addr.to_string();
        match res {
            Ok(()) => {
                removed.extend(inv.find(addr).cloned());
                inv.remove(addr);
                sum.ok(&host, "removed");
            }
            Err(e) => {
                r.emit(
                    r.event(&host, e.phase(), EventKind::Failed)
                        .message(e.to_string()),
                );
                sum.failed(&host, format_args!("[{}] {e}", e.phase()));
            }
        }
    }
    cluster.save_inventory(&inv)?;
    let problems = push::revoke_nodes(cluster, &removed, r).await?;
    Ok(finish(r, "uninstall", &sum, &problems, started))
}

/// Prints the summary and the problems, emits the cluster-wide `agent`
/// event; a problem fails the command like a failed host.
fn finish(r: &Reporter, what: &str, sum: &Summary, problems: &[String], started: Instant) -> Exit {
    r.finish();
    let mut exit = sum.print(r, &format!("agent {what}"), started);
    for p in problems {
        r.emit(
            r.event("", Phase::Agent, EventKind::Failed)
                .message(p.clone()),
        );
        r.text(&format!("  {p}"));
        exit = Exit::HostsFailed;
    }
    r.emit(
        r.event("", Phase::Agent, sum.kind())
            .message(format!("agent {what}"))
            .counter("hosts", sum.total() as u64)
            .counter("failed", sum.failed_count() as u64)
            .counter("duration_ms", started.elapsed().as_millis() as u64),
    );
    exit
}

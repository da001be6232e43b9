//! `ferry add`, `ferry delete`, `ferry reset`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ferry_shared::clusterfile::{Clusterfile, Host, ROLE_MASTER, ROLE_NODE, ResolvedHost};
use ferry_shared::lb::{BackendKind, HealthCheck, LbSpec, RealServer, Scheduler};

use super::{CliError, Exit, ssh_args};
use crate::cli::{AddArgs, DeleteArgs, ResetArgs};
use crate::client::ClientTls;
use crate::fanout;
use crate::install;
use crate::lb::LbClient;
use crate::output::{Reporter, now_ms};
use crate::pipeline::kube_nodes::NodeApi;
use crate::pipeline::teardown::Teardown;
use crate::pipeline::{JOURNAL_FILE, Recorder, load_clusterfile, save_clusterfile};
use crate::state::ClusterState;

fn usage(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(e.to_string())
}

fn stored(cluster: &ClusterState) -> Result<Clusterfile, CliError> {
    load_clusterfile(cluster)?.ok_or_else(|| {
        usage(format!(
            "cluster `{}` has no Clusterfile in {}: run `ferry run` or `ferry apply` first",
            cluster.name(),
            cluster.dir().display()
        ))
    })
}

/// `ferry add`: the new hosts join the stored Clusterfile as one group per
/// role; the SSH flags given (not their defaults) become the group's
/// `ssh:` block, so this and every later command reach those hosts that
/// way (sealos' `verifyAndSetNodes`).
pub async fn add(cluster: &ClusterState, r: &Reporter, a: AddArgs) -> Result<Exit, CliError> {
    let mut cf = stored(cluster)?;
    let old = cf.cluster.resolved_hosts().map_err(usage)?;
    for (list, role) in [(&a.masters, ROLE_MASTER), (&a.nodes, ROLE_NODE)] {
        let addrs = ssh_args::hosts(list, a.ssh.args.port)?;
        if let Some(dup) = addrs.iter().find(|x| old.iter().any(|o| o.addr.ip == x.ip)) {
            return Err(usage(format!("{dup} is already in the cluster")));
        }
        if !addrs.is_empty() {
            cf.cluster.spec.hosts.push(Host {
                ips: addrs.iter().map(|x| x.to_string()).collect(),
                roles: vec![role.to_string()],
                env: Vec::new(),
                ssh: a.ssh.given.clone(),
            });
        }
    }
    if cf.cluster.resolved_hosts().map_err(usage)?.len() == old.len() {
        return Err(usage("give the hosts to add: --masters and/or --nodes"));
    }
    let o = super::run::ExecOpts {
        env: Vec::new(),
        ssh: &a.ssh.args,
        agent: &a.agent,
        topology: a.relay.topology(),
        insecure: a.insecure.clone(),
        upgrade: Default::default(),
    };
    super::run::execute(cluster, r, cf, o).await
}

fn lb_spec(masters: &[ResolvedHost], vip: std::net::Ipv4Addr) -> Option<LbSpec> {
    let real_servers = masters
        .iter()
        .filter_map(|m| match m.addr.ip {
            std::net::IpAddr::V4(ip) => Some(RealServer {
                addr: std::net::SocketAddrV4::new(ip, 6443),
                weight: 1,
            }),
            std::net::IpAddr::V6(_) => None,
        })
        .collect();
    Some(LbSpec {
        vip: std::net::SocketAddrV4::new(vip, 6443),
        real_servers,
        scheduler: Scheduler::Rr,
        health: HealthCheck::default(),
        backend: BackendKind::Auto,
        version: u64::try_from(now_ms()).unwrap_or(1).max(1),
    })
}

fn node_ref(
    cluster: &ClusterState,
    h: &ResolvedHost,
) -> Result<crate::pipeline::node_ref::NodeRef, CliError> {
    let inv = cluster.load_inventory()?;
    let port = inv
        .nodes
        .iter()
        .find(|n| n.addr.ip == h.addr.ip)
        .map(|n| n.agent_port)
        .unwrap_or(crate::install::DEFAULT_AGENT_PORT);
    Ok(crate::pipeline::node_ref::NodeRef {
        host: h.addr.to_string(),
        ip: h.addr.ip,
        agent_port: port,
    })
}

/// Tears down `remove` (host strings), updates the stored Clusterfile and
/// re-syncs the workers' load balancer when masters went away. Node
/// objects are deleted through the remaining masters; with `td.drain`, a
/// host whose drain fails is left as it is (and in the Clusterfile).
pub async fn remove_hosts(
    cluster: &ClusterState,
    td: &Teardown,
    cf: &Clusterfile,
    remove: &[String],
) -> Result<Vec<String>, CliError> {
    let hosts = cf.cluster.resolved_hosts().map_err(usage)?;
    let m0 = cf.cluster.master0().map_err(usage)?;
    let mut problems = Vec::new();
    let mut masters_changed = false;
    let hostnames = cluster
        .load_inventory()?
        .nodes
        .iter()
        .map(|n| (n.addr.ip, n.hostname.clone()))
        .collect();
    let mut masters = Vec::new();
    for h in hosts
        .iter()
        .filter(|h| h.has_role(ROLE_MASTER) && !remove.contains(&h.addr.to_string()))
    {
        let n = node_ref(cluster, h)?;
        if h.addr.ip == m0.addr.ip {
            masters.insert(0, n);
        } else {
            masters.push(n);
        }
    }
    let api = NodeApi {
        tls: &td.tls,
        rec: &td.rec,
        masters: &masters,
        hostnames: &hostnames,
    };
    let mut kept = Vec::new();
    for h in hosts
        .iter()
        .filter(|h| remove.contains(&h.addr.to_string()))
    {
        if h.addr.ip == m0.addr.ip {
            return Err(usage(format!(
                "{} is master0 and cannot be deleted (use `ferry reset`)",
                h.addr
            )));
        }
        let n = node_ref(cluster, h)?;
        if let Some(t) = td.drain
            && let Err(e) = api.drain(&n, t).await
        {
            problems.push(e.to_string());
            kept.push(h.addr.to_string());
            continue;
        }
        masters_changed |= h.has_role(ROLE_MASTER);
        problems.extend(
            td.remove_host(h, &n, Some(&api))
                .await
                .into_iter()
                .map(|p| format!("{}: {p}", h.addr)),
        );
    }
    let mut new = cf.clone();
    for g in &mut new.cluster.spec.hosts {
        g.ips.retain(|ip| {
            let addr = hosts
                .iter()
                .find(|h| h.addr.to_string() == *ip || h.addr.ip.to_string() == *ip);
            !addr.is_some_and(|h| {
                let a = h.addr.to_string();
                remove.contains(&a) && !kept.contains(&a)
            })
        });
    }
    new.cluster.spec.hosts.retain(|g| !g.ips.is_empty());
    save_clusterfile(cluster, &new)?;
    // Their agent certificates stop working on every other agent at once.
    let gone_ips: Vec<_> = hosts
        .iter()
        .map(|h| (h.addr.ip, h.addr.to_string()))
        .filter(|(_, a)| remove.contains(a) && !kept.contains(a))
        .map(|(ip, _)| ip)
        .collect();
    let gone: Vec<_> = cluster
        .load_inventory()?
        .nodes
        .into_iter()
        .filter(|n| gone_ips.contains(&n.addr.ip))
        .collect();
    let r = td.rec.reporter();
    problems.extend(crate::trust::push::revoke_nodes(cluster, &gone, r).await?);
    if masters_changed {
        let left = new.cluster.resolved_hosts().map_err(usage)?;
        let masters: Vec<ResolvedHost> = left
            .iter()
            .filter(|h| h.has_role(ROLE_MASTER))
            .cloned()
            .collect();
        let vip_text = td.vip();
        let vip = match vip_text.parse::<std::net::Ipv4Addr>() {
            Ok(v) => Some(v),
            Err(_) => {
                problems.push(format!(
                    "load balancer re-sync: the cluster VIP `{vip_text}` is not an IPv4 address; \
                     fix defaultVIP in the Clusterfile's env, then `ferry lb sync`"
                ));
                None
            }
        };
        if let Some(spec) = vip.and_then(|vip| lb_spec(&masters, vip)) {
            for w in left.iter().filter(|h| h.has_role(ROLE_NODE)) {
                let n = node_ref(cluster, w)?;
                let res = async {
                    let c = n
                        .connect(&td.tls, ferry_shared::pipeline::Step::LbSync)
                        .await
                        .map_err(|e| e.to_string())?;
                    LbClient::new(&c, Duration::from_secs(30))
                        .set(&spec, td.rec.reporter().op())
                        .await
                        .map_err(|e| e.to_string())
                }
                .await;
                if let Err(e) = res {
                    problems.push(format!("{}: load balancer re-sync: {e}", w.addr));
                }
            }
        }
    }
    Ok(problems)
}

fn report(r: &Reporter, what: &str, problems: &[String], started: Instant) -> Exit {
    r.finish();
    if problems.is_empty() {
        r.text(&format!(
            "{what}: done in {:.2}s",
            started.elapsed().as_secs_f64()
        ));
        Exit::Ok
    } else {
        r.text(&format!(
            "{what}: {} things could not be cleaned:",
            problems.len()
        ));
        for p in problems {
            r.text(&format!("  {p}"));
        }
        Exit::HostsFailed
    }
}

pub async fn delete(cluster: &ClusterState, r: &Reporter, a: DeleteArgs) -> Result<Exit, CliError> {
    let started = Instant::now();
    let cf = stored(cluster)?;
    let hosts = cf.cluster.resolved_hosts().map_err(usage)?;
    let mut remove = Vec::new();
    for (list, role) in [(&a.masters, ROLE_MASTER), (&a.nodes, ROLE_NODE)] {
        for x in ferry_shared::parse_host_list(list).map_err(CliError::Hosts)? {
            let h = hosts
                .iter()
                .find(|h| h.addr.ip == x.ip && h.has_role(role))
                .ok_or_else(|| {
                    usage(format!(
                        "{} is not a {role} of cluster `{}`",
                        x.ip,
                        cluster.name()
                    ))
                })?;
            remove.push(h.addr.to_string());
        }
    }
    if remove.is_empty() {
        return Err(usage("give the hosts to delete: --masters and/or --nodes"));
    }
    let rec = Recorder::open(cluster.dir(), r.clone())?;
    let mut td = Teardown::new(
        rec,
        ClientTls::from_pki(&cluster.agent_pki()?),
        cluster.name(),
        &cf,
    );
    td.drain = a.drain.timeout();
    let problems = remove_hosts(cluster, &td, &cf, &remove).await?;
    Ok(report(r, "delete", &problems, started))
}

pub async fn reset(cluster: &ClusterState, r: &Reporter, a: ResetArgs) -> Result<Exit, CliError> {
    let started = Instant::now();
    let cf = stored(cluster)?;
    let hosts = cf.cluster.resolved_hosts().map_err(usage)?;
    let rec = Recorder::open(cluster.dir(), r.clone())?;
    let mut td = Teardown::new(
        rec,
        ClientTls::from_pki(&cluster.agent_pki()?),
        cluster.name(),
        &cf,
    );
    td.purge = !a.keep_agents;
    let td = std::sync::Arc::new(td);
    let mut problems = Vec::new();
    // Workers in parallel, then masters one at a time (sealos' order).
    let workers: Vec<ResolvedHost> = hosts
        .iter()
        .filter(|h| !h.has_role(ROLE_MASTER))
        .cloned()
        .collect();
    let mut refs = BTreeMap::new();
    for h in &hosts {
        refs.insert(h.addr.ip, node_ref(cluster, h)?);
    }
    let (t, rf) = (td.clone(), refs.clone());
    let res = fanout::for_each(workers.clone(), a.agent.concurrency, move |h| {
        let (t, n) = (t.clone(), rf.get(&h.addr.ip).cloned());
        async move {
            match n {
                Some(n) => t
                    .clean_host(&h, &n)
                    .await
                    .into_iter()
                    .map(|p| format!("{}: {p}", h.addr))
                    .collect(),
                None => vec![format!("{}: no agent record", h.addr)],
            }
        }
    })
    .await;
    problems.extend(res.into_iter().flatten());
    for h in hosts.iter().filter(|h| h.has_role(ROLE_MASTER)) {
        if let Some(n) = refs.get(&h.addr.ip) {
            problems.extend(
                td.clean_host(h, n)
                    .await
                    .into_iter()
                    .map(|p| format!("{}: {p}", h.addr)),
            );
        }
    }
    if !a.keep_agents {
        problems.extend(remove_agents(cluster, r, &cf, &a).await?);
    }
    // Keep the old Clusterfile and journal for the record, like sealos.
    let ts = now_ms() / 1000;
    for f in [crate::pipeline::CLUSTERFILE, JOURNAL_FILE] {
        let p = cluster.dir().join(f);
        if p.exists()
            && let Err(e) = std::fs::rename(&p, cluster.dir().join(format!("{f}.{ts}")))
        {
            problems.push(format!("bastion: renaming {}: {e}", p.display()));
        }
    }
    for d in ["mounts", "etc", "pki/kubernetes"] {
        let p = cluster.dir().join(d);
        if p.exists()
            && let Err(e) = std::fs::remove_dir_all(&p)
        {
            problems.push(format!("bastion: removing {}: {e}", p.display()));
        }
    }
    Ok(report(r, "reset", &problems, started))
}

/// Removes every host's agent: through the agent itself where it answers
/// (no SSH), over SSH otherwise; the inventory forgets the removed ones.
async fn remove_agents(
    cluster: &ClusterState,
    r: &Reporter,
    cf: &Clusterfile,
    a: &ResetArgs,
) -> Result<Vec<String>, CliError> {
    let mut problems = Vec::new();
    let targets = super::run::targets(cf, &a.ssh)?;
    let opts = ssh_args::options(&a.ssh, cluster)?;
    let tls = ClientTls::from_pki(&cluster.agent_pki()?);
    let inv = cluster.load_inventory()?;
    let jobs: Vec<_> = targets
        .into_iter()
        .map(|(ip, target)| {
            let known = inv.find_ip(ip).cloned();
            let host = known
                .as_ref()
                .map_or(ip.to_string(), |k| k.addr.to_string());
            install::RemoveJob {
                ip,
                host,
                known,
                target,
            }
        })
        .collect();
    let rr = r.clone();
    let res = fanout::for_each(jobs, a.agent.concurrency, move |job| {
        let (opts, tls, r) = (opts.clone(), tls.clone(), rr.clone());
        async move { (job.ip, install::remove_host(job, opts, tls, r).await) }
    })
    .await;
    let mut inv = cluster.load_inventory()?;
    for (ip, res) in res {
        match res {
            Ok(()) => inv.nodes.retain(|n| n.addr.ip != ip),
            Err(e) => problems.push(format!("{ip}: agent uninstall: {e}")),
        }
    }
    cluster.save_inventory(&inv)?;
    Ok(problems)
}

//! The check step: agents installed or upgraded over SSH while the images
//! load on the bastion, then per host the probes of `probe.rs`; every
//! problem of every host is reported together.
//!
//! Invariant: nothing on a node changes here beyond the agent install.

mod probe;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferry_shared::EventKind;
use ferry_shared::clusterfile::{ROLE_MASTER, ResolvedHost};
use ferry_shared::image::EnvLayers;
use ferry_shared::kubeadm::HostTraits;
use ferry_shared::pipeline::Step;

use super::PipelineError;
use super::ctx::{Ctx, Inputs};
use super::images;
use super::journal::Recorder;
use super::node::NodeRef;
use crate::fanout;
use crate::install::{self, HostJob};
use crate::state::ClusterState;

/// The registry port when the image env sets none (sealos' default).
const DEFAULT_REGISTRY_PORT: u16 = 5000;

/// What the check step found, handed to the images step.
pub struct Checked {
    pub nodes: BTreeMap<IpAddr, NodeRef>,
    pub hostnames: BTreeMap<IpAddr, String>,
    /// Kubernetes arch name per host (Facts).
    pub arches: BTreeMap<IpAddr, String>,
    pub images: Vec<images::LoadedImage>,
    /// Init system and kernel features of the hosts, for kubeadm defaults.
    pub traits: HostTraits,
}

/// Installs or upgrades the agents and loads the images (bastion only) at
/// the same time, then probes every host; all problems of all hosts are
/// reported together. Nothing on a node changes here beyond the agent.
pub async fn check(
    state: &ClusterState,
    rec: &Recorder,
    inp: &Inputs,
    hosts: &[ResolvedHost],
) -> Result<Checked, PipelineError> {
    let step = Step::Check;
    rec.step_event(
        step,
        "",
        EventKind::Started,
        &format!("{} hosts", hosts.len()),
    );
    let masters = hosts.iter().filter(|h| h.has_role(ROLE_MASTER)).count();
    if masters % 2 == 0 {
        rec.step_event(
            step,
            "",
            EventKind::Progress,
            &format!(
                "warning: {masters} masters: an even count gives etcd no extra fault tolerance"
            ),
        );
    }
    let mut problems = Vec::new();
    let known = state.load_inventory()?;
    let jobs: Vec<HostJob> = hosts
        .iter()
        .map(|h| HostJob {
            addr: h.addr,
            target: inp
                .targets
                .get(&h.addr.ip)
                .cloned()
                .unwrap_or_else(|| Err("no SSH settings for this host".into())),
            roles: h.roles.clone(),
            known: known.find_ip(h.addr.ip).cloned(),
        })
        .collect();
    let job_hosts: Vec<&ResolvedHost> = hosts.iter().collect();
    // Loading reads (and may unpack) on the bastion only: it runs beside
    // the installs.
    let (src, names) = (inp.images.clone(), inp.cf.cluster.spec.image.clone());
    let load = tokio::task::spawn_blocking(move || images::load(src.as_ref(), &names));
    let ictx = inp.install.clone();
    let results = fanout::for_each(jobs, inp.concurrency, move |job| {
        install::install_host(job, ictx.clone())
    })
    .await;
    let loaded = match load.await {
        Ok(r) => r,
        Err(e) => Err(PipelineError::cluster(Step::Images, e)),
    };
    let mut inv = state.load_inventory()?;
    let mut nodes = BTreeMap::new();
    let mut agent_errors = Vec::new();
    let mut replaced = Vec::new();
    for (h, res) in job_hosts.iter().zip(results) {
        match res {
            Ok(recd) => {
                replaced.extend(recd.replaced_cert.clone());
                nodes.insert(
                    h.addr.ip,
                    NodeRef {
                        host: h.addr.to_string(),
                        ip: h.addr.ip,
                        agent_port: recd.agent_port,
                    },
                );
                inv.upsert(recd);
            }
            Err(e) => {
                agent_errors.push(format!("{}: agent not ready: [{}] {e}", h.addr, e.phase()))
            }
        }
    }
    state.save_inventory(&inv)?;
    // The certificates the uploads replaced stop working on every agent.
    for p in crate::trust::push::revoke_and_push(state, replaced, &[], rec.reporter()).await? {
        rec.step_event(step, "", EventKind::Progress, &format!("warning: {p}"));
    }
    problems.extend(agent_errors);
    let loaded = if inp.cf.cluster.spec.image.is_empty() {
        problems.push("no image: give IMAGE arguments or spec.image".into());
        Vec::new()
    } else {
        match loaded {
            Ok(l) => l,
            Err(e) => {
                problems.push(format!(
                    "{e}; next: check the name (`ferry images`), `ferry pull` it or give an image directory"
                ));
                Vec::new()
            }
        }
    };
    let (tls, op) = (inp.install.tls.clone(), rec.reporter().op().to_string());
    let probed = fanout::for_each(
        nodes.values().cloned().collect(),
        inp.concurrency,
        move |n: NodeRef| {
            let (tls, op) = (tls.clone(), op.clone());
            async move { (n.ip, probe::probe(&n, &tls, &op).await) }
        },
    )
    .await;
    let mut probes = BTreeMap::new();
    for (ip, res) in probed {
        match res {
            Ok(p) => {
                let host = nodes.get(&ip).map(|n| n.host.clone()).unwrap_or_default();
                rec.step_event(
                    step,
                    &host,
                    EventKind::Progress,
                    &format!(
                        "hostname {}, {}, clock {:+} ms, {} listening sockets",
                        p.facts.hostname,
                        p.facts.arch,
                        p.skew_ms,
                        p.listeners.len()
                    ),
                );
                probes.insert(ip, p);
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    let journal =
        std::fs::read_to_string(state.dir().join(super::JOURNAL_FILE)).unwrap_or_default();
    let touched = probe::touched_hosts(&journal);
    let fresh: BTreeSet<IpAddr> = hosts
        .iter()
        .filter(|h| !touched.contains(&h.addr.to_string()))
        .map(|h| h.addr.ip)
        .collect();
    let layers = Ctx::stack(&loaded).ok().map(|stack| EnvLayers {
        image: stack.merged_env(),
        spec: inp.cf.cluster.spec.env.clone(),
        cli: inp.cli_env.clone(),
    });
    let registry_port = move |h: &ResolvedHost| -> u16 {
        layers
            .as_ref()
            .and_then(|l| {
                let (env, _) = l.host_env(&h.addr.to_string(), &h.env);
                env.get("registryPort").and_then(|p| p.trim().parse().ok())
            })
            .unwrap_or(DEFAULT_REGISTRY_PORT)
    };
    let mut archs: Vec<&str> = loaded.iter().filter_map(|i| i.arch.as_deref()).collect();
    archs.sort_unstable();
    archs.dedup();
    if archs.len() > 1 {
        problems.push(format!(
            "the images are built for different architectures ({}); use images of one architecture",
            archs.join(", ")
        ));
    }
    let verdict = probe::Verdict {
        hosts,
        probes: &probes,
        fresh: &fresh,
        registry_port: &registry_port,
        image_arch: archs.first().copied().filter(|_| archs.len() == 1),
        agent_port: inp.install.port,
    };
    let (found, busy) = verdict.problems();
    problems.extend(found);
    let traits = match probe::host_traits(&probes, &nodes) {
        Ok(t) => t,
        Err(p) => {
            problems.push(p);
            HostTraits::default()
        }
    };
    for (ip, ports) in busy {
        let Some(n) = nodes.get(&ip) else { continue };
        let inodes: Vec<u64> = ports.iter().map(|b| b.listener.inode).collect();
        let owners = probe::owners(n, &inp.install.tls, rec.reporter().op(), &inodes).await;
        for b in &ports {
            problems.push(probe::busy_line(&n.host, b, owners.get(&b.listener.inode)));
        }
    }
    if !problems.is_empty() {
        let detail = format!(
            "{} problem{} (nothing was changed on the nodes beyond the agents); fix them and re-run:\n  - {}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            problems.join("\n  - ")
        );
        rec.step_event(step, "", EventKind::Failed, &detail);
        return Err(PipelineError::cluster(step, detail));
    }
    rec.step_event(step, "", EventKind::Finished, "");
    let hostnames = probes
        .iter()
        .map(|(ip, p)| (*ip, p.facts.hostname.clone()))
        .collect();
    let arches = probes
        .iter()
        .map(|(ip, p)| (*ip, p.facts.arch.clone()))
        .collect();
    Ok(Checked {
        nodes,
        hostnames,
        arches,
        images: loaded,
        traits,
    })
}

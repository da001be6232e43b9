//! The check step's probes through the agents and its verdict: per host the
//! agent's Facts (clock read between two bastion timestamps, arch) and the
//! listening TCP sockets (`/proc/net/tcp{,6}`, read through Exec; no shell
//! for the read), the owners of sockets on needed ports; then every
//! problem of every host, collected into one list.
//!
//! Invariant: nothing here changes a node.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use ferry_shared::clusterfile::ResolvedHost;
use ferry_shared::kubeadm::HostTraits;
use ferry_shared::pipeline::check::{
    self as pure, BusyPort, HostArch, Listener, busy_ports, clock_skew_ms, needed_ports,
    skew_too_large,
};
use ferry_shared::pipeline::{Journal, Outcome, Step};
use ferry_shared::{ExecSpec, Facts};
use futures::StreamExt;

use super::super::PipelineError;
use super::super::node::NodeRef;
use crate::client::{AgentClient, ClientTls, ExecItem};
use crate::output::now_ms;

const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// Output bytes kept from a probe command (a busy node's socket table is
/// a few hundred KiB at most).
const MAX_PROBE_OUTPUT: usize = 8 << 20;

/// What one host told the check.
#[derive(Debug, Clone)]
pub struct HostProbe {
    pub facts: Facts,
    /// Host clock minus bastion clock (ms).
    pub skew_ms: i64,
    pub listeners: Vec<Listener>,
    pub traits: NodeTraits,
}

/// What one host's init system and kernel offer (see `HostTraits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeTraits {
    pub systemd: bool,
    pub ipvs: bool,
    pub cgroup_v1: bool,
    pub conntrack_max_fixed: bool,
}

/// PID 1's name, the cgroup filesystem type, IPVS (built in, loaded or
/// an installed module) and whether `nf_conntrack_max` is read-only, read
/// through Exec without a shell.
async fn traits(client: &AgentClient, host: &str, op: &str) -> Result<NodeTraits, PipelineError> {
    let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    let (comm, _) = capture(client, host, argv(&["cat", "/proc/1/comm"]), op).await?;
    let (fs, ok) = capture(
        client,
        host,
        argv(&["stat", "-f", "-c", "%T", "/sys/fs/cgroup"]),
        op,
    )
    .await?;
    if !ok {
        return Err(PipelineError::host(
            host,
            Step::Check,
            "cannot stat /sys/fs/cgroup on the node; next: mount the cgroup filesystem (the kubelet needs it)",
        ));
    }
    let (_, loaded) = capture(client, host, argv(&["cat", "/proc/net/ip_vs"]), op).await?;
    let ipvs = loaded
        || capture(client, host, argv(&["modinfo", "-n", "ip_vs"]), op)
            .await
            .map(|(_, ok)| ok)
            .unwrap_or(false);
    // 0444 outside the initial network namespace (absent: module not
    // loaded yet; kube-proxy loads it and can then set it).
    let (mode, _) = capture(
        client,
        host,
        argv(&[
            "stat",
            "-c",
            "%a",
            "/proc/sys/net/netfilter/nf_conntrack_max",
        ]),
        op,
    )
    .await?;
    Ok(NodeTraits {
        systemd: comm.trim() == "systemd",
        ipvs,
        cgroup_v1: fs.trim() != "cgroup2fs",
        conntrack_max_fixed: mode.trim() == "444",
    })
}

/// Runs `argv` on the node and returns its stdout and whether it exited 0.
/// Output is not turned into events (socket tables are noise).
async fn capture(
    client: &AgentClient,
    host: &str,
    argv: Vec<String>,
    op: &str,
) -> Result<(String, bool), PipelineError> {
    let agent = |detail: String| PipelineError::Agent {
        host: host.to_string(),
        step: Step::Check,
        detail,
    };
    let mut spec = ExecSpec::argv(argv, op);
    spec.timeout = Some(PROBE_TIMEOUT);
    let mut stream = client.exec(&spec).await.map_err(|e| agent(e.to_string()))?;
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        match item.map_err(|e| agent(e.to_string()))? {
            ExecItem::Stdout(d) => {
                if out.len() + d.len() <= MAX_PROBE_OUTPUT {
                    out.extend_from_slice(&d);
                }
            }
            ExecItem::Exit(o) => return Ok((String::from_utf8_lossy(&out).into(), o.success())),
            ExecItem::Stderr(_) | ExecItem::Started { .. } | ExecItem::Heartbeat => {}
        }
    }
    Err(agent(
        "exec stream ended without an exit status (agent restarted?)".into(),
    ))
}

/// Facts, clock skew and listening sockets of one host.
pub async fn probe(n: &NodeRef, tls: &ClientTls, op: &str) -> Result<HostProbe, PipelineError> {
    let client = n.connect(tls, Step::Check).await?;
    let sent = now_ms();
    let facts = client.facts().await.map_err(|e| PipelineError::Agent {
        host: n.host.clone(),
        step: Step::Check,
        detail: e.to_string(),
    })?;
    let skew_ms = clock_skew_ms(sent, now_ms(), facts.unix_time_ms);
    let mut text = String::new();
    for (file, required) in [("/proc/net/tcp", true), ("/proc/net/tcp6", false)] {
        let (out, ok) = capture(&client, &n.host, vec!["cat".into(), file.into()], op).await?;
        if !ok && required {
            return Err(PipelineError::host(
                &n.host,
                Step::Check,
                format!("cannot read {file} on the node; next: check that /proc is mounted"),
            ));
        }
        text.push_str(&out);
    }
    Ok(HostProbe {
        facts,
        skew_ms,
        listeners: pure::parse_listeners(&text),
        traits: traits(&client, &n.host, op).await?,
    })
}

/// The cluster's traits: systemd must run all hosts or none (the kubelet's
/// cgroup driver is one cluster-wide setting and must match every host's
/// container runtime); IPVS only when every kernel has it; cgroup v1 when
/// any host runs it. Mixed init systems are a check problem.
pub fn host_traits(
    probes: &BTreeMap<IpAddr, HostProbe>,
    nodes: &BTreeMap<IpAddr, NodeRef>,
) -> Result<HostTraits, String> {
    let name = |ip: &IpAddr| {
        nodes
            .get(ip)
            .map_or_else(|| ip.to_string(), |n| n.host.clone())
    };
    let (with, without): (Vec<_>, Vec<_>) = probes.iter().partition(|(_, p)| p.traits.systemd);
    if !with.is_empty() && !without.is_empty() {
        let list = |v: &[(&IpAddr, &HostProbe)]| {
            v.iter()
                .map(|(ip, _)| name(ip))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(format!(
            "systemd runs on {} but not on {}; the kubelet's cgroup driver is one cluster-wide setting: install all hosts alike",
            list(&with),
            list(&without)
        ));
    }
    Ok(HostTraits {
        systemd: without.is_empty(),
        ipvs: probes.values().all(|p| p.traits.ipvs),
        cgroup_v1: probes.values().any(|p| p.traits.cgroup_v1),
        conntrack_max_fixed: probes.values().any(|p| p.traits.conntrack_max_fixed),
    })
}

/// `comm (pid N)` of the processes owning the socket inodes (best effort:
/// an empty map when the node cannot tell).
pub async fn owners(
    n: &NodeRef,
    tls: &ClientTls,
    op: &str,
    inodes: &[u64],
) -> BTreeMap<u64, String> {
    // A fixed script; the inodes are positional arguments.
    const SCRIPT: &str = r#"for i in "$@"; do for f in /proc/[0-9]*/fd/*; do [ "$(readlink "$f" 2>/dev/null)" = "socket:[$i]" ] || continue; p=${f#/proc/}; p=${p%%/*}; echo "$i $p $(cat "/proc/$p/comm" 2>/dev/null)"; break; done; done"#;
    let mut argv: Vec<String> = ["sh", "-c", SCRIPT, "sh"].map(String::from).into();
    argv.extend(inodes.iter().map(u64::to_string));
    let Ok(client) = n.connect(tls, Step::Check).await else {
        return BTreeMap::new();
    };
    let Ok((out, _)) = capture(&client, &n.host, argv, op).await else {
        return BTreeMap::new();
    };
    out.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ' ');
            let inode = f.next()?.parse().ok()?;
            let pid = f.next()?;
            let comm = f.next().unwrap_or("?").trim();
            Some((inode, format!("{comm} (pid {pid})")))
        })
        .collect()
}

/// Steps that start services on a host: once any of them ran there (and
/// was not undone by a teardown), the host's ports are ferry's own.
const SERVICE_STEPS: [Step; 5] = [
    Step::Bootstrap,
    Step::InitMaster,
    Step::JoinMaster,
    Step::JoinWorker,
    Step::Guest,
];

/// Hosts (`ip:port` as journaled) where the journal shows a service step
/// that was not undone: not fresh, their ports are not checked.
pub fn touched_hosts(journal_text: &str) -> BTreeSet<String> {
    let (j, _) = Journal::from_lines(journal_text);
    j.records()
        .filter(|r| SERVICE_STEPS.contains(&r.step) && r.outcome != Outcome::Undone)
        .map(|r| ferry_shared::pipeline::key_host(&r.host).to_string())
        .collect()
}

/// Everything the verdict needs besides the probes.
pub struct Verdict<'a> {
    pub hosts: &'a [ResolvedHost],
    pub probes: &'a BTreeMap<IpAddr, HostProbe>,
    /// Hosts whose ports are checked.
    pub fresh: &'a BTreeSet<IpAddr>,
    /// Registry port per registry host (its env's `registryPort`).
    pub registry_port: &'a dyn Fn(&ResolvedHost) -> u16,
    pub image_arch: Option<&'a str>,
    pub agent_port: u16,
}

impl Verdict<'_> {
    /// Hostname, clock, arch problems; and the busy ports per host (their
    /// owners are looked up by the caller).
    pub fn problems(&self) -> (Vec<String>, Vec<(IpAddr, Vec<BusyPort>)>) {
        let mut out = Vec::new();
        let probed: Vec<(String, &ResolvedHost, &HostProbe)> = self
            .hosts
            .iter()
            .filter_map(|h| {
                self.probes
                    .get(&h.addr.ip)
                    .map(|p| (h.addr.to_string(), h, p))
            })
            .collect();
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, _, p) in &probed {
            if let Some(other) = seen.insert(p.facts.hostname.as_str(), name) {
                out.push(format!(
                    "hosts {other} and {name} share the hostname `{}`; Kubernetes node names must be unique: rename one (hostnamectl set-hostname)",
                    p.facts.hostname
                ));
            }
            if skew_too_large(p.skew_ms) {
                out.push(format!(
                    "{name}: clock is {:+.1} s off the bastion's (limit ±{} s); next: sync the clocks (chrony/NTP)",
                    p.skew_ms as f64 / 1000.0,
                    pure::MAX_SKEW_MS / 1000
                ));
            }
        }
        let arch: Vec<HostArch<'_>> = probed
            .iter()
            .map(|(name, h, p)| HostArch {
                host: name,
                roles: &h.roles,
                arch: &p.facts.arch,
            })
            .collect();
        out.extend(pure::arch_problems(self.image_arch, &arch));
        let mut busy = Vec::new();
        for h in self.hosts {
            let (Some(p), true) = (self.probes.get(&h.addr.ip), self.fresh.contains(&h.addr.ip))
            else {
                continue;
            };
            let needed = needed_ports(&h.roles, (self.registry_port)(h));
            let b = busy_ports(&needed, &p.listeners, self.agent_port);
            if !b.is_empty() {
                busy.push((h.addr.ip, b));
            }
        }
        (out, busy)
    }
}

/// The problem line of a busy port.
pub fn busy_line(host: &str, b: &BusyPort, owner: Option<&String>) -> String {
    format!(
        "{host}: port {} (needed by {}) is already in use by {}{}; next: stop that process or free the port",
        b.needed.port,
        b.needed.user,
        owner.map_or("another process", String::as_str),
        if b.listener.addr.is_unspecified() {
            String::new()
        } else {
            format!(" on {}", b.listener.addr)
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touched_hosts_are_those_with_service_steps_not_undone() {
        let rec = |step: &str, host: &str, outcome: &str| {
            format!(
                r#"{{"ts_ms":1,"op":"o","step":"{step}","host":"{host}","digest":"d","outcome":"{outcome}"}}"#
            )
        };
        let text = [
            rec("distribute", "10.0.0.2:22", "done"),
            rec("bootstrap", "10.0.0.3:22", "failed"),
            rec("join-worker", "10.0.0.4:22", "done"),
            rec("join-worker", "10.0.0.4:22", "undone"),
            rec("bootstrap", "10.0.0.5:22", "done"),
        ]
        .join("\n");
        let t = touched_hosts(&text);
        assert_eq!(
            t.into_iter().collect::<Vec<_>>(),
            vec!["10.0.0.3:22".to_string(), "10.0.0.5:22".to_string()]
        );
    }
}

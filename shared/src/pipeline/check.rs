//! The check step's pure parts: clock skew against the bastion, listening
//! sockets from `/proc/net/tcp{,6}`, the ports a host's roles will bind,
//! the architecture of hosts against the image's, and the VIP against the
//! pod/service CIDRs. The coordinator gathers the inputs through the agents
//! and reports every problem together.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::clusterfile::{ROLE_MASTER, ROLE_NODE, ROLE_REGISTRY};
use crate::kubeadm::cidr_contains;

/// sealos refuses a host whose clock is this far from the bastion's.
pub const MAX_SKEW_MS: i64 = 5_000;

/// The arch names a role list may carry (sealos writes `[master, amd64]`).
pub const ARCH_NAMES: [&str; 6] = ["amd64", "arm64", "arm", "riscv64", "s390x", "ppc64le"];

/// The host clock minus the bastion clock, in ms: the host read its clock
/// somewhere between `sent_ms` and `received_ms` (bastion clock); the
/// midpoint is the best estimate, off by at most half the round trip.
pub fn clock_skew_ms(sent_ms: i64, received_ms: i64, host_ms: i64) -> i64 {
    let mid = sent_ms + (received_ms - sent_ms) / 2;
    host_ms - mid
}

/// Whether a measured skew is too large.
pub fn skew_too_large(skew_ms: i64) -> bool {
    skew_ms.unsigned_abs() >= MAX_SKEW_MS.unsigned_abs()
}

/// One listening TCP socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub addr: IpAddr,
    pub port: u16,
    /// Socket inode (to find the owning process).
    pub inode: u64,
}

/// `st` of a socket in LISTEN state.
const TCP_LISTEN: &str = "0A";

/// Parses `/proc/net/tcp` and `/proc/net/tcp6` text (any mix, headers
/// included) into the sockets in LISTEN state. Lines that do not parse
/// are skipped. Addresses are decoded as a little-endian kernel prints
/// them (every architecture ferry's agent is built for); ports do not
/// depend on it.
pub fn parse_listeners(text: &str) -> Vec<Listener> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
        if f.len() < 10 || !f[0].ends_with(':') || f[3] != TCP_LISTEN {
            continue;
        }
        let Some((addr, port)) = f[1].split_once(':') else {
            continue;
        };
        let (Some(addr), Ok(port), Ok(inode)) = (
            parse_addr(addr),
            u16::from_str_radix(port, 16),
            f[9].parse::<u64>(),
        ) else {
            continue;
        };
        out.push(Listener { addr, port, inode });
    }
    out
}

fn parse_addr(hex: &str) -> Option<IpAddr> {
    let word = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::to_le_bytes);
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(hex)?))),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(hex.get(i * 8..i * 8 + 8)?)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

/// A port the cluster will bind on a host, and who binds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NeededPort {
    pub port: u16,
    pub user: &'static str,
}

/// The ports a host with `roles` will bind: masters the control plane,
/// etcd and kubelet; workers the kubelet; registry hosts the registry.
pub fn needed_ports(roles: &[String], registry_port: u16) -> Vec<NeededPort> {
    let has = |r: &str| roles.iter().any(|x| x == r);
    let mut out = Vec::new();
    let mut add = |port, user| {
        if !out.iter().any(|p: &NeededPort| p.port == port) {
            out.push(NeededPort { port, user });
        }
    };
    if has(ROLE_MASTER) {
        for (p, u) in [
            (6443, "kube-apiserver"),
            (2379, "etcd"),
            (2380, "etcd peers"),
            (10250, "kubelet"),
            (10257, "kube-controller-manager"),
            (10259, "kube-scheduler"),
        ] {
            add(p, u);
        }
    }
    if has(ROLE_NODE) {
        add(10250, "kubelet");
    }
    if has(ROLE_REGISTRY) {
        add(registry_port, "the image registry");
    }
    out.sort();
    out
}

/// A needed port something already listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusyPort {
    pub needed: NeededPort,
    pub listener: Listener,
}

/// The needed ports that are taken (a listener on any address conflicts:
/// the cluster binds the wildcard). `exclude` is never reported (the
/// agent's own port).
pub fn busy_ports(needed: &[NeededPort], listening: &[Listener], exclude: u16) -> Vec<BusyPort> {
    needed
        .iter()
        .filter(|n| n.port != exclude)
        .filter_map(|n| {
            listening
                .iter()
                .find(|l| l.port == n.port)
                .map(|l| BusyPort {
                    needed: *n,
                    listener: l.clone(),
                })
        })
        .collect()
}

/// One host as the arch check sees it.
#[derive(Debug, Clone)]
pub struct HostArch<'a> {
    pub host: &'a str,
    pub roles: &'a [String],
    /// What the agent reports (Kubernetes names).
    pub arch: &'a str,
}

/// Architecture problems: a host whose roles name another arch than it
/// has; a host the image was not built for (when the image says); hosts
/// of different archs (one rootfs is distributed to every host).
pub fn arch_problems(image_arch: Option<&str>, hosts: &[HostArch<'_>]) -> Vec<String> {
    let mut out = Vec::new();
    for h in hosts {
        if let Some(r) = h
            .roles
            .iter()
            .find(|r| ARCH_NAMES.contains(&r.as_str()) && r.as_str() != h.arch)
        {
            out.push(format!(
                "{}: roles say `{r}` but the host is {}; fix the host's roles in the Clusterfile",
                h.host, h.arch
            ));
        }
    }
    match image_arch {
        Some(want) => {
            let bad: Vec<String> = hosts
                .iter()
                .filter(|h| h.arch != want)
                .map(|h| format!("{} ({})", h.host, h.arch))
                .collect();
            if !bad.is_empty() {
                out.push(format!(
                    "the image is built for {want}, but {} {}; use an image for their architecture (e.g. `ferry pull --platform linux/<arch>`)",
                    bad.join(", "),
                    if bad.len() == 1 { "is not" } else { "are not" }
                ));
            }
        }
        None => {
            let mut archs: Vec<&str> = hosts.iter().map(|h| h.arch).collect();
            archs.sort_unstable();
            archs.dedup();
            if archs.len() > 1 {
                let list: Vec<String> = hosts
                    .iter()
                    .map(|h| format!("{} ({})", h.host, h.arch))
                    .collect();
                out.push(format!(
                    "hosts of different architectures ({}) cannot share one image; run one architecture per cluster",
                    list.join(", ")
                ));
            }
        }
    }
    out
}

/// Which subnet a VIP falls into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipOverlap {
    pub vip: IpAddr,
    pub which: &'static str,
    pub cidr: String,
}

impl fmt::Display for VipOverlap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the VIP {} is inside the {} subnet {}; pick another VIP (-e defaultVIP=...) or change networking.{}Subnet",
            self.vip, self.which, self.cidr, self.which
        )
    }
}

/// The VIP must lie outside the pod and the service CIDRs (comma-separated
/// lists, dual stack allowed). A malformed CIDR is a problem too.
pub fn vip_problems(vip: IpAddr, pod: &str, service: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (which, cidr) in [("pod", pod), ("service", service)] {
        match cidr_contains(cidr, vip) {
            Ok(true) => out.push(
                VipOverlap {
                    vip,
                    which,
                    cidr: cidr.to_string(),
                }
                .to_string(),
            ),
            Ok(false) => {}
            Err(e) => out.push(format!("networking.{which}Subnet: {e}")),
        }
    }
    out
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;

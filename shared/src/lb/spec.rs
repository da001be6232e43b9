//! Desired state of a node's VIP load balancer, validated. Mirrors
//! `lvscare care --vs VIP:PORT --rs ... --health-path ... --interval ...`.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// sealos's default apiserver VIP (`defaultVIP`).
pub const DEFAULT_VIP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 103, 97, 2), 6443);

/// The IPVS schedulers lvscare accepts. The nftables backend implements
/// `rr`/`wrr` exactly (`numgen inc`), `sh`/`dh` as a hash of the source/
/// destination address, and approximates `lc`/`wlc` with weighted random.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Sh,
    Dh,
}

impl Scheduler {
    pub const ALL: [Scheduler; 6] = [
        Scheduler::Rr,
        Scheduler::Wrr,
        Scheduler::Lc,
        Scheduler::Wlc,
        Scheduler::Sh,
        Scheduler::Dh,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Wlc => "wlc",
            Scheduler::Sh => "sh",
            Scheduler::Dh => "dh",
        }
    }
}

/// Which kernel facility programs the VIP. `Auto` picks IPVS where the
/// kernel has it, else nftables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Auto,
    Ipvs,
    Nftables,
}

impl BackendKind {
    pub const ALL: [BackendKind; 3] = [BackendKind::Auto, BackendKind::Ipvs, BackendKind::Nftables];

    pub const fn as_str(self) -> &'static str {
        match self {
            BackendKind::Auto => "auto",
            BackendKind::Ipvs => "ipvs",
            BackendKind::Nftables => "nftables",
        }
    }
}

macro_rules! str_enum {
    ($t:ty, $what:literal) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $t {
            type Err = LbSpecError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$t>::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| LbSpecError::Unknown {
                        what: $what,
                        value: s.to_string(),
                    })
            }
        }
    };
}
str_enum!(Scheduler, "scheduler");
str_enum!(BackendKind, "backend");

/// lvscare's HTTPS health check (certificates are not verified).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// HTTP path, e.g. `/healthz`.
    pub path: String,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Consecutive successes that bring a drained/removed member back.
    pub healthy_threshold: u32,
    /// Consecutive failures that drain an active member (one more removes it).
    pub unhealthy_threshold: u32,
    /// Statuses ≥ 400 that still count as healthy (lvscare `--health-status`).
    pub ok_statuses: Vec<u16>,
}

impl Default for HealthCheck {
    /// lvscare's defaults: `/healthz`, every 5 s, 10 s timeout.
    fn default() -> Self {
        Self {
            path: "/healthz".to_string(),
            interval_ms: 5_000,
            timeout_ms: 10_000,
            healthy_threshold: 1,
            unhealthy_threshold: 1,
            ok_statuses: Vec::new(),
        }
    }
}

impl HealthCheck {
    /// lvscare's rule: a status below 400 is healthy, and so is any listed one.
    pub fn status_is_healthy(&self, status: u16) -> bool {
        status < 400 || self.ok_statuses.contains(&status)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RealServer {
    pub addr: SocketAddrV4,
    /// Weight while healthy (1..=MAX_WEIGHT); `rr` treats all as 1.
    pub weight: u32,
}

/// The whole desired state pushed to an agent. `version` increases with
/// every change; an agent refuses versions older than the one it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LbSpec {
    pub vip: SocketAddrV4,
    pub real_servers: Vec<RealServer>,
    pub scheduler: Scheduler,
    pub health: HealthCheck,
    pub backend: BackendKind,
    pub version: u64,
}

pub const MAX_WEIGHT: u32 = 100;
pub const MAX_REAL_SERVERS: usize = 64;
const MIN_INTERVAL_MS: u64 = 100;
const MAX_INTERVAL_MS: u64 = 3_600_000;
const MAX_TIMEOUT_MS: u64 = 60_000;
const MAX_THRESHOLD: u32 = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LbSpecError {
    #[error("unknown {what} `{value}`")]
    Unknown { what: &'static str, value: String },
    #[error("VIP {0} must be a unicast IPv4 address with a non-zero port")]
    Vip(SocketAddrV4),
    #[error("at least one real server is needed (at most {MAX_REAL_SERVERS})")]
    RealServerCount,
    #[error("real server {0} must be a unicast IPv4 address with a non-zero port")]
    RealServer(SocketAddrV4),
    #[error("real server {0} is listed twice")]
    Duplicate(SocketAddrV4),
    #[error("real server {0} is the VIP itself")]
    IsVip(SocketAddrV4),
    #[error("weight {weight} of {addr} is outside 1..={MAX_WEIGHT}")]
    Weight { addr: SocketAddrV4, weight: u32 },
    #[error("health path `{0}` must start with `/` and contain no whitespace")]
    Path(String),
    #[error("health interval {0} ms is outside {MIN_INTERVAL_MS}..={MAX_INTERVAL_MS} ms")]
    Interval(u64),
    #[error("health timeout {0} ms is outside 1..={MAX_TIMEOUT_MS} ms")]
    Timeout(u64),
    #[error("{which} threshold {value} is outside 1..={MAX_THRESHOLD}")]
    Threshold { which: &'static str, value: u32 },
    #[error("HTTP status {0} is not a valid status code (100..=599)")]
    Status(u16),
    #[error("version must be > 0")]
    Version,
    #[error("invalid address `{value}`: {reason}")]
    Addr { value: String, reason: String },
}

fn unicast(ip: Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast())
}

impl LbSpec {
    pub fn validate(&self) -> Result<(), LbSpecError> {
        if !unicast(*self.vip.ip()) || self.vip.port() == 0 {
            return Err(LbSpecError::Vip(self.vip));
        }
        if self.real_servers.is_empty() || self.real_servers.len() > MAX_REAL_SERVERS {
            return Err(LbSpecError::RealServerCount);
        }
        let mut seen = std::collections::BTreeSet::new();
        for rs in &self.real_servers {
            if !unicast(*rs.addr.ip()) || rs.addr.port() == 0 {
                return Err(LbSpecError::RealServer(rs.addr));
            }
            if rs.addr.ip() == self.vip.ip() {
                return Err(LbSpecError::IsVip(rs.addr));
            }
            if !seen.insert(rs.addr) {
                return Err(LbSpecError::Duplicate(rs.addr));
            }
            if rs.weight == 0 || rs.weight > MAX_WEIGHT {
                return Err(LbSpecError::Weight {
                    addr: rs.addr,
                    weight: rs.weight,
                });
            }
        }
        let h = &self.health;
        if !h.path.starts_with('/') || h.path.chars().any(char::is_whitespace) {
            return Err(LbSpecError::Path(h.path.clone()));
        }
        if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&h.interval_ms) {
            return Err(LbSpecError::Interval(h.interval_ms));
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&h.timeout_ms) {
            return Err(LbSpecError::Timeout(h.timeout_ms));
        }
        for (which, value) in [
            ("healthy", h.healthy_threshold),
            ("unhealthy", h.unhealthy_threshold),
        ] {
            if !(1..=MAX_THRESHOLD).contains(&value) {
                return Err(LbSpecError::Threshold { which, value });
            }
        }
        if let Some(s) = h.ok_statuses.iter().find(|s| !(100..=599).contains(*s)) {
            return Err(LbSpecError::Status(*s));
        }
        if self.version == 0 {
            return Err(LbSpecError::Version);
        }
        Ok(())
    }

    /// The same desired state ignoring `version` (a re-sync of an unchanged
    /// state is a no-op).
    pub fn same_state(&self, other: &LbSpec) -> bool {
        LbSpec {
            version: other.version,
            ..self.clone()
        } == *other
    }
}

/// Parses `ip` or `ip:port` (default `port`) into a socket address.
pub fn parse_addr(s: &str, default_port: u16) -> Result<SocketAddrV4, LbSpecError> {
    let err = |reason: &str| LbSpecError::Addr {
        value: s.to_string(),
        reason: reason.to_string(),
    };
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddrV4>() {
        return Ok(a);
    }
    s.parse::<Ipv4Addr>()
        .map(|ip| SocketAddrV4::new(ip, default_port))
        .map_err(|_| err("expected an IPv4 address, optionally with :port"))
}

/// kube-proxy's `ipvs.excludeCIDRs` for the VIP, so kube-proxy's IPVS
/// cleanup leaves the VIP alone (sealos writes the same value).
pub fn kube_proxy_exclude_cidrs(vip: Ipv4Addr) -> Vec<String> {
    vec![format!("{vip}/32")]
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;

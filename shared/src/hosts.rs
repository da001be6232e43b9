//! Host addresses and sealos-style host lists.
//!
//! sealos accepts `--masters 10.0.0.2,10.0.0.3:2222 --nodes 10.0.0.4-10.0.0.9`:
//! a comma list whose items are an IP, `ip:port` (`[v6]:port`), or an IPv4
//! range `a.b.c.d-a.b.c.e` (inclusive, both ends may carry the same `:port`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The most addresses one range item may expand to; a typo such as
/// `10.0.0.1-10.9.0.1` should fail, not schedule 590k hosts.
pub const MAX_RANGE_HOSTS: u32 = 4096;

/// The most addresses a whole list may expand to (several ranges).
pub const MAX_LIST_HOSTS: usize = 4 * MAX_RANGE_HOSTS as usize;

/// Default SSH port when an item carries none.
pub const DEFAULT_SSH_PORT: u16 = 22;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HostListError {
    #[error("host list item `{item}` is not an IP address, ip:port or ip range")]
    BadItem { item: String },
    #[error("host list item `{item}`: port `{port}` is not a number in 1..=65535")]
    BadPort { item: String, port: String },
    #[error("host range `{item}`: ranges are IPv4 only")]
    RangeNotV4 { item: String },
    #[error("host range `{item}`: the start is after the end")]
    RangeBackwards { item: String },
    #[error(
        "host range `{item}` covers {count} addresses, more than the limit of {MAX_RANGE_HOSTS}"
    )]
    RangeTooLarge { item: String, count: u64 },
    #[error("host range `{item}`: both ends must use the same port")]
    RangePortMismatch { item: String },
    #[error("host {addr} is listed twice")]
    Duplicate { addr: String },
    #[error(
        "host list expands to more than {MAX_LIST_HOSTS} addresses; check its ranges for a typo"
    )]
    TooManyHosts,
}

/// One node's SSH address. Equality is on IP and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HostAddr {
    pub ip: IpAddr,
    pub port: u16,
}

impl HostAddr {
    pub fn new(ip: IpAddr, port: u16) -> Self {
        Self { ip, port }
    }

    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

impl fmt::Display for HostAddr {
    /// `ip` when on port 22 (how sealos prints hosts), `ip:port` otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.ip, self.port) {
            (ip, DEFAULT_SSH_PORT) => write!(f, "{ip}"),
            (IpAddr::V6(ip), port) => write!(f, "[{ip}]:{port}"),
            (IpAddr::V4(ip), port) => write!(f, "{ip}:{port}"),
        }
    }
}

impl FromStr for HostAddr {
    type Err = HostListError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_one(s.trim(), s)
    }
}

fn parse_port(item: &str, port: &str) -> Result<u16, HostListError> {
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(HostListError::BadPort {
            item: item.to_string(),
            port: port.to_string(),
        }),
    }
}

/// Parses `ip`, `ip:port`, `[v6]` or `[v6]:port`.
fn parse_one(s: &str, item: &str) -> Result<HostAddr, HostListError> {
    let bad = || HostListError::BadItem {
        item: item.to_string(),
    };
    if let Ok(ip) = IpAddr::from_str(s) {
        return Ok(HostAddr::new(ip, DEFAULT_SSH_PORT));
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').ok_or_else(bad)?;
        let ip = IpAddr::from_str(ip).map_err(|_| bad())?;
        let port = match after {
            "" => DEFAULT_SSH_PORT,
            p => parse_port(item, p.strip_prefix(':').ok_or_else(bad)?)?,
        };
        return Ok(HostAddr::new(ip, port));
    }
    let (ip, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let ip = Ipv4Addr::from_str(ip).map_err(|_| bad())?;
    Ok(HostAddr::new(IpAddr::V4(ip), parse_port(item, port)?))
}

fn expand_range(item: &str, start: &str, end: &str) -> Result<Vec<HostAddr>, HostListError> {
    let a = parse_one(start, item)?;
    let b = parse_one(end, item)?;
    let (IpAddr::V4(sa), IpAddr::V4(sb)) = (a.ip, b.ip) else {
        return Err(HostListError::RangeNotV4 {
            item: item.to_string(),
        });
    };
    if a.port != b.port {
        return Err(HostListError::RangePortMismatch {
            item: item.to_string(),
        });
    }
    let (lo, hi) = (u32::from(sa), u32::from(sb));
    if lo > hi {
        return Err(HostListError::RangeBackwards {
            item: item.to_string(),
        });
    }
    let count = u64::from(hi - lo) + 1;
    if count > u64::from(MAX_RANGE_HOSTS) {
        return Err(HostListError::RangeTooLarge {
            item: item.to_string(),
            count,
        });
    }
    Ok((lo..=hi)
        .map(|n| HostAddr::new(IpAddr::V4(Ipv4Addr::from(n)), a.port))
        .collect())
}

/// Parses a sealos host list. Empty items are ignored; duplicates rejected.
pub fn parse_host_list(list: &str) -> Result<Vec<HostAddr>, HostListError> {
    let mut out: Vec<HostAddr> = Vec::new();
    // A set, not `out.contains`: a few dozen ranges made that quadratic
    // scan take minutes (found with the host_list fuzz target).
    let mut seen = std::collections::HashSet::new();
    for raw in list.split(',') {
        let item = raw.trim();
        if item.is_empty() {
            continue;
        }
        let expanded = match item.split_once('-') {
            Some((start, end)) => expand_range(item, start.trim(), end.trim())?,
            None => vec![parse_one(item, item)?],
        };
        if out.len() + expanded.len() > MAX_LIST_HOSTS {
            return Err(HostListError::TooManyHosts);
        }
        for h in expanded {
            if !seen.insert(h) {
                return Err(HostListError::Duplicate {
                    addr: h.to_string(),
                });
            }
            out.push(h);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(s: &str) -> HostAddr {
        s.parse().unwrap()
    }

    #[test]
    fn plain_port_and_v6() {
        assert_eq!(
            h("10.0.0.2"),
            HostAddr::new("10.0.0.2".parse().unwrap(), 22)
        );
        assert_eq!(h("10.0.0.2:2222").port, 2222);
        assert_eq!(h("[fd00::1]:2200").port, 2200);
        assert_eq!(h("fd00::1").port, 22);
        assert_eq!(h("10.0.0.2:2222").to_string(), "10.0.0.2:2222");
        assert_eq!(h("10.0.0.2:22").to_string(), "10.0.0.2");
        assert_eq!(h("[fd00::1]:2200").to_string(), "[fd00::1]:2200");
    }

    /// fuzz/regressions/host_list/timeout-many-ranges: 190 ranges of 4096
    /// hosts took minutes in a quadratic duplicate scan.
    #[test]
    fn many_ranges_are_refused_quickly() {
        let range = |i: usize| {
            let (b, c) = (i / 16, (i % 16) * 16);
            format!("10.{b}.{c}.0-10.{b}.{}.255", c + 15)
        };
        let list = |n: usize| (0..n).map(range).collect::<Vec<_>>().join(",");
        let start = std::time::Instant::now();
        assert_eq!(
            parse_host_list(&list(190)),
            Err(HostListError::TooManyHosts)
        );
        assert_eq!(parse_host_list(&list(4)).unwrap().len(), MAX_LIST_HOSTS);
        let dup = format!("{},10.0.0.7", list(3));
        assert!(matches!(
            parse_host_list(&dup),
            Err(HostListError::Duplicate { .. })
        ));
        assert!(start.elapsed().as_secs() < 5, "{:?}", start.elapsed());
    }

    #[test]
    fn sealos_lists_and_ranges() {
        let l = parse_host_list("10.0.0.2, 10.0.0.3:2222,10.0.0.4-10.0.0.6").unwrap();
        let s: Vec<String> = l.iter().map(|h| h.to_string()).collect();
        assert_eq!(
            s,
            [
                "10.0.0.2",
                "10.0.0.3:2222",
                "10.0.0.4",
                "10.0.0.5",
                "10.0.0.6"
            ]
        );
        let l = parse_host_list("10.0.0.254:23-10.0.1.1:23").unwrap();
        assert_eq!(l.len(), 4);
        assert!(l.iter().all(|h| h.port == 23));
        assert!(parse_host_list("").unwrap().is_empty());
    }

    #[test]
    fn bad_lists_are_named() {
        use HostListError::*;
        assert!(matches!(parse_host_list("node1"), Err(BadItem { .. })));
        assert!(matches!(parse_host_list("10.0.0.1:0"), Err(BadPort { .. })));
        assert!(matches!(parse_host_list("10.0.0.1:x"), Err(BadPort { .. })));
        assert!(matches!(
            parse_host_list("10.0.0.9-10.0.0.1"),
            Err(RangeBackwards { .. })
        ));
        assert!(matches!(
            parse_host_list("10.0.0.1-10.9.0.1"),
            Err(RangeTooLarge { .. })
        ));
        assert!(matches!(
            parse_host_list("10.0.0.1:22-10.0.0.3:23"),
            Err(RangePortMismatch { .. })
        ));
        assert!(matches!(
            parse_host_list("10.0.0.1,10.0.0.1"),
            Err(Duplicate { .. })
        ));
        assert!(matches!(
            parse_host_list("10.0.0.1-10.0.0.3,10.0.0.2"),
            Err(Duplicate { .. })
        ));
        let e = parse_host_list("10.0.0.1:99999").unwrap_err().to_string();
        assert!(e.contains("99999"), "{e}");
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,64}") {
            let _ = parse_host_list(&s);
        }

        #[test]
        fn display_round_trips(a in any::<u32>(), port in 1u16..) {
            let addr = HostAddr::new(IpAddr::V4(Ipv4Addr::from(a)), port);
            prop_assert_eq!(addr.to_string().parse::<HostAddr>().unwrap(), addr);
        }
    }
}

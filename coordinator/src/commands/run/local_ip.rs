//! `ferry run --single`: this machine's own address, which becomes the only
//! master (sealos: "no hosts ⇒ local IP"). The source address the kernel
//! picks for the default route (a UDP socket "connected" to a TEST-NET
//! address: a route lookup, no packet is sent); without a default route,
//! the only global IPv4 address of an up interface (`/proc/net/fib_trie`'s
//! local host entries; the kernel drops them when an interface goes down).
//! Several candidates are refused, never guessed.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};

/// Not a host address another machine (or SSH to ourselves) could use.
fn unusable(ip: Ipv4Addr) -> bool {
    ip.is_loopback() || ip.is_link_local() || ip.is_unspecified() || ip.is_multicast()
}

/// Local IPv4 host addresses listed in a `/proc/net/fib_trie` text
/// (`|-- a.b.c.d` followed by `/32 host LOCAL`), deduplicated, in order.
pub fn fib_trie_locals(text: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("|-- ") {
            last = rest.trim().parse().ok();
        } else if t.starts_with("/32 host LOCAL")
            && let Some(ip) = last
            && !out.contains(&ip)
        {
            out.push(ip);
        }
    }
    out
}

/// The master of a `--single` cluster, from the default route's source
/// address (if any) and the local addresses; an error tells what was found
/// and that `--masters` decides instead.
pub fn pick(default_src: Option<Ipv4Addr>, locals: &[Ipv4Addr]) -> Result<IpAddr, String> {
    if let Some(ip) = default_src.filter(|ip| !unusable(*ip)) {
        return Ok(IpAddr::V4(ip));
    }
    let usable: Vec<Ipv4Addr> = locals.iter().copied().filter(|ip| !unusable(*ip)).collect();
    match usable.as_slice() {
        [one] => Ok(IpAddr::V4(*one)),
        [] => Err(format!(
            "--single: this machine has no default route and no non-loopback IPv4 address (found: {}); give the master with --masters <ip> instead of --single",
            if locals.is_empty() {
                "none".to_string()
            } else {
                join(locals)
            }
        )),
        many => Err(format!(
            "--single: no default route and several IPv4 addresses ({}), so which one other hosts reach is ambiguous; give the master with --masters <ip> instead of --single",
            join(many)
        )),
    }
}

fn join(ips: &[Ipv4Addr]) -> String {
    ips.iter()
        .map(Ipv4Addr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The source address of the default route, if there is one.
fn default_route_source() -> Option<Ipv4Addr> {
    let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    // TEST-NET-1 (RFC 5737): routed by the default route, never answered;
    // `connect` on UDP only selects the route and source address.
    s.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
    match s.local_addr().ok()?.ip() {
        IpAddr::V4(ip) => Some(ip),
        IpAddr::V6(_) => None,
    }
}

/// This machine's address for `--single`.
pub fn local_master_ip() -> Result<IpAddr, String> {
    let locals = std::fs::read_to_string("/proc/net/fib_trie")
        .map(|t| fib_trie_locals(&t))
        .unwrap_or_default();
    pick(default_route_source(), &locals)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const FIB: &str = "Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 10.77.0.0/24 2 0 2
        |-- 10.77.0.0
           /24 link UNICAST
        |-- 10.77.0.11
           /32 host LOCAL
     |-- 127.0.0.1
        /32 host LOCAL
Local:
  +-- 10.77.0.0/24 2 0 2
     |-- 10.77.0.11
        /32 host LOCAL
     |-- 10.77.0.255
        /32 link BROADCAST
     |-- 169.254.3.4
        /32 host LOCAL
";

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn fib_trie_local_host_entries() {
        assert_eq!(
            fib_trie_locals(FIB),
            [ip("10.77.0.11"), ip("127.0.0.1"), ip("169.254.3.4")]
        );
        assert!(fib_trie_locals("").is_empty());
    }

    #[test]
    fn default_route_source_wins() {
        let locals = [ip("10.0.0.5"), ip("192.168.1.7")];
        assert_eq!(
            pick(Some(ip("192.168.1.7")), &locals).unwrap().to_string(),
            "192.168.1.7"
        );
    }

    #[test]
    fn without_a_default_route_the_only_global_address() {
        let locals = fib_trie_locals(FIB);
        assert_eq!(pick(None, &locals).unwrap().to_string(), "10.77.0.11");
        // A loopback "default source" is no answer either.
        assert_eq!(
            pick(Some(ip("127.0.0.1")), &locals).unwrap().to_string(),
            "10.77.0.11"
        );
    }

    #[test]
    fn none_or_several_are_refused_naming_what_was_found() {
        let e = pick(None, &[ip("127.0.0.1")]).unwrap_err();
        assert!(e.contains("127.0.0.1") && e.contains("--masters"), "{e}");
        let e = pick(None, &[]).unwrap_err();
        assert!(e.contains("none") && e.contains("--masters"), "{e}");
        let e = pick(None, &[ip("10.0.0.5"), ip("127.0.0.1"), ip("192.168.1.7")]).unwrap_err();
        assert!(
            e.contains("10.0.0.5, 192.168.1.7")
                && e.contains("ambiguous")
                && e.contains("--masters"),
            "{e}"
        );
    }

    #[test]
    fn this_machine_has_an_answer_or_a_clear_refusal() {
        match local_master_ip() {
            Ok(ip) => assert!(!ip.is_loopback(), "{ip}"),
            Err(e) => assert!(e.contains("--masters"), "{e}"),
        }
    }
}

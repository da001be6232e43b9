//! The nftables rule layout, as `nft` text (applied with `nft -f -`) and
//! read back from `nft -j list table ip ferry_lb`. Pure: no processes.
//!
//! ```text
//! table ip ferry_lb {
//!   set draining { type ipv4_addr . inet_service; elements = { m2 . 6443 } }
//!   chain prerouting {                      # traffic from pods/other hosts
//!     type nat hook prerouting priority dstnat; policy accept;
//!     ip daddr VIP tcp dport 6443 dnat to numgen inc mod 3 map {
//!         0 : m1 . 6443, 1-2 : m3 . 6443 } comment "ferry-lb scheduler=wrr"
//!   }
//!   chain output { ... the same, hook output ... }   # the node itself
//! }
//! ```
//! Weighted members own `weight` consecutive slots of the `numgen`/`jhash`
//! range. Draining (weight 0) members are only in the `draining` set: no
//! new connection goes to them, established ones keep their conntrack NAT.
//! With no serving member the rule has no `dnat` (it keeps the VIP and the
//! scheduler readable).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};

use ferry_shared::lb::{LbRules, Scheduler};
use serde_json::Value;

pub const TABLE: &str = "ferry_lb";
const TAG: &str = "ferry-lb scheduler=";
const CHAINS: [(&str, &str); 2] = [
    (
        "prerouting",
        "type nat hook prerouting priority dstnat; policy accept;",
    ),
    (
        "output",
        "type nat hook output priority -100; policy accept;",
    ),
];

fn key(s: Scheduler, total: u32) -> String {
    match s {
        Scheduler::Rr | Scheduler::Wrr => format!("numgen inc mod {total}"),
        Scheduler::Lc | Scheduler::Wlc => format!("numgen random mod {total}"),
        Scheduler::Sh => format!("jhash ip saddr mod {total}"),
        Scheduler::Dh => format!("jhash ip daddr mod {total}"),
    }
}

/// One atomic `nft -f` transaction replacing the whole table.
pub fn render(rules: &LbRules) -> String {
    let mut out = format!("table ip {TABLE} {{}}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n");
    let draining = rules.draining();
    out.push_str("  set draining {\n    type ipv4_addr . inet_service;\n");
    if !draining.is_empty() {
        let el: Vec<String> = draining
            .iter()
            .map(|a| format!("{} . {}", a.ip(), a.port()))
            .collect();
        let _ = writeln!(out, "    elements = {{ {} }}", el.join(", "));
    }
    out.push_str("  }\n");
    let serving = rules.serving();
    let total: u32 = serving.iter().map(|(_, w)| w).sum();
    let mut slots = Vec::new();
    let mut next = 0u32;
    for (a, w) in &serving {
        let last = next + w - 1;
        let range = if *w == 1 {
            next.to_string()
        } else {
            format!("{next}-{last}")
        };
        slots.push(format!("{range} : {} . {}", a.ip(), a.port()));
        next = last + 1;
    }
    let dnat = if slots.is_empty() {
        "counter".to_string()
    } else {
        format!(
            "dnat to {} map {{ {} }}",
            key(rules.scheduler, total),
            slots.join(", ")
        )
    };
    for (chain, hook) in CHAINS {
        let _ = writeln!(
            out,
            "  chain {chain} {{\n    {hook}\n    ip daddr {} tcp dport {} {dnat} comment \"{TAG}{}\"\n  }}",
            rules.vip.ip(),
            rules.vip.port(),
            rules.scheduler
        );
    }
    out.push_str("}\n");
    out
}

fn concat_addr(v: &Value) -> Option<SocketAddrV4> {
    let parts = v.get("concat")?.as_array()?;
    let ip: Ipv4Addr = parts.first()?.as_str()?.parse().ok()?;
    let port = u16::try_from(parts.get(1)?.as_u64()?).ok()?;
    Some(SocketAddrV4::new(ip, port))
}

fn slot_width(v: &Value) -> Option<u32> {
    if let Some(n) = v.as_u64() {
        return (n <= u64::from(u32::MAX)).then_some(1);
    }
    let r = v.get("range")?.as_array()?;
    let (lo, hi) = (r.first()?.as_u64()?, r.get(1)?.as_u64()?);
    u32::try_from(hi.checked_sub(lo)? + 1).ok()
}

/// The rules in `nft -j list table ip ferry_lb` output (the `prerouting`
/// chain is authoritative). None if the table holds no ferry rule.
pub fn parse(json: &str) -> Result<Option<LbRules>, String> {
    let doc: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("no `nftables` array")?;
    let mut members = BTreeMap::new();
    let mut head = None;
    for item in items {
        if let Some(set) = item.get("set").filter(|s| s["name"] == "draining") {
            for e in set
                .get("elem")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let a = concat_addr(e).ok_or_else(|| format!("bad draining element {e}"))?;
                members.insert(a, 0);
            }
        }
        let Some(rule) = item.get("rule").filter(|r| r["chain"] == "prerouting") else {
            continue;
        };
        let Some(sched) = rule["comment"].as_str().and_then(|c| c.strip_prefix(TAG)) else {
            continue;
        };
        let scheduler: Scheduler = sched.parse().map_err(|e| format!("{e}"))?;
        let (mut ip, mut port) = (None, None);
        for ex in rule["expr"].as_array().into_iter().flatten() {
            if let Some(m) = ex.get("match") {
                match m["left"]["payload"]["field"].as_str() {
                    Some("daddr") => ip = m["right"].as_str().and_then(|s| s.parse().ok()),
                    Some("dport") => {
                        port = m["right"].as_u64().and_then(|p| u16::try_from(p).ok());
                    }
                    _ => {}
                }
            }
            let set = &ex["dnat"]["addr"]["map"]["data"]["set"];
            for pair in set.as_array().into_iter().flatten() {
                let width = slot_width(&pair[0]).ok_or_else(|| format!("bad slot {pair}"))?;
                let a = concat_addr(&pair[1]).ok_or_else(|| format!("bad target {pair}"))?;
                *members.entry(a).or_insert(0) += width;
            }
        }
        let (Some(ip), Some(port)) = (ip, port) else {
            return Err("the ferry-lb rule has no VIP match".into());
        };
        head = Some((SocketAddrV4::new(ip, port), scheduler));
    }
    Ok(head.map(|(vip, scheduler)| LbRules {
        vip,
        scheduler,
        members,
    }))
}

#[cfg(test)]
#[path = "nft_rules_tests.rs"]
mod tests;

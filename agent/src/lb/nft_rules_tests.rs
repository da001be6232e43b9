use super::*;
use ferry_shared::lb::DEFAULT_VIP;

fn a(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

fn rules(s: Scheduler, m: &[(&str, u32)]) -> LbRules {
    LbRules {
        vip: DEFAULT_VIP,
        scheduler: s,
        members: m.iter().map(|(x, w)| (a(x), *w)).collect(),
    }
}

#[test]
fn weighted_members_own_consecutive_slots() {
    let text = render(&rules(
        Scheduler::Wrr,
        &[
            ("10.0.0.2:6443", 1),
            ("10.0.0.3:6443", 0),
            ("10.0.0.4:6444", 2),
        ],
    ));
    assert!(
        text.starts_with("table ip ferry_lb {}\ndelete table ip ferry_lb\n"),
        "{text}"
    );
    assert!(text.contains("elements = { 10.0.0.3 . 6443 }"), "{text}");
    let rule = "ip daddr 10.103.97.2 tcp dport 6443 dnat to numgen inc mod 3 map { 0 : 10.0.0.2 . 6443, 1-2 : 10.0.0.4 . 6444 } comment \"ferry-lb scheduler=wrr\"";
    assert_eq!(text.matches(rule).count(), 2, "{text}");
    assert!(text.contains("hook output priority -100"));
    assert!(text.contains("hook prerouting priority dstnat"));
}

#[test]
fn no_serving_member_means_no_dnat() {
    let text = render(&rules(Scheduler::Rr, &[("10.0.0.2:6443", 0)]));
    assert!(!text.contains("dnat"), "{text}");
    assert!(text.contains("tcp dport 6443 counter comment \"ferry-lb scheduler=rr\""));
}

#[test]
fn schedulers_pick_their_key() {
    let m = [("10.0.0.2:6443", 1)];
    assert!(render(&rules(Scheduler::Sh, &m)).contains("jhash ip saddr mod 1"));
    assert!(render(&rules(Scheduler::Lc, &m)).contains("numgen random mod 1"));
}

/// What `nft -j list table ip ferry_lb` printed for the rules of
/// `weighted_members_own_consecutive_slots` (nft 1.0.6).
const LISTED: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}, {"table": {"family": "ip", "name": "ferry_lb", "handle": 3}}, {"set": {"family": "ip", "name": "draining", "table": "ferry_lb", "type": ["ipv4_addr", "inet_service"], "handle": 2, "elem": [{"concat": ["10.0.0.3", 6443]}]}}, {"chain": {"family": "ip", "table": "ferry_lb", "name": "prerouting", "handle": 1, "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}}, {"rule": {"family": "ip", "table": "ferry_lb", "chain": "prerouting", "handle": 4, "comment": "ferry-lb scheduler=wrr", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "10.103.97.2"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 6443}}, {"dnat": {"family": "ip", "addr": {"map": {"key": {"numgen": {"mode": "inc", "mod": 3, "offset": 0}}, "data": {"set": [[0, {"concat": ["10.0.0.2", 6443]}], [{"range": [1, 2]}, {"concat": ["10.0.0.4", 6444]}]]}}}}}]}}]}"#;

#[test]
fn parse_reads_back_what_render_wrote() {
    let want = rules(
        Scheduler::Wrr,
        &[
            ("10.0.0.2:6443", 1),
            ("10.0.0.3:6443", 0),
            ("10.0.0.4:6444", 2),
        ],
    );
    assert_eq!(parse(LISTED).unwrap(), Some(want));
    assert_eq!(parse(r#"{"nftables": []}"#).unwrap(), None);
    assert!(parse("nope").is_err());
}

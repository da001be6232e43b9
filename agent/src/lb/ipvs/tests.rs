//! Byte-exact netlink encodings (built by hand from
//! `include/uapi/linux/{netlink,genetlink,ip_vs}.h`, little-endian host),
//! reply parsing, and the diff. Run everywhere: no kernel needed.

use std::net::SocketAddrV4;

use ferry_shared::lb::{DEFAULT_VIP, LbRules, Scheduler};

use super::genl::{self, Attrs, NLM_F_ACK, NLM_F_REQUEST, Reply, parse_replies};
use super::msg::{self, Dest, FWD_MASQ, Service};
use super::plan::{KernelService, Op, plan};

fn a(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).unwrap()
}

#[test]
fn family_lookup_request_is_byte_exact() {
    let m = genl::family_request("IPVS", 9);
    let want = hex("20000000 1000 0500 09000000 00000000 \
         03010000 \
         09000200 49505653 00000000");
    assert_eq!(m, want);
}

const SERVICE_KEY: &str = "06000100 02000000 06000200 06000000 \
     14000300 0a676102 00000000 00000000 00000000 \
     06000400 192b0000";

#[test]
fn new_service_is_byte_exact() {
    let attrs = msg::service_full(DEFAULT_VIP, Scheduler::Rr);
    let m = genl::message(
        0x25,
        NLM_F_REQUEST | NLM_F_ACK,
        7,
        msg::CMD_NEW_SERVICE,
        1,
        &attrs,
    );
    let want = hex(&format!(
        "68000000 2500 0500 07000000 00000000 01010000 \
         54000180 {SERVICE_KEY} \
         07000600 72720000 \
         0c000700 00000000 ffffffff \
         08000800 00000000 \
         08000900 ffffffff"
    ));
    assert_eq!(hex::encode(&m), hex::encode(want));
}

#[test]
fn dest_is_byte_exact() {
    let attrs = msg::dest(DEFAULT_VIP, a("192.168.0.10:6443"), 3);
    let want = hex(&format!(
        "30000180 {SERVICE_KEY} \
         48000280 \
         14000100 c0a8000a 00000000 00000000 00000000 \
         06000200 192b0000 \
         08000300 00000000 \
         08000400 03000000 \
         08000500 00000000 \
         08000600 00000000 \
         06000b00 02000000"
    ));
    assert_eq!(hex::encode(&attrs.0), hex::encode(want));
    assert_eq!(
        hex::encode(&msg::service_only(DEFAULT_VIP).0),
        hex::encode(hex(&format!("30000180 {SERVICE_KEY}")))
    );
}

/// A kernel reply: header (seq 5, NLM_F_MULTI) + genl header + attrs.
fn reply(kind: u16, cmd: u8, attrs: &Attrs) -> Vec<u8> {
    let mut m = genl::message(kind, genl::NLM_F_MULTI, 5, cmd, 1, attrs);
    // A reply for another sequence number is skipped.
    m.extend(genl::message(kind, 0, 4, cmd, 1, attrs));
    m
}

#[test]
fn dumps_parse_back_what_was_encoded() {
    // The kernel answers GET_SERVICE with the full entry (plus stats etc.).
    let mut svc = msg::service_full(DEFAULT_VIP, Scheduler::Wlc);
    svc.u32(42, 0); // unknown top-level attribute: ignored
    let data = reply(0x25, msg::CMD_NEW_SERVICE, &svc);
    let replies = parse_replies(&data, 5).unwrap();
    assert_eq!(replies.len(), 1);
    let Reply::Data { cmd, attrs } = replies[0] else {
        panic!("{replies:?}")
    };
    assert_eq!(cmd, msg::CMD_NEW_SERVICE);
    assert_eq!(
        msg::parse_service(attrs).unwrap(),
        Some(Service {
            vip: DEFAULT_VIP,
            scheduler: "wlc".into()
        })
    );
    let d = msg::dest(DEFAULT_VIP, a("10.0.0.7:8443"), 0);
    let data = reply(0x25, msg::CMD_NEW_DEST, &d);
    let Reply::Data { attrs, .. } = parse_replies(&data, 5).unwrap()[0] else {
        panic!()
    };
    assert_eq!(
        msg::parse_dest(attrs).unwrap(),
        Some(Dest {
            addr: a("10.0.0.7:8443"),
            weight: 0,
            fwd: FWD_MASQ
        })
    );
}

#[test]
fn acks_errors_done_and_garbage() {
    // NLMSG_ERROR with -EEXIST (17), then the echoed request header.
    let mut m = hex("24000000 0200 0000 05000000 00000000 efffffff");
    m.extend(hex("14000000 2500 0500 05000000 00000000"));
    assert_eq!(parse_replies(&m, 5).unwrap(), vec![Reply::Ack(-17)]);
    let done = hex("14000000 0300 0200 05000000 00000000 00000000");
    assert_eq!(parse_replies(&done, 5).unwrap(), vec![Reply::Done]);
    assert!(parse_replies(&hex("ff000000 0300 0200 05000000 00000000"), 5).is_err());
    assert!(genl::parse_attrs(&hex("ff000100 00000000")).is_err());
    assert!(genl::parse_attrs(&hex("02000100")).is_err());
}

#[test]
fn non_tcp_or_ipv6_services_are_not_ours() {
    let mut inner = Attrs::default();
    inner.u16(1, 10).u16(2, 6); // AF_INET6
    let mut top = Attrs::default();
    top.nested(1, &inner);
    assert_eq!(msg::parse_service(&top.0).unwrap(), None);
    let mut inner = Attrs::default();
    inner.u16(1, 2).u16(2, 17); // UDP
    let mut top = Attrs::default();
    top.nested(1, &inner);
    assert_eq!(msg::parse_service(&top.0).unwrap(), None);
    assert!(msg::parse_service(&[]).is_err());
}

fn rules(s: Scheduler, m: &[(&str, u32)]) -> LbRules {
    LbRules {
        vip: DEFAULT_VIP,
        scheduler: s,
        members: m.iter().map(|(x, w)| (a(x), *w)).collect(),
    }
}

fn kernel(s: &str, d: &[(&str, u32)]) -> KernelService {
    KernelService {
        service: Service {
            vip: DEFAULT_VIP,
            scheduler: s.into(),
        },
        dests: d
            .iter()
            .map(|(x, w)| Dest {
                addr: a(x),
                weight: *w,
                fwd: FWD_MASQ,
            })
            .collect(),
    }
}

#[test]
fn plan_creates_then_changes_minimally() {
    let vip = DEFAULT_VIP;
    let want = rules(Scheduler::Rr, &[("10.0.0.2:6443", 1), ("10.0.0.3:6443", 0)]);
    assert_eq!(
        plan(None, &want),
        vec![
            Op::NewService {
                vip,
                scheduler: Scheduler::Rr
            },
            Op::NewDest {
                vip,
                addr: a("10.0.0.2:6443"),
                weight: 1
            },
            Op::NewDest {
                vip,
                addr: a("10.0.0.3:6443"),
                weight: 0
            },
        ]
    );
    // In line: nothing to send.
    let same = kernel("rr", &[("10.0.0.2:6443", 1), ("10.0.0.3:6443", 0)]);
    assert_eq!(plan(Some(&same), &want), vec![]);
    // Scheduler change, a removed, a drained and a new member.
    let cur = kernel(
        "wrr",
        &[
            ("10.0.0.2:6443", 1),
            ("10.0.0.9:6443", 1),
            ("10.0.0.3:6443", 1),
        ],
    );
    assert_eq!(
        plan(Some(&cur), &want),
        vec![
            Op::SetService {
                vip,
                scheduler: Scheduler::Rr
            },
            Op::DelDest {
                vip,
                addr: a("10.0.0.9:6443")
            },
            Op::SetDest {
                vip,
                addr: a("10.0.0.3:6443"),
                weight: 0
            },
        ]
    );
    // A destination with another forwarding method is corrected.
    let mut tun = same.clone();
    tun.dests[0].fwd = 2;
    assert_eq!(
        plan(Some(&tun), &want),
        vec![Op::SetDest {
            vip,
            addr: a("10.0.0.2:6443"),
            weight: 1
        }]
    );
    assert_eq!(
        Op::SetDest {
            vip,
            addr: a("10.0.0.3:6443"),
            weight: 0
        }
        .to_string(),
        "setting 10.0.0.3:6443 of IPVS service 10.103.97.2:6443 to weight 0"
    );
}

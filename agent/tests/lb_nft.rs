//! nftables backend conformance in a private network namespace (root and
//! Debian's `nft` needed; skipped with a message otherwise): apply, read
//! back, update, weight-0 draining, idempotent re-apply, VIP route, clear.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::net::SocketAddrV4;
use std::process::Command;

use ferry_agent::lb::Backend;
use ferry_agent::lb::nft::NftBackend;
use ferry_shared::lb::{DEFAULT_VIP, LbRules, Scheduler};

struct Netns(String);

impl Netns {
    fn new(test: &str) -> Option<Self> {
        if !rustix::process::geteuid().is_root() {
            eprintln!("SKIP: nftables conformance needs root");
            return None;
        }
        if Command::new("nft").arg("--version").output().is_err() {
            eprintln!("SKIP: `nft` is not installed (apt-get install nftables)");
            return None;
        }
        let name = format!("ferry-lb{test}-{}", std::process::id());
        let ns = Netns(name);
        ns.sh(&["ip", "netns", "add", &ns.0]);
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns.run(&[
            "ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1",
        ]);
        ns.run(&["ip", "link", "set", "d1", "up"]);
        ns.run(&["ip", "addr", "add", "10.77.1.1/24", "dev", "d0"]);
        ns.run(&["ip", "link", "set", "d0", "up"]);
        Some(ns)
    }

    fn sh(&self, argv: &[&str]) -> String {
        let out = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
        assert!(
            out.status.success(),
            "{argv:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn run(&self, argv: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.0];
        full.extend_from_slice(argv);
        self.sh(&full)
    }

    fn prefix(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.0].map(String::from).to_vec()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

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

#[tokio::test]
async fn nftables_backend_conformance() {
    let Some(ns) = Netns::new("c") else { return };
    let b = NftBackend::new(ns.prefix());
    assert_eq!(b.read().await.unwrap(), None);

    let r1 = rules(
        Scheduler::Wrr,
        &[
            ("10.77.1.2:6443", 2),
            ("10.77.1.3:6443", 1),
            ("10.77.1.4:6443", 0),
        ],
    );
    b.apply(&r1).await.unwrap();
    assert_eq!(b.read().await.unwrap(), Some(r1.effective()));
    // Idempotent.
    b.apply(&r1).await.unwrap();
    assert_eq!(b.read().await.unwrap(), Some(r1.effective()));
    let route = ns.run(&["ip", "route", "show", "10.103.97.2/32"]);
    assert!(
        route.contains("dev d0") && route.contains("src 10.77.1.1"),
        "{route}"
    );
    let listed = ns.run(&["nft", "list", "table", "ip", "ferry_lb"]);
    assert!(
        listed.contains("hook output") && listed.contains("hook prerouting"),
        "{listed}"
    );
    assert!(listed.contains("numgen inc mod 3"), "{listed}");

    // Update: a member leaves, one drains, rr ignores weights.
    let r2 = rules(
        Scheduler::Rr,
        &[("10.77.1.2:6443", 5), ("10.77.1.3:6443", 0)],
    );
    b.apply(&r2).await.unwrap();
    let got = b.read().await.unwrap().unwrap();
    assert_eq!(got, r2.effective());
    assert_eq!(got.members.get(&a("10.77.1.2:6443")), Some(&1));

    // Everything drained: no dnat, still readable.
    let r3 = rules(Scheduler::Rr, &[("10.77.1.2:6443", 0)]);
    b.apply(&r3).await.unwrap();
    assert_eq!(b.read().await.unwrap(), Some(r3.clone()));
    assert!(
        !ns.run(&["nft", "list", "table", "ip", "ferry_lb"])
            .contains("dnat")
    );

    // Other tables are untouched; clear removes only ours, twice is fine.
    ns.run(&["nft", "add", "table", "ip", "someone_else"]);
    b.clear().await.unwrap();
    b.clear().await.unwrap();
    assert_eq!(b.read().await.unwrap(), None);
    assert!(ns.run(&["nft", "list", "tables"]).contains("someone_else"));
    assert_eq!(
        ns.run(&["ip", "route", "show", "10.103.97.2/32"]).trim(),
        ""
    );
}

/// `ferry-agent lb-reset` (uninstall) removes table, route and state with
/// no agent running; a second run finds nothing.
#[tokio::test]
async fn reset_removes_rules_route_and_state() {
    let Some(ns) = Netns::new("r") else { return };
    let b = NftBackend::new(ns.prefix());
    let r = rules(Scheduler::Rr, &[("10.77.1.2:6443", 1)]);
    b.apply(&r).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ferry_agent::lb::store::Store::new(dir.path());
    store
        .save(&ferry_shared::lb::LbSpec {
            vip: DEFAULT_VIP,
            real_servers: vec![ferry_shared::lb::RealServer {
                addr: a("10.77.1.2:6443"),
                weight: 1,
            }],
            scheduler: Scheduler::Rr,
            health: Default::default(),
            backend: ferry_shared::lb::BackendKind::Nftables,
            version: 1,
        })
        .unwrap();
    let done = ferry_agent::lb::reset::reset(dir.path(), &ns.prefix())
        .await
        .unwrap();
    assert_eq!(done.removed.len(), 3, "{done:?}");
    assert_eq!(b.read().await.unwrap(), None);
    assert_eq!(
        ns.run(&["ip", "route", "show", "10.103.97.2/32"]).trim(),
        ""
    );
    assert!(!store.path().exists());
    let again = ferry_agent::lb::reset::reset(dir.path(), &ns.prefix())
        .await
        .unwrap();
    assert!(again.removed.is_empty(), "{again:?}");
}

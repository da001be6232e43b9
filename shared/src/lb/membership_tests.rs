use super::*;
use crate::lb::spec::{BackendKind, DEFAULT_VIP, RealServer, Scheduler};
use proptest::prelude::*;

fn addr(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

fn spec(rs: &[(&str, u32)]) -> LbSpec {
    LbSpec {
        vip: DEFAULT_VIP,
        real_servers: rs
            .iter()
            .map(|(a, w)| RealServer {
                addr: addr(a),
                weight: *w,
            })
            .collect(),
        scheduler: Scheduler::Wrr,
        health: HealthCheck::default(),
        backend: BackendKind::Nftables,
        version: 1,
    }
}

fn bad() -> ProbeResult {
    ProbeResult::Unhealthy {
        reason: "connection refused".into(),
    }
}

fn ok() -> ProbeResult {
    ProbeResult::Healthy { status: 200 }
}

#[test]
fn lvscare_sequence_drain_remove_readd() {
    let check = HealthCheck::default();
    let mut m = Member::new(addr("10.0.0.2:6443"), 3);
    assert_eq!(m.rule_weight(), Some(3));
    assert_eq!(m.observe(ok(), &check), None);
    let t = m.observe(bad(), &check).unwrap();
    assert_eq!(
        (t.from, t.to, t.weight),
        (MemberState::Active, MemberState::Draining, Some(0))
    );
    assert_eq!(
        t.message(),
        "member 10.0.0.2:6443 drained (weight 0): health check unhealthy: connection refused (1 consecutive)"
    );
    let t = m.observe(bad(), &check).unwrap();
    assert_eq!((t.to, t.weight), (MemberState::Removed, None));
    assert_eq!(m.observe(bad(), &check), None, "stays removed");
    let t = m.observe(ok(), &check).unwrap();
    assert_eq!((t.to, t.weight), (MemberState::Active, Some(3)));
    assert!(
        t.message().contains("re-added with weight 3"),
        "{}",
        t.message()
    );
}

#[test]
fn thresholds_count_consecutive_results() {
    let check = HealthCheck {
        healthy_threshold: 2,
        unhealthy_threshold: 3,
        ..HealthCheck::default()
    };
    let mut m = Member::new(addr("10.0.0.2:6443"), 1);
    assert!(m.observe(bad(), &check).is_none());
    assert!(m.observe(bad(), &check).is_none());
    assert!(
        m.observe(ok(), &check).is_none(),
        "a success resets failures"
    );
    assert!(m.observe(bad(), &check).is_none());
    assert!(m.observe(bad(), &check).is_none());
    assert_eq!(m.observe(bad(), &check).unwrap().to, MemberState::Draining);
    assert!(
        m.observe(ok(), &check).is_none(),
        "one success is not enough"
    );
    assert!(m.observe(bad(), &check).is_none(), "failures restart at 1");
    assert!(m.observe(ok(), &check).is_none());
    assert_eq!(m.observe(ok(), &check).unwrap().to, MemberState::Active);
}

#[test]
fn bad_status_is_unhealthy_unless_accepted() {
    let mut check = HealthCheck::default();
    assert!(!ProbeResult::from_status(500, &check).is_healthy());
    check.ok_statuses = vec![500];
    assert!(ProbeResult::from_status(500, &check).is_healthy());
}

#[test]
fn update_keeps_state_of_staying_members() {
    let s1 = spec(&[("10.0.0.2:6443", 1), ("10.0.0.3:6443", 1)]);
    let mut ms = Membership::new(&s1);
    ms.observe(addr("10.0.0.3:6443"), bad(), &s1.health);
    let s2 = spec(&[("10.0.0.3:6443", 5), ("10.0.0.4:6443", 1)]);
    let ms2 = ms.update(&s2);
    assert_eq!(ms2.members.len(), 2);
    assert_eq!(ms2.members[0].state, MemberState::Draining);
    assert_eq!(ms2.members[0].weight, 5);
    assert_eq!(ms2.members[1].state, MemberState::Active);
    let rules = ms2.rules(&s2);
    assert_eq!(
        rules.members.into_iter().collect::<Vec<_>>(),
        vec![(addr("10.0.0.3:6443"), 0), (addr("10.0.0.4:6443"), 1)]
    );
}

#[test]
fn results_for_unknown_members_are_ignored() {
    let s = spec(&[("10.0.0.2:6443", 1)]);
    let mut ms = Membership::new(&s);
    assert!(
        ms.observe(addr("10.0.0.9:6443"), bad(), &s.health)
            .is_none()
    );
}

proptest! {
    #[test]
    fn state_machine_invariants(
        results in proptest::collection::vec(any::<bool>(), 0..60),
        healthy in 1u32..4,
        unhealthy in 1u32..4,
    ) {
        let check = HealthCheck {
            healthy_threshold: healthy,
            unhealthy_threshold: unhealthy,
            ..HealthCheck::default()
        };
        let mut m = Member::new(addr("10.0.0.2:6443"), 2);
        let (mut run_ok, mut run_bad) = (0u32, 0u32);
        for r in results {
            let before = m.state;
            let t = m.observe(if r { ok() } else { bad() }, &check);
            if r { run_ok += 1; run_bad = 0 } else { run_bad += 1; run_ok = 0 }
            if let Some(t) = &t {
                // Only lvscare's edges exist.
                let edge = (t.from, t.to);
                prop_assert!(matches!(
                    edge,
                    (MemberState::Active, MemberState::Draining)
                        | (MemberState::Draining, MemberState::Removed)
                        | (MemberState::Draining, MemberState::Active)
                        | (MemberState::Removed, MemberState::Active)
                ), "edge {:?}", edge);
                prop_assert_eq!(t.from, before);
                prop_assert_eq!(t.weight, m.rule_weight());
            }
            if run_ok >= healthy { prop_assert_eq!(m.state, MemberState::Active); }
            if run_bad > unhealthy { prop_assert_eq!(m.state, MemberState::Removed); }
            if m.state == MemberState::Active && run_bad > 0 { prop_assert!(run_bad < unhealthy); }
            prop_assert_eq!(m.rule_weight().is_some(), m.state != MemberState::Removed);
        }
    }
}

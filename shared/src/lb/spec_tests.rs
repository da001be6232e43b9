use super::*;
use proptest::prelude::*;

pub(crate) fn spec(rs: &[&str]) -> LbSpec {
    LbSpec {
        vip: DEFAULT_VIP,
        real_servers: rs
            .iter()
            .map(|a| RealServer {
                addr: parse_addr(a, 6443).unwrap(),
                weight: 1,
            })
            .collect(),
        scheduler: Scheduler::Rr,
        health: HealthCheck::default(),
        backend: BackendKind::Auto,
        version: 1,
    }
}

#[test]
fn a_typical_spec_is_valid() {
    spec(&["10.0.0.2", "10.0.0.3:6443"]).validate().unwrap();
}

#[test]
fn invalid_specs_are_refused_with_the_reason() {
    let mut s = spec(&["10.0.0.2"]);
    s.real_servers.clear();
    assert_eq!(s.validate(), Err(LbSpecError::RealServerCount));
    let s = spec(&["10.0.0.2", "10.0.0.2:6443"]);
    assert!(matches!(s.validate(), Err(LbSpecError::Duplicate(_))));
    let s = spec(&["10.103.97.2:7000"]);
    assert!(matches!(s.validate(), Err(LbSpecError::IsVip(_))));
    let s = spec(&["0.0.0.0"]);
    assert!(matches!(s.validate(), Err(LbSpecError::RealServer(_))));
    let mut s = spec(&["10.0.0.2"]);
    s.real_servers[0].weight = 0;
    assert!(matches!(s.validate(), Err(LbSpecError::Weight { .. })));
    let mut s = spec(&["10.0.0.2"]);
    s.health.path = "healthz".into();
    assert!(matches!(s.validate(), Err(LbSpecError::Path(_))));
    let mut s = spec(&["10.0.0.2"]);
    s.health.interval_ms = 10;
    assert_eq!(s.validate(), Err(LbSpecError::Interval(10)));
    let mut s = spec(&["10.0.0.2"]);
    s.health.timeout_ms = 0;
    assert_eq!(s.validate(), Err(LbSpecError::Timeout(0)));
    let mut s = spec(&["10.0.0.2"]);
    s.health.unhealthy_threshold = 0;
    assert!(matches!(s.validate(), Err(LbSpecError::Threshold { .. })));
    let mut s = spec(&["10.0.0.2"]);
    s.health.ok_statuses = vec![700];
    assert_eq!(s.validate(), Err(LbSpecError::Status(700)));
    let mut s = spec(&["10.0.0.2"]);
    s.version = 0;
    assert_eq!(s.validate(), Err(LbSpecError::Version));
    let mut s = spec(&["10.0.0.2"]);
    s.vip = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 9), 0);
    assert!(matches!(s.validate(), Err(LbSpecError::Vip(_))));
}

#[test]
fn status_rule_is_lvscare_s() {
    let mut h = HealthCheck::default();
    assert!(h.status_is_healthy(200) && h.status_is_healthy(302));
    assert!(!h.status_is_healthy(403) && !h.status_is_healthy(500));
    h.ok_statuses = vec![403];
    assert!(h.status_is_healthy(403));
}

#[test]
fn names_round_trip() {
    for s in Scheduler::ALL {
        assert_eq!(s.as_str().parse::<Scheduler>().unwrap(), s);
        assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
    }
    for b in BackendKind::ALL {
        assert_eq!(b.as_str().parse::<BackendKind>().unwrap(), b);
    }
    assert!("RR".parse::<Scheduler>().is_err());
}

#[test]
fn exclude_cidrs_is_the_vip_host_route() {
    assert_eq!(
        kube_proxy_exclude_cidrs(*DEFAULT_VIP.ip()),
        vec!["10.103.97.2/32".to_string()]
    );
}

#[test]
fn same_state_ignores_only_the_version() {
    let a = spec(&["10.0.0.2"]);
    let mut b = a.clone();
    b.version = 9;
    assert!(a.same_state(&b));
    b.health.interval_ms = 1000;
    assert!(!a.same_state(&b));
}

proptest! {
    #[test]
    fn parse_addr_accepts_what_it_prints(a in any::<[u8; 4]>(), port in 1u16..) {
        let addr = SocketAddrV4::new(Ipv4Addr::from(a), port);
        prop_assert_eq!(parse_addr(&addr.to_string(), 1).unwrap(), addr);
        prop_assert_eq!(parse_addr(&addr.ip().to_string(), port).unwrap(), addr);
    }

    #[test]
    fn serde_round_trips(n in 1usize..5, interval in 100u64..10_000) {
        let rs: Vec<String> = (0..n).map(|i| format!("10.0.1.{}", i + 1)).collect();
        let refs: Vec<&str> = rs.iter().map(String::as_str).collect();
        let mut s = spec(&refs);
        s.health.interval_ms = interval;
        s.validate().unwrap();
        let back: LbSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        prop_assert_eq!(back, s);
    }
}

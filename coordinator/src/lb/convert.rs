//! prost ↔ domain for `ferry.lb.v1` on the coordinator side.

use ferry_proto::lb_pb as pb;
use ferry_shared::lb::LbSpec;

use super::{MemberStatus, NodeLbStatus};

pub fn spec(s: &LbSpec) -> pb::LoadBalancerSpec {
    pb::LoadBalancerSpec {
        vip: s.vip.to_string(),
        real_servers: s
            .real_servers
            .iter()
            .map(|r| pb::RealServer {
                addr: r.addr.to_string(),
                weight: r.weight,
            })
            .collect(),
        scheduler: s.scheduler.as_str().to_string(),
        health: Some(pb::HealthCheck {
            path: s.health.path.clone(),
            interval_ms: s.health.interval_ms,
            timeout_ms: s.health.timeout_ms,
            healthy_threshold: s.health.healthy_threshold,
            unhealthy_threshold: s.health.unhealthy_threshold,
            ok_statuses: s.health.ok_statuses.iter().map(|c| u32::from(*c)).collect(),
        }),
        backend: s.backend.as_str().to_string(),
        version: s.version,
    }
}

pub fn status(s: pb::LoadBalancerStatus) -> NodeLbStatus {
    NodeLbStatus {
        configured: s.configured,
        backend: s.backend,
        vip: s.vip,
        scheduler: s.scheduler,
        version: s.version,
        members: s
            .members
            .into_iter()
            .map(|m| MemberStatus {
                addr: m.addr,
                weight: m.weight,
                state: m.state,
                rule_weight: u32::try_from(m.rule_weight).ok(),
                last_check: m.last_check,
                consecutive_successes: m.consecutive_successes,
                consecutive_failures: m.consecutive_failures,
            })
            .collect(),
        last_error: s.last_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_shared::lb::{BackendKind, DEFAULT_VIP, HealthCheck, RealServer, Scheduler};

    #[test]
    fn spec_fields_are_carried() {
        let s = LbSpec {
            vip: DEFAULT_VIP,
            real_servers: vec![RealServer {
                addr: "10.0.0.2:6443".parse().unwrap(),
                weight: 2,
            }],
            scheduler: Scheduler::Wrr,
            health: HealthCheck {
                ok_statuses: vec![403],
                ..HealthCheck::default()
            },
            backend: BackendKind::Nftables,
            version: 42,
        };
        let p = spec(&s);
        assert_eq!(p.vip, "10.103.97.2:6443");
        assert_eq!(p.real_servers[0].addr, "10.0.0.2:6443");
        assert_eq!(
            (p.scheduler.as_str(), p.backend.as_str()),
            ("wrr", "nftables")
        );
        assert_eq!(p.health.unwrap().ok_statuses, vec![403]);
        let st = status(pb::LoadBalancerStatus {
            members: vec![pb::Member {
                rule_weight: -1,
                ..Default::default()
            }],
            ..Default::default()
        });
        assert_eq!(st.members[0].rule_weight, None);
    }
}

//! prost ↔ domain for the `ferry.lb.v1` service; invalid requests are
//! rejected here with `InvalidArgument`.

use ferry_proto::lb_pb as pb;
use ferry_shared::lb::{HealthCheck, LbSpec, MemberState, RealServer, parse_addr};
use tonic::Status;

use super::LbError;
use super::controller::LbStatus;

fn invalid(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

pub fn spec(p: pb::LoadBalancerSpec) -> Result<LbSpec, Status> {
    let h = p.health.unwrap_or_default();
    let spec = LbSpec {
        vip: parse_addr(&p.vip, 0).map_err(invalid)?,
        real_servers: p
            .real_servers
            .iter()
            .map(|r| {
                Ok(RealServer {
                    addr: parse_addr(&r.addr, 0).map_err(invalid)?,
                    weight: r.weight,
                })
            })
            .collect::<Result<_, Status>>()?,
        scheduler: p.scheduler.parse().map_err(invalid)?,
        health: HealthCheck {
            path: h.path,
            interval_ms: h.interval_ms,
            timeout_ms: h.timeout_ms,
            healthy_threshold: h.healthy_threshold,
            unhealthy_threshold: h.unhealthy_threshold,
            ok_statuses: h
                .ok_statuses
                .iter()
                .map(|s| u16::try_from(*s).map_err(|_| invalid(format!("HTTP status {s}"))))
                .collect::<Result<_, Status>>()?,
        },
        backend: p.backend.parse().map_err(invalid)?,
        version: p.version,
    };
    spec.validate().map_err(invalid)?;
    Ok(spec)
}

pub fn status(s: LbStatus) -> pb::LoadBalancerStatus {
    let Some(spec) = s.spec else {
        return pb::LoadBalancerStatus::default();
    };
    let members = s
        .membership
        .map(|m| m.members)
        .unwrap_or_default()
        .into_iter()
        .map(|m| pb::Member {
            addr: m.addr.to_string(),
            weight: m.weight,
            state: m.state.as_str().to_string(),
            rule_weight: match m.state {
                MemberState::Removed => -1,
                _ => m.rule_weight().map_or(-1, i64::from),
            },
            last_check: m.last.map(|r| r.describe()).unwrap_or_default(),
            consecutive_successes: m.successes,
            consecutive_failures: m.failures,
        })
        .collect();
    pb::LoadBalancerStatus {
        configured: true,
        backend: s.backend,
        vip: spec.vip.to_string(),
        scheduler: spec.scheduler.as_str().to_string(),
        version: spec.version,
        members,
        last_error: s.last_error,
    }
}

pub fn error(e: &LbError) -> Status {
    match e {
        LbError::Spec(_) => Status::invalid_argument(e.to_string()),
        LbError::Stale { .. } | LbError::Conflict(_) => Status::failed_precondition(e.to_string()),
        LbError::IpvsUnavailable(_) => Status::failed_precondition(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

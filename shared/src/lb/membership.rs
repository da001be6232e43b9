//! The health-driven membership state machine, as lvscare documents it:
//! an unhealthy member gets weight 0 (drained: existing connections keep
//! going, new ones avoid it), the next failure removes it, and once healthy
//! again it is re-added with its weight. Thresholds count consecutive
//! results: `unhealthy_threshold` failures drain, one more removes;
//! `healthy_threshold` successes re-add.

use std::net::SocketAddrV4;

use serde::{Deserialize, Serialize};

use super::rules::LbRules;
use super::spec::{HealthCheck, LbSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// In the rules with its configured weight.
    Active,
    /// In the rules with weight 0: no new connections.
    Draining,
    /// Not in the rules.
    Removed,
}

impl MemberState {
    pub const fn as_str(self) -> &'static str {
        match self {
            MemberState::Active => "active",
            MemberState::Draining => "draining",
            MemberState::Removed => "removed",
        }
    }
}

/// One health check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeResult {
    /// An HTTP status the check accepts.
    Healthy { status: u16 },
    /// Anything else: a refused connection, a TLS error, a timeout, a bad status.
    Unhealthy { reason: String },
}

impl ProbeResult {
    /// Classifies an HTTP status with the check's rule.
    pub fn from_status(status: u16, check: &HealthCheck) -> Self {
        if check.status_is_healthy(status) {
            ProbeResult::Healthy { status }
        } else {
            ProbeResult::Unhealthy {
                reason: format!("HTTP status {status}"),
            }
        }
    }

    pub fn is_healthy(&self) -> bool {
        matches!(self, ProbeResult::Healthy { .. })
    }

    pub fn describe(&self) -> String {
        match self {
            ProbeResult::Healthy { status } => format!("healthy (HTTP {status})"),
            ProbeResult::Unhealthy { reason } => format!("unhealthy: {reason}"),
        }
    }
}

/// A state change of one member, with the result that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub addr: SocketAddrV4,
    pub from: MemberState,
    pub to: MemberState,
    /// Weight in the rules after the change (None = not in the rules).
    pub weight: Option<u32>,
    pub result: ProbeResult,
    /// Consecutive results of this kind, including this one.
    pub consecutive: u32,
}

impl Transition {
    pub fn message(&self) -> String {
        let what = match self.to {
            MemberState::Active => "re-added with weight",
            MemberState::Draining => "drained (weight 0)",
            MemberState::Removed => "removed",
        };
        let weight = match (self.to, self.weight) {
            (MemberState::Active, Some(w)) => format!(" {w}"),
            _ => String::new(),
        };
        format!(
            "member {} {what}{weight}: health check {} ({} consecutive)",
            self.addr,
            self.result.describe(),
            self.consecutive
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub addr: SocketAddrV4,
    pub weight: u32,
    pub state: MemberState,
    pub successes: u32,
    pub failures: u32,
    pub last: Option<ProbeResult>,
}

impl Member {
    /// A new member starts active, as lvscare adds every real server first.
    pub fn new(addr: SocketAddrV4, weight: u32) -> Self {
        Self {
            addr,
            weight,
            state: MemberState::Active,
            successes: 0,
            failures: 0,
            last: None,
        }
    }

    /// The weight in the rules: configured when active, 0 when draining,
    /// none when removed.
    pub fn rule_weight(&self) -> Option<u32> {
        match self.state {
            MemberState::Active => Some(self.weight),
            MemberState::Draining => Some(0),
            MemberState::Removed => None,
        }
    }

    /// Feeds one health check result; returns the state change, if any.
    pub fn observe(&mut self, result: ProbeResult, check: &HealthCheck) -> Option<Transition> {
        let from = self.state;
        let consecutive;
        if result.is_healthy() {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
            consecutive = self.successes;
            if from != MemberState::Active && self.successes >= check.healthy_threshold {
                self.state = MemberState::Active;
            }
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
            consecutive = self.failures;
            let drain = check.unhealthy_threshold;
            match from {
                MemberState::Active if self.failures >= drain => {
                    self.state = MemberState::Draining;
                }
                MemberState::Draining if self.failures > drain => {
                    self.state = MemberState::Removed;
                }
                _ => {}
            }
        }
        self.last = Some(result.clone());
        (self.state != from).then(|| Transition {
            addr: self.addr,
            from,
            to: self.state,
            weight: self.rule_weight(),
            result,
            consecutive,
        })
    }
}

/// Every member of one load balancer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub members: Vec<Member>,
}

impl Membership {
    pub fn new(spec: &LbSpec) -> Self {
        Self {
            members: spec
                .real_servers
                .iter()
                .map(|rs| Member::new(rs.addr, rs.weight))
                .collect(),
        }
    }

    /// Members for a new spec: members that stay keep their health state
    /// (with the new weight), new ones start active, dropped ones go.
    pub fn update(&self, spec: &LbSpec) -> Self {
        let members = spec
            .real_servers
            .iter()
            .map(|rs| match self.members.iter().find(|m| m.addr == rs.addr) {
                Some(m) => Member {
                    weight: rs.weight,
                    ..m.clone()
                },
                None => Member::new(rs.addr, rs.weight),
            })
            .collect();
        Self { members }
    }

    /// Feeds a result for `addr` (ignored if it is no longer a member).
    pub fn observe(
        &mut self,
        addr: SocketAddrV4,
        result: ProbeResult,
        check: &HealthCheck,
    ) -> Option<Transition> {
        self.members
            .iter_mut()
            .find(|m| m.addr == addr)
            .and_then(|m| m.observe(result, check))
    }

    /// The rules these members call for.
    pub fn rules(&self, spec: &LbSpec) -> LbRules {
        LbRules {
            vip: spec.vip,
            scheduler: spec.scheduler,
            members: self
                .members
                .iter()
                .filter_map(|m| m.rule_weight().map(|w| (m.addr, w)))
                .collect(),
        }
    }
}

#[cfg(test)]
#[path = "membership_tests.rs"]
mod tests;

//! The apiserver VIP load balancer (lvscare's job), as pure domain logic:
//! the desired state the coordinator pushes ([`spec`]), the health-driven
//! membership state machine ([`membership`]) and the rules a backend
//! programs ([`rules`]). IPv4 only, like sealos's default VIP.

pub mod membership;
pub mod rules;
pub mod spec;

pub use membership::{Member, MemberState, Membership, ProbeResult, Transition};
pub use rules::LbRules;
pub use spec::{
    BackendKind, DEFAULT_VIP, HealthCheck, LbSpec, LbSpecError, RealServer, Scheduler,
    kube_proxy_exclude_cidrs, parse_addr,
};

//! Phases of the work ferry does on a node. Persisted and displayed through
//! [`Phase::as_str`], which is stable: never match on display text.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// TCP + SSH handshake and host-key verification.
    Connect,
    /// SSH user authentication (password or key).
    Authenticate,
    /// Checking that the SSH user may become root (sudo).
    Sudo,
    /// Copying the agent binary and its TLS material.
    Upload,
    /// Starting (or restarting) the agent: systemd unit or supervised daemon.
    Start,
    /// Waiting for the agent's gRPC endpoint to answer over mTLS.
    Ready,
    /// Asking a running agent for its host facts.
    Facts,
    /// Running a user command on the node.
    Exec,
    /// Stopping the agent and removing its files.
    Uninstall,
    /// The agent process itself (start, shutdown).
    Agent,
    /// The VIP load balancer on a node: desired state, health-driven
    /// membership changes, rule programming.
    LoadBalancer,
    /// Copying a tree to a node (`ferry scp`, rootfs distribution).
    Transfer,
    /// Pulling an image into the bastion's image store (per blob).
    Pull,
    /// Pushing an image to a registry (per blob).
    Push,
    /// Local image store work: tag, rmi, save, load, login.
    Image,
    /// The cluster pipeline (`ferry run/apply/add/delete/reset`); the
    /// event message starts with the step name (`ferry_shared::pipeline::Step`).
    Run,
    /// A node's health as `ferry status` reads it through its agent.
    Status,
}

impl Phase {
    pub const ALL: [Phase; 17] = [
        Phase::Connect,
        Phase::Authenticate,
        Phase::Sudo,
        Phase::Upload,
        Phase::Start,
        Phase::Ready,
        Phase::Facts,
        Phase::Exec,
        Phase::Uninstall,
        Phase::Agent,
        Phase::LoadBalancer,
        Phase::Transfer,
        Phase::Pull,
        Phase::Push,
        Phase::Image,
        Phase::Run,
        Phase::Status,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Authenticate => "authenticate",
            Phase::Sudo => "sudo",
            Phase::Upload => "upload",
            Phase::Start => "start",
            Phase::Ready => "ready",
            Phase::Facts => "facts",
            Phase::Exec => "exec",
            Phase::Uninstall => "uninstall",
            Phase::Agent => "agent",
            Phase::Transfer => "transfer",
            Phase::LoadBalancer => "load-balancer",
            Phase::Pull => "pull",
            Phase::Push => "push",
            Phase::Image => "image",
            Phase::Run => "run",
            Phase::Status => "status",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown phase `{0}`")]
pub struct UnknownPhase(pub String);

impl FromStr for Phase {
    type Err = UnknownPhase;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPhase(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_round_trips_and_matches_serde() {
        for p in Phase::ALL {
            assert_eq!(p.as_str().parse::<Phase>().unwrap(), p);
            assert_eq!(
                serde_json::to_string(&p).unwrap(),
                format!("\"{}\"", p.as_str())
            );
        }
        assert!("Connect".parse::<Phase>().is_err());
    }
}

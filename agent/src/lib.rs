//! ferry-agent: the node agent. It serves the `ferry.agent.v1.Agent` gRPC
//! service over mutual TLS only ([`serve`]), and can keep itself running on
//! hosts without systemd ([`daemon`], [`supervise`], [`stop`]).
//!
//! Invariants:
//! - nothing is ever served in plaintext; clients must present a certificate
//!   that chains to the cluster's agent CA;
//! - every RPC is the coordinator identity's only, but a relay Push of a
//!   transfer the coordinator planned here ([`authz`]);
//! - every process the agent starts runs in its own process group, which is
//!   SIGKILLed when its stream is dropped, times out, or the agent stops;
//! - every queue is bounded and every stream carries heartbeats.

pub mod accept;
pub mod authz;
pub mod convert;
pub mod daemon;
pub mod events;
pub mod exec;
pub mod facts;
pub mod home;
pub mod lb;
pub mod pidfile;
pub mod process_group;
pub mod server;
pub mod service;
pub mod supervise;
pub mod tls;
pub mod transfer;
pub mod trust;

pub use daemon::{DaemonError, DaemonOptions, StopOutcome, daemon, stop};
pub use events::EventBus;
pub use facts::self_sha256;
pub use server::{DEFAULT_EXEC_LIMIT, DEFAULT_HEARTBEAT, ServeConfig, serve};
pub use supervise::{SuperviseError, SuperviseOptions, supervise};
pub use tls::{TlsError, TlsMaterial};

/// The agent's version, as reported by `Facts` and `ferry-agent version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why [`serve`] failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("the gRPC server on {addr} failed: {source}")]
    Transport {
        addr: String,
        source: tonic::transport::Error,
    },
    #[error("cannot read the listening address: {0}")]
    LocalAddr(std::io::Error),
    #[error("agent startup task failed: {0}")]
    Task(String),
}

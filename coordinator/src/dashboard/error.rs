//! The dashboard's one error type: every variant names what it was doing
//! and, where the user can act, what to do next.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error(
        "refusing to listen on {addr} without {missing}: a non-loopback dashboard needs a token and TLS; next: add {next}, or listen on 127.0.0.1"
    )]
    Insecure {
        addr: std::net::SocketAddr,
        missing: &'static str,
        next: &'static str,
    },
    #[error("{flag}: {reason}")]
    Usage { flag: &'static str, reason: String },
    #[error("reading {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {path}: {reason}")]
    Invalid {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("generating the dashboard's self-signed certificate: {0}")]
    SelfSigned(String),
    #[error("TLS configuration for the dashboard: {0}")]
    Tls(String),
    #[error(
        "binding {addr}: {source}; next: pick another --listen address or stop what holds the port"
    )]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("state directory {path}: {source}")]
    Home {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error("no cluster `{0}` in the state directory")]
    NoCluster(String),
    #[error("event id `{0}`: expected GEN.LINE.EPOCH.ASEQ (four decimal numbers)")]
    BadEventId(String),
}

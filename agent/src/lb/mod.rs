//! The VIP load balancer controller (lvscare's job inside the agent): the
//! coordinator pushes a desired state ([`ferry_shared::lb::LbSpec`]), the
//! controller persists it, health-checks the members and keeps the kernel
//! rules in line through a [`Backend`] (IPVS over generic netlink where the
//! kernel has it, else nftables).
//!
//! Invariants: rules live in their own table (`ip ferry_lb`) or the VIP's
//! own IPVS service, so nothing else is touched; the desired state survives
//! agent restarts (persisted 0600 under the agent's state dir, restored at
//! start); the rules stay in the kernel while the agent is down, and only
//! `DeleteLoadBalancer` or `ferry-agent lb-reset` (uninstall) removes them.

pub mod backend;
pub mod controller;
pub mod convert;
pub mod health;
pub mod ipvs;
pub mod nft;
pub mod nft_rules;
pub mod reset;
pub mod service;
pub mod store;
pub mod vip;

use std::path::PathBuf;

pub use backend::{Backend, BackendFactory, SystemBackends};
pub use controller::{LbController, LbStatus, SetOutcome};
pub use service::LbService;

/// Why a load-balancer operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LbError {
    #[error("invalid load balancer spec: {0}")]
    Spec(#[from] ferry_shared::lb::LbSpecError),
    #[error("version {offered} is older than the version {held} this node holds; refusing")]
    Stale { offered: u64, held: u64 },
    #[error("version {0} is already held with a different state; use a newer version")]
    Conflict(u64),
    #[error("IPVS not available on this kernel ({0}); use the nftables backend")]
    IpvsUnavailable(String),
    #[error("IPVS over netlink: {0}")]
    Ipvs(#[from] ipvs::genl::GenlError),
    #[error("cannot run `{argv}`: {source}")]
    Spawn {
        argv: String,
        source: std::io::Error,
    },
    #[error("`{argv}` failed ({status}): {stderr}")]
    Command {
        argv: String,
        status: String,
        stderr: String,
    },
    #[error("cannot parse the output of `{argv}`: {detail}")]
    Parse { argv: String, detail: String },
    #[error("load balancer state file {path}: {source}")]
    Store {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("load balancer state file {path} is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("TLS client setup failed: {0}")]
    Tls(String),
}

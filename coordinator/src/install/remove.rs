//! Removing a host's agent the way that needs the least: through the
//! agent itself when it answers (`self_remove.rs`), over SSH otherwise
//! (`uninstall.rs`). `ferry reset` and `ferry agent uninstall` share it.

use std::net::IpAddr;

use super::{InstallError, remove_via_agent, uninstall_host};
use crate::client::ClientTls;
use crate::output::Reporter;
use crate::ssh::{SshOptions, SshTarget};
use crate::state::NodeRecord;

/// One host whose agent goes.
pub struct RemoveJob {
    pub ip: IpAddr,
    /// The host as the user knows it (`ip` or `ip:port`).
    pub host: String,
    /// Its inventory record: an agent recorded there is asked first.
    pub known: Option<NodeRecord>,
    /// How to reach it over SSH, or why it cannot be.
    pub target: Result<SshTarget, String>,
}

/// Removes the agent of `job`: through the agent when it answers, else
/// over SSH; an error says why SSH was needed when it could not be used.
pub async fn remove_host(
    job: RemoveJob,
    ssh: SshOptions,
    tls: ClientTls,
    r: Reporter,
) -> Result<(), InstallError> {
    let why = match &job.known {
        Some(k) => match remove_via_agent(&job.host, job.ip, k.agent_port, &tls, &r).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        },
        None => "no agent recorded".to_string(),
    };
    match job.target {
        Ok(t) => uninstall_host(t, ssh, r).await,
        Err(reason) => Err(InstallError::NoSsh {
            host: job.host,
            why_ssh: why,
            reason,
        }),
    }
}

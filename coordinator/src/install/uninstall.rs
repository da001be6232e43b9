//! Removing the agent from a node over SSH.

use ferry_shared::{EventKind, Phase};

use super::InstallError;
use super::layout;
use crate::output::Reporter;
use crate::ssh::{SshOptions, SshSession, SshTarget};

/// Stops the agent (systemd unit or daemon), removes the load balancer's
/// kernel rules and the agent's files.
pub async fn uninstall_host(
    target: SshTarget,
    ssh: SshOptions,
    r: Reporter,
) -> Result<(), InstallError> {
    let host = target.addr.to_string();
    r.emit(r.event(&host, Phase::Connect, EventKind::Started));
    let s = SshSession::connect(&target, &ssh).await?;
    r.emit(r.event(&host, Phase::Connect, EventKind::Finished));
    if !s.is_root() {
        s.check_sudo().await?;
    }
    r.emit(r.event(&host, Phase::Uninstall, EventKind::Started));
    let result = remove(&s).await;
    s.close().await;
    result?;
    r.emit(
        r.event(&host, Phase::Uninstall, EventKind::Finished)
            .message(format!(
                "removed {} and {}",
                layout::AGENT_DIR,
                layout::CACHE_DIR
            ))
            .counter("ssh", 1),
    );
    Ok(())
}

async fn remove(s: &SshSession) -> Result<(), InstallError> {
    if s.run(&["test", "-f", layout::UNIT_PATH], None).await?.code == Some(0) {
        s.run_privileged_ok(&["systemctl", "disable", "--now", layout::UNIT_NAME])
            .await?;
        s.run_privileged_ok(&["rm", "-f", layout::UNIT_PATH])
            .await?;
        s.run_privileged_ok(&["systemctl", "daemon-reload"]).await?;
    }
    if s.run_privileged(&["test", "-x", layout::AGENT_BIN])
        .await?
        .code
        == Some(0)
    {
        let stop = layout::stop_daemon_command();
        let stop: Vec<&str> = stop.iter().map(String::as_str).collect();
        s.run_privileged_ok(&stop).await?;
        // With the agent stopped nothing re-applies the rules: remove the
        // load balancer's nftables/IPVS rules, VIP route/link and state.
        let reset = layout::lb_reset_command();
        let reset: Vec<&str> = reset.iter().map(String::as_str).collect();
        s.run_privileged_ok(&reset).await?;
    }
    s.run_privileged_ok(&["rm", "-rf", layout::AGENT_DIR, layout::CACHE_DIR])
        .await?;
    // Leave /var/lib/ferry if other ferry data lives there.
    s.run_privileged(&["rmdir", "--ignore-fail-on-non-empty", "/var/lib/ferry"])
        .await?;
    Ok(())
}

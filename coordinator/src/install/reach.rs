//! Whether a host's recorded agent can be used as it is, without SSH: the
//! question `install_host` asks before it opens SSH, and the one `ferry
//! plan` answers per host ahead of a run.

use std::net::IpAddr;
use std::time::Duration;

use crate::client::{AgentClient, ClientTls};
use crate::install::layout;
use crate::state::NodeRecord;

/// How long a recorded agent gets to answer before SSH is used instead.
pub const REUSE_TIMEOUT: Duration = Duration::from_secs(3);

/// The agent at `ip` over mTLS, if it answers as the node ferry names for
/// `ip` and (when `expected_sha` is given) with that binary; otherwise why
/// SSH is needed, in words for events and the plan.
pub async fn answering_agent(
    ip: IpAddr,
    port: u16,
    tls: &ClientTls,
    expected_sha: Option<&str>,
    timeout: Duration,
) -> Result<ferry_shared::Facts, String> {
    let facts = async {
        let c = AgentClient::connect(ip, port, tls, timeout).await?;
        c.facts().await
    };
    let facts = match tokio::time::timeout(timeout + timeout, facts).await {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => return Err(format!("agent not answering: {e}")),
        Err(_) => return Err(format!("agent not answering within {timeout:?}")),
    };
    if let Some(sha) = expected_sha
        && facts.agent_sha256 != sha
    {
        return Err(format!(
            "agent {} is not the expected binary (sha256 {})",
            facts.agent_version,
            short(&facts.agent_sha256)
        ));
    }
    if facts.node_name != layout::node_name(ip) {
        return Err(format!("agent answers as {}", facts.node_name));
    }
    Ok(facts)
}

/// Why a host with this record needs SSH, or `None` when its agent can be
/// asked (the caller then probes it).
pub fn needs_ssh_without_probe(known: Option<&NodeRecord>, force: bool) -> Option<String> {
    match (known, force) {
        (_, true) => Some("--force".to_string()),
        (None, _) => Some("no agent recorded for this host".to_string()),
        (Some(_), false) => None,
    }
}

pub fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_without_a_probe() {
        assert_eq!(
            needs_ssh_without_probe(None, false).as_deref(),
            Some("no agent recorded for this host")
        );
        assert_eq!(
            needs_ssh_without_probe(None, true).as_deref(),
            Some("--force")
        );
        assert_eq!(short("0123456789abcdef"), "0123456789ab");
        assert_eq!(short("abc"), "abc");
    }

    #[tokio::test]
    async fn nothing_listening_is_a_reason() {
        let dir = tempfile::tempdir().expect("dir");
        let pki = crate::state::AgentPki::load_or_create(dir.path(), "t").expect("pki");
        let tls = ClientTls::from_pki(&pki);
        // Port 1 on loopback: nothing listens there.
        let e = answering_agent(
            "127.0.0.1".parse().expect("ip"),
            1,
            &tls,
            None,
            Duration::from_millis(500),
        )
        .await
        .expect_err("no agent");
        assert!(e.starts_with("agent not answering"), "{e}");
    }
}

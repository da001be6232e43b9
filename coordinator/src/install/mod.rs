//! Agent bootstrap over SSH: the only place ferry needs SSH, and only for
//! hosts without a recorded agent that answers over mTLS with the expected
//! binary (new hosts, dead or outdated agents). Per SSH host: connect (host
//! key checked) → sudo check → probe → upload what differs → (re)start →
//! wait for mTLS readiness. A host whose agent already runs the same binary
//! with valid TLS is left untouched (zero bytes uploaded).

pub mod layout;
pub mod local_agent;
pub mod reach;
mod remove;
mod self_remove;
mod uninstall;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_shared::pki::agent_ca::LEAF_VALIDITY;
use ferry_shared::pki::revoked::AGENT_REVOKED_FILE;
use ferry_shared::pki::{CertInfo, Issued, Revoked};
use ferry_shared::{EventKind, HostAddr, Phase};
use time::OffsetDateTime;

pub use layout::{DEFAULT_AGENT_PORT, Supervisor};
pub use local_agent::{LocalAgent, LocalAgentError};
pub use remove::{RemoveJob, remove_host};
pub use self_remove::remove_via_agent;
pub use uninstall::uninstall_host;

use crate::client::{AgentClient, ClientTls};
use crate::output::{Reporter, now_ms};
use crate::ssh::{SshError, SshOptions, SshSession, SshTarget};
use crate::state::{AgentPki, NodeRecord, SshSettings};
use crate::trust::TrustClient;

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// A remote command of a specific install step failed.
    #[error("{phase} step failed: {source}")]
    Step { phase: Phase, source: SshError },
    #[error(
        "{host}: node arch is {node}, but the agent binary is {agent}; pass --agent-bin with a {node} build"
    )]
    ArchMismatch {
        host: String,
        node: String,
        agent: &'static str,
    },
    #[error("{host}: issuing the agent certificate failed: {source}")]
    Pki {
        host: String,
        source: ferry_shared::pki::PkiError,
    },
    #[error(
        "{host}: the agent did not answer over mTLS within {after:?} ({detail}); agent log tail:\n{log_tail}\nnext: check the log on the node ({log}) and that port {port} is free"
    )]
    NotReady {
        host: String,
        after: Duration,
        detail: String,
        log_tail: String,
        log: &'static str,
        port: u16,
    },
    #[error(
        "{host}: the running agent has sha256 {got}, expected {want}; it was not replaced — run `ferry agent upgrade`"
    )]
    Mismatch {
        host: String,
        want: String,
        got: String,
    },
    #[error("{host}: the agent runs but did not take the revocation list: {detail}")]
    Trust { host: String, detail: String },
    #[error(
        "{host}: SSH is needed ({why_ssh}) but cannot be used: {reason}; next: start the agent on the node, or give SSH credentials (-i/-p or ssh: in the Clusterfile)"
    )]
    NoSsh {
        host: String,
        why_ssh: String,
        reason: String,
    },
}

impl InstallError {
    pub fn phase(&self) -> Phase {
        match self {
            InstallError::Ssh(e) => e.phase(),
            InstallError::Step { phase, .. } => *phase,
            InstallError::ArchMismatch { .. } | InstallError::NoSsh { .. } => Phase::Connect,
            InstallError::Pki { .. } => Phase::Upload,
            InstallError::NotReady { .. }
            | InstallError::Mismatch { .. }
            | InstallError::Trust { .. } => Phase::Ready,
        }
    }
}

/// Everything shared by the per-host install tasks.
pub struct InstallCtx {
    pub agent: LocalAgent,
    pub pki: Arc<AgentPki>,
    pub tls: ClientTls,
    pub ssh: SshOptions,
    pub port: u16,
    /// Re-upload and restart even when the agent is up to date.
    pub force: bool,
    pub ready_timeout: Duration,
    pub reporter: Reporter,
    /// The cluster state directory where the SSH settings that reached a
    /// host are recorded (`ssh.json`); `None`: not recorded.
    pub remember: Option<PathBuf>,
}

impl InstallCtx {
    /// Records the known_hosts file and host-key policy this install
    /// reached a host with (once it did), for later commands.
    fn remember_ssh(&self, host: &str) {
        let Some(dir) = &self.remember else { return };
        let used = SshSettings {
            known_hosts: Some(self.ssh.known_hosts.clone()),
            host_key_policy: Some(self.ssh.policy.as_str().to_string()),
        };
        match SshSettings::load(dir) {
            Ok(stored) if stored == used => {}
            _ => {
                if let Err(e) = used.save(dir) {
                    let r = &self.reporter;
                    r.emit(
                        r.event(host, Phase::Connect, EventKind::Progress)
                            .message(format!("warning: SSH settings not recorded: {e}")),
                    );
                }
            }
        }
    }
}

/// One host to install, with its sealos roles.
pub struct HostJob {
    pub addr: HostAddr,
    /// How to reach the host over SSH, or why it cannot be (no
    /// credentials): only needed when its agent does not answer.
    pub target: Result<SshTarget, String>,
    pub roles: Vec<String>,
    /// The host's inventory record: an agent that answers there over mTLS
    /// with the expected binary is used as it is, without SSH.
    pub known: Option<NodeRecord>,
}

impl HostJob {
    /// A host reached over SSH only (`ferry agent install|upgrade`).
    pub fn ssh(target: SshTarget, roles: Vec<String>, known: Option<NodeRecord>) -> Self {
        Self {
            addr: target.addr,
            target: Ok(target),
            roles,
            known,
        }
    }
}

struct Probe {
    hostname: String,
    arch: String,
    supervisor: Supervisor,
    remote_sha: Option<String>,
}

async fn probe(s: &SshSession) -> Result<Probe, SshError> {
    let hostname = String::from_utf8_lossy(&s.run_ok(&["uname", "-n"], None).await?.stdout)
        .trim()
        .to_string();
    let machine = String::from_utf8_lossy(&s.run_ok(&["uname", "-m"], None).await?.stdout)
        .trim()
        .to_string();
    // sd_booted(3): systemd is PID 1 iff this directory exists.
    let systemd = s
        .run(&["test", "-d", "/run/systemd/system"], None)
        .await?
        .code
        == Some(0);
    let sha = s.run_privileged(&["sha256sum", layout::AGENT_BIN]).await?;
    let remote_sha = (sha.code == Some(0))
        .then(|| {
            String::from_utf8_lossy(&sha.stdout)
                .split_whitespace()
                .next()
                .map(str::to_string)
        })
        .flatten();
    Ok(Probe {
        hostname,
        arch: ferry_shared::facts::kube_arch(&machine).to_string(),
        supervisor: if systemd {
            Supervisor::Systemd
        } else {
            Supervisor::Daemon
        },
        remote_sha,
    })
}

/// Installs (or upgrades) the agent on one host.
///
/// SSH only where it is needed: a host whose recorded agent answers over
/// mTLS (our CA) with the expected binary and node name is used through
/// that agent; the Connect event says which way (`ssh` counter 0 or 1)
/// and, for SSH, why.
pub async fn install_host(job: HostJob, ctx: Arc<InstallCtx>) -> Result<NodeRecord, InstallError> {
    let host = job.addr.to_string();
    let r = &ctx.reporter;
    r.emit(r.event(&host, Phase::Connect, EventKind::Started));
    let why_ssh = match (ctx.force, &job.known) {
        (false, Some(known)) => match reuse(&job, known, &ctx, &host).await {
            Ok(record) => return Ok(record),
            Err(why) => why,
        },
        _ => reach::needs_ssh_without_probe(job.known.as_ref(), ctx.force).unwrap_or_default(),
    };
    let target = job.target.as_ref().map_err(|reason| InstallError::NoSsh {
        host: host.clone(),
        why_ssh: why_ssh.clone(),
        reason: reason.clone(),
    })?;
    let session = SshSession::connect(target, &ctx.ssh).await?;
    ctx.remember_ssh(&host);
    r.emit(
        r.event(&host, Phase::Connect, EventKind::Finished)
            .message(format!("SSH as {} ({why_ssh})", target.user))
            .counter("ssh", 1),
    );
    if !session.is_root() {
        r.emit(r.event(&host, Phase::Sudo, EventKind::Started));
        session.check_sudo().await?;
        r.emit(r.event(&host, Phase::Sudo, EventKind::Finished));
    }
    let result = install_on(&session, &job, target, &ctx, &host).await;
    session.close().await;
    result
}

/// The recorded agent, if it answers over mTLS with the expected binary
/// and node name: its record (trust synced), or why SSH is needed.
async fn reuse(
    job: &HostJob,
    known: &NodeRecord,
    ctx: &InstallCtx,
    host: &str,
) -> Result<NodeRecord, String> {
    let ip = job.addr.ip;
    let facts = reach::answering_agent(
        ip,
        ctx.port,
        &ctx.tls,
        Some(&ctx.agent.sha256),
        reach::REUSE_TIMEOUT,
    )
    .await?;
    let record = NodeRecord {
        addr: job.addr,
        agent_port: ctx.port,
        roles: job.roles.clone(),
        agent_version: facts.agent_version.clone(),
        agent_sha256: facts.agent_sha256.clone(),
        replaced_cert: None,
        ..known.clone()
    };
    let record = sync_trust(ip, ctx, host, record)
        .await
        .map_err(|e| e.to_string())?;
    let r = &ctx.reporter;
    r.emit(
        r.event(host, Phase::Connect, EventKind::Finished)
            .message(format!(
                "no SSH: agent {} answers over mTLS",
                facts.agent_version
            ))
            .counter("ssh", 0),
    );
    up_to_date(r, host, &facts.agent_version);
    Ok(record)
}

/// The events of a host whose agent was already the expected one.
fn up_to_date(r: &Reporter, host: &str, version: &str) {
    r.emit(
        r.event(host, Phase::Upload, EventKind::Finished)
            .message("agent up to date, nothing uploaded")
            .counter("uploaded_bytes", 0)
            .counter("skipped", 1),
    );
    r.emit(
        r.event(host, Phase::Ready, EventKind::Finished)
            .message(format!("agent {version} ready")),
    );
}

async fn install_on(
    s: &SshSession,
    job: &HostJob,
    target: &SshTarget,
    ctx: &InstallCtx,
    host: &str,
) -> Result<NodeRecord, InstallError> {
    let r = &ctx.reporter;
    let p = probe(s).await?;
    if p.arch != ctx.agent.arch {
        return Err(InstallError::ArchMismatch {
            host: host.to_string(),
            node: p.arch,
            agent: ctx.agent.arch,
        });
    }
    let ip = job.addr.ip;
    let node_name = layout::node_name(ip);
    let record = NodeRecord {
        addr: job.addr,
        agent_port: ctx.port,
        roles: job.roles.clone(),
        hostname: p.hostname.clone(),
        ssh_user: target.user.clone(),
        agent_version: String::new(),
        agent_sha256: ctx.agent.sha256.clone(),
        supervisor: p.supervisor.as_str().to_string(),
        installed_at_ms: now_ms(),
        cert_serial: String::new(),
        cert_not_after: 0,
        replaced_cert: None,
    };
    let binary_current = p.remote_sha.as_deref() == Some(ctx.agent.sha256.as_str());
    if binary_current && !ctx.force {
        // Same binary on disk: if it also answers with our CA, nothing to do.
        if let Ok(facts) = facts_once(ip, ctx, Duration::from_secs(3)).await
            && facts.agent_sha256 == ctx.agent.sha256
            && facts.node_name == node_name
        {
            let record = NodeRecord {
                agent_version: facts.agent_version.clone(),
                ..record
            };
            let record = sync_trust(ip, ctx, host, record).await?;
            up_to_date(r, host, &facts.agent_version);
            return Ok(record);
        }
    }
    r.emit(r.event(host, Phase::Upload, EventKind::Started));
    s.run_privileged_ok(&[
        "mkdir",
        "-p",
        "-m",
        "0700",
        layout::AGENT_DIR,
        layout::TLS_DIR,
    ])
    .await?;
    let replaced = current_cert(s).await;
    let mut sent = 0u64;
    if !binary_current || ctx.force {
        sent += s
            .upload_file(&ctx.agent.path, layout::AGENT_BIN, 0o755)
            .await?;
    }
    let leaf = issue_leaf(&ctx.pki, ip, &p.hostname).map_err(|source| InstallError::Pki {
        host: host.to_string(),
        source,
    })?;
    let bundle = ctx.pki.trust_bundle();
    // The coordinator's revocation list goes with them: the agent refuses
    // revoked certificates from its start, and a list of another CA or a
    // lost bastion (higher generation) does not outlive the re-enrolment.
    let revoked =
        serde_json::to_vec(&ctx.pki.revoked.for_agent()).map_err(|e| InstallError::Trust {
            host: host.to_string(),
            detail: e.to_string(),
        })?;
    let discard = layout::discard_staged_tls();
    s.run_privileged_ok(&discard.iter().map(String::as_str).collect::<Vec<_>>())
        .await?;
    let tls_files: [(&str, &[u8], u32); 4] = [
        ("ca.crt", bundle.as_bytes(), 0o644),
        ("agent.crt", leaf.cert_pem.as_bytes(), 0o644),
        ("agent.key", leaf.key_pem.expose().as_bytes(), 0o600),
        (AGENT_REVOKED_FILE, &revoked, 0o600),
    ];
    for (name, data, mode) in tls_files {
        s.upload_bytes(data, &format!("{}/{name}", layout::TLS_DIR), mode)
            .await?;
        sent += data.len() as u64;
    }
    if p.supervisor == Supervisor::Systemd {
        let unit = layout::render_unit(ctx.port, &node_name);
        s.upload_bytes(unit.as_bytes(), layout::UNIT_PATH, 0o644)
            .await?;
        sent += unit.len() as u64;
    }
    r.emit(
        r.event(host, Phase::Upload, EventKind::Finished)
            .counter("uploaded_bytes", sent)
            .counter("skipped", 0),
    );
    r.emit(
        r.event(host, Phase::Start, EventKind::Started)
            .message(p.supervisor.as_str()),
    );
    for argv in layout::start_commands(p.supervisor, ctx.port, &node_name) {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        s.run_privileged_ok(&argv)
            .await
            .map_err(|source| InstallError::Step {
                phase: Phase::Start,
                source,
            })?;
    }
    r.emit(r.event(host, Phase::Start, EventKind::Finished));
    r.emit(r.event(host, Phase::Ready, EventKind::Started));
    let facts = wait_ready(s, ip, ctx, host, p.supervisor).await?;
    if facts.agent_sha256 != ctx.agent.sha256 {
        return Err(InstallError::Mismatch {
            host: host.to_string(),
            want: ctx.agent.sha256.clone(),
            got: facts.agent_sha256,
        });
    }
    let record = NodeRecord {
        agent_version: facts.agent_version.clone(),
        ..record
    };
    let mut record = sync_trust(ip, ctx, host, record).await?;
    record.replaced_cert = replaced
        .filter(|c| c.serial != record.cert_serial)
        .map(|c| Revoked {
            serial: c.serial,
            what: format!("replaced agent certificate {host}"),
            not_after: c.not_after,
        });
    r.emit(
        r.event(host, Phase::Ready, EventKind::Finished)
            .message(format!("agent {} ready", facts.agent_version)),
    );
    Ok(record)
}

/// The agent certificate on the node before this install replaces it.
async fn current_cert(s: &SshSession) -> Option<CertInfo> {
    let path = format!("{}/agent.crt", layout::TLS_DIR);
    let out = s.run_privileged(&["cat", &path]).await.ok()?;
    (out.code == Some(0))
        .then(|| CertInfo::from_pem(&String::from_utf8_lossy(&out.stdout), &path).ok())
        .flatten()
}

/// Gives the agent the current revocation list (a new agent refuses removed
/// hosts' certificates from its start) and records its certificate.
async fn sync_trust(
    ip: IpAddr,
    ctx: &InstallCtx,
    host: &str,
    record: NodeRecord,
) -> Result<NodeRecord, InstallError> {
    let err = |detail: String| InstallError::Trust {
        host: host.to_string(),
        detail,
    };
    let c = AgentClient::connect(ip, ctx.port, &ctx.tls, Duration::from_secs(10))
        .await
        .map_err(|e| err(e.to_string()))?;
    let tc = TrustClient::new(&c);
    let mut t = tc
        .set_revoked(&ctx.pki.revoked)
        .await
        .map_err(|e| err(e.to_string()))?;
    // A host `ferry delete` removed (its certificate revoked) comes back
    // with a new one; so does a certificate of another CA or one due.
    let ca =
        CertInfo::from_pem(ctx.pki.ca.cert_pem(), "agent CA").map_err(|e| err(e.to_string()))?;
    if ctx.pki.revoked.contains(&t.cert.serial)
        || !t.cert.issued_by(&ca)
        || crate::state::renewal_due(t.cert.not_after)
    {
        let leaf =
            issue_leaf(&ctx.pki, ip, &record.hostname).map_err(|source| InstallError::Pki {
                host: host.to_string(),
                source,
            })?;
        t = tc
            .install_tls(&ctx.pki.trust_bundle(), Some(&leaf))
            .await
            .map_err(|e| err(e.to_string()))?;
    }
    Ok(NodeRecord {
        cert_serial: t.cert.serial,
        cert_not_after: t.cert.not_after,
        ..record
    })
}

async fn facts_once(
    ip: IpAddr,
    ctx: &InstallCtx,
    timeout: Duration,
) -> Result<ferry_shared::Facts, crate::client::ClientError> {
    let c = AgentClient::connect(ip, ctx.port, &ctx.tls, timeout).await?;
    c.facts().await
}

async fn wait_ready(
    s: &SshSession,
    ip: IpAddr,
    ctx: &InstallCtx,
    host: &str,
    sup: Supervisor,
) -> Result<ferry_shared::Facts, InstallError> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        let err = match facts_once(ip, ctx, Duration::from_secs(2)).await {
            Ok(f) if f.agent_sha256 == ctx.agent.sha256 => return Ok(f),
            // The old agent may still be answering while the new one starts.
            Ok(f) => format!("old agent {} still answering", f.agent_version),
            Err(e) => e.to_string(),
        };
        if start.elapsed() >= ctx.ready_timeout {
            return Err(InstallError::NotReady {
                host: host.to_string(),
                after: ctx.ready_timeout,
                detail: err,
                log_tail: log_tail(s, sup).await,
                log: layout::LOGFILE,
                port: ctx.port,
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

async fn log_tail(s: &SshSession, sup: Supervisor) -> String {
    let out = match sup {
        Supervisor::Systemd => {
            s.run_privileged(&[
                "journalctl",
                "-u",
                layout::UNIT_NAME,
                "-n",
                "20",
                "--no-pager",
            ])
            .await
        }
        Supervisor::Daemon => {
            s.run_privileged(&["tail", "-n", "20", layout::LOGFILE])
                .await
        }
    };
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(e) => format!("(could not read the log: {e})"),
    }
}

/// A new certificate for the agent at `ip`, of the current CA: SANs the IP
/// and the hostname (when it is a DNS name).
pub(crate) fn issue_leaf(
    pki: &AgentPki,
    ip: IpAddr,
    hostname: &str,
) -> Result<Issued, ferry_shared::pki::PkiError> {
    let dns: Vec<String> = valid_dns_name(hostname).into_iter().collect();
    pki.ca.issue_agent(
        &layout::node_name(ip),
        &[ip],
        &dns,
        OffsetDateTime::now_utc(),
        LEAF_VALIDITY,
    )
}

/// A hostname usable as a DNS SAN, if it is one.
fn valid_dns_name(h: &str) -> Option<String> {
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    ok.then(|| h.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert_eq!(valid_dns_name("Node1").as_deref(), Some("node1"));
        assert_eq!(valid_dns_name("a.b-c"), Some("a.b-c".into()));
        assert_eq!(valid_dns_name("bad_name"), None);
        assert_eq!(valid_dns_name(""), None);
    }
}

//! One node's health, read through its agent (no SSH): the agent's facts,
//! the kubelet's healthz, the container runtime (crictl, else its
//! socket), the cluster registry's `/v2/`, the VIP load balancer and, on
//! masters, the apiserver certificate's expiry.

use std::time::Duration;

use ferry_shared::ExecSpec;
use ferry_shared::lb::membership::MemberState;
use ferry_shared::pki::CertInfo;
use futures::StreamExt;
use serde::Serialize;

use crate::client::{AgentClient, ClientTls, ExecItem};
use crate::lb::LbClient;
use crate::output::now_ms;
use crate::state::NodeRecord;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_OUTPUT: usize = 64 << 10;
/// Days before expiry at which a certificate counts as unhealthy.
pub const CERT_WARN_DAYS: i64 = 30;

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "detail")]
pub enum Check {
    Ok(String),
    Failed(String),
    /// Not applicable on this node (a worker's certificates, no LB).
    Skipped(String),
}

impl Check {
    pub fn healthy(&self) -> bool {
        !matches!(self, Check::Failed(_))
    }

    pub fn cell(&self) -> String {
        match self {
            Check::Ok(s) => format!("ok {s}").trim().to_string(),
            Check::Failed(s) => format!("FAIL {s}"),
            Check::Skipped(_) => "-".into(),
        }
    }
}

/// What the node-local checks need from the cluster.
#[derive(Debug, Clone)]
pub struct Targets {
    /// `host:port` of the cluster registry (sealos.hub:5000 by default).
    pub registry: String,
    /// The CRI socket (`SEALOS_SYS_CRI_ENDPOINT`).
    pub cri_socket: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeHealth {
    pub agent: Check,
    pub kubelet: Check,
    pub runtime: Check,
    pub registry: Check,
    pub load_balancer: Check,
    pub certificates: Check,
}

impl NodeHealth {
    pub fn healthy(&self) -> bool {
        [
            &self.agent,
            &self.kubelet,
            &self.runtime,
            &self.registry,
            &self.load_balancer,
            &self.certificates,
        ]
        .iter()
        .all(|c| c.healthy())
    }

    pub fn unreachable(why: String) -> Self {
        let skipped = || Check::Skipped("agent unreachable".into());
        Self {
            agent: Check::Failed(why),
            kubelet: skipped(),
            runtime: skipped(),
            registry: skipped(),
            load_balancer: skipped(),
            certificates: skipped(),
        }
    }
}

/// Every check of one node; never fails as a whole (an unreachable agent
/// is a failed `agent` check).
pub async fn node(n: &NodeRecord, tls: &ClientTls, t: &Targets, op: &str) -> NodeHealth {
    let c = match AgentClient::connect(n.addr.ip, n.agent_port, tls, CONNECT_TIMEOUT).await {
        Ok(c) => c,
        Err(e) => return NodeHealth::unreachable(e.to_string()),
    };
    let agent = match c.facts().await {
        Ok(f) => Check::Ok(f.agent_version),
        Err(e) => return NodeHealth::unreachable(e.to_string()),
    };
    let kubelet = match capture(
        &c,
        &["curl", "-fsS", "-m", "3", "http://127.0.0.1:10248/healthz"],
        op,
    )
    .await
    {
        Ok((out, true)) if out.trim() == "ok" => Check::Ok(String::new()),
        Ok((out, _)) => Check::Failed(format!("healthz: {}", first_line(&out, "no answer"))),
        Err(e) => Check::Failed(e),
    };
    let endpoint = format!("unix://{}", t.cri_socket);
    let runtime = match capture(
        &c,
        &[
            "crictl",
            "--runtime-endpoint",
            &endpoint,
            "--timeout",
            "3s",
            "version",
        ],
        op,
    )
    .await
    {
        Ok((out, true)) => Check::Ok(
            out.lines()
                .find_map(|l| l.strip_prefix("RuntimeName:"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
        ),
        Ok((out, false)) => Check::Failed(format!("crictl: {}", first_line(&out, "no answer"))),
        Err(_) => match capture(&c, &["test", "-S", &t.cri_socket], op).await {
            Ok((_, true)) => Check::Ok("socket present (no crictl)".into()),
            _ => Check::Failed(format!("no runtime socket at {}", t.cri_socket)),
        },
    };
    let url = format!("http://{}/v2/", t.registry);
    let registry = match capture(
        &c,
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-m",
            "3",
            &url,
        ],
        op,
    )
    .await
    {
        Ok((code, _)) if matches!(code.trim(), "200" | "401") => Check::Ok(String::new()),
        Ok((code, _)) => Check::Failed(format!("{url}: HTTP {}", first_line(&code, "none"))),
        Err(e) => Check::Failed(e),
    };
    let load_balancer = match LbClient::new(&c, CONNECT_TIMEOUT).get().await {
        Ok(s) if !s.configured => Check::Skipped("not configured".into()),
        Ok(s) => {
            let active = MemberState::Active.as_str();
            let up = s.members.iter().filter(|m| m.state == active).count();
            let msg = format!("{} {up}/{} members active", s.vip, s.members.len());
            if up == 0 || !s.last_error.is_empty() {
                Check::Failed(format!("{msg} {}", s.last_error).trim().to_string())
            } else {
                Check::Ok(msg)
            }
        }
        Err(e) => Check::Failed(e.to_string()),
    };
    let certificates = if n.has_role(ferry_shared::clusterfile::ROLE_MASTER) {
        cert_days(&c, op).await
    } else {
        Check::Skipped("not a master".into())
    };
    NodeHealth {
        agent,
        kubelet,
        runtime,
        registry,
        load_balancer,
        certificates,
    }
}

/// Runs `argv` on node `n` through its agent.
pub async fn run_on(
    n: &NodeRecord,
    tls: &ClientTls,
    argv: &[&str],
    op: &str,
) -> Result<(String, bool), String> {
    let c = AgentClient::connect(n.addr.ip, n.agent_port, tls, CONNECT_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    capture(&c, argv, op).await
}

/// Days left on the apiserver's serving certificate.
async fn cert_days(c: &AgentClient, op: &str) -> Check {
    let path = "/etc/kubernetes/pki/apiserver.crt";
    let pem = match capture(c, &["cat", path], op).await {
        Ok((pem, true)) => pem,
        Ok(_) => return Check::Failed(format!("{path} missing")),
        Err(e) => return Check::Failed(e),
    };
    match CertInfo::from_pem(&pem, path) {
        Ok(info) => {
            let days = (info.not_after - now_ms() / 1000).div_euclid(86_400);
            let msg = format!("apiserver {days}d left");
            if days < CERT_WARN_DAYS {
                Check::Failed(format!("{msg}; next: `ferry cert --renew`"))
            } else {
                Check::Ok(msg)
            }
        }
        Err(e) => Check::Failed(e.to_string()),
    }
}

fn first_line<'a>(s: &'a str, empty: &'a str) -> &'a str {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(empty)
}

/// Runs `argv` on the node: (stdout + stderr, success). `Err` when the
/// command could not run at all (not installed, agent error).
async fn capture(c: &AgentClient, argv: &[&str], op: &str) -> Result<(String, bool), String> {
    let mut spec = ExecSpec::argv(argv.iter().map(|s| s.to_string()).collect(), op);
    spec.timeout = Some(PROBE_TIMEOUT);
    let mut stream = c.exec(&spec).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        match item.map_err(|e| e.to_string())? {
            ExecItem::Stdout(d) | ExecItem::Stderr(d) => {
                if out.len() + d.len() <= MAX_OUTPUT {
                    out.extend_from_slice(&d);
                }
            }
            // 127: the shell convention for "command not found".
            ExecItem::Exit(o) if o.code == Some(127) => {
                return Err(format!("{} not found on the node", argv[0]));
            }
            ExecItem::Exit(o) => {
                return Ok((String::from_utf8_lossy(&out).into_owned(), o.success()));
            }
            ExecItem::Started { .. } | ExecItem::Heartbeat => {}
        }
    }
    Err("exec stream ended without an exit status".into())
}

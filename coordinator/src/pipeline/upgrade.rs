//! A Kubernetes upgrade: the rootfs image's version differs from the
//! running cluster's (sealos' `UpgradeIfNeed`, `runtime/kubernetes/
//! upgrade.go`).
//!
//! - Detection asks the cluster, not a file: the apiserver's version and
//!   every Node's kubelet version through master0's agent, so a run
//!   interrupted anywhere finds where the cluster is. Only a journal record
//!   that the last complete run left the cluster at this very version
//!   spares the question (re-runs and app installs). Refused before any
//!   host changes: a downgrade, a skipped minor, nodes not Ready (on a
//!   fresh upgrade), unhealthy etcd, a kubelet outside the skew Kubernetes
//!   supports, hosts added or removed in the same run.
//! - The run: new images into the registry and the new rootfs to every
//!   host (the distribute step, content-addressed), bootstrap hooks not
//!   re-run on live hosts, then host by host in [`upgrade_order`]:
//!   `kubeadm` part — the new kubeadm installed, the images pre-pulled,
//!   `kubeadm upgrade apply vX` on master0 (skipped when its apiserver
//!   manifest already runs vX), `kubeadm upgrade node` elsewhere; `kubelet`
//!   part — drain (unless `--no-drain`: cordon), new kubelet and kubectl,
//!   kubelet restarted, the Node Ready at vX, uncordoned. While a master's
//!   apiserver restarts under kubeadm, the workers' VIP leaves it out. Each part is
//!   journaled per host (`<host>#kubeadm`, `<host>#kubelet`) against the
//!   target version: a re-run resumes where it stopped.
//! - Certificates are not renewed by kubeadm (`--certificate-renewal=false`):
//!   ferry's PKI on the bastion stays the one on the nodes.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_shared::EventKind;
use ferry_shared::clusterfile::{ROLE_MASTER, ResolvedHost};
use ferry_shared::kubeadm::{KubeVersion, Upgrade, kubelet_skew_ok, upgrade_order, upgrade_path};
use ferry_shared::pipeline::{Outcome, Step, digest};
use serde_json::Value;

use super::kubeadm_ops::{self, node_name, probe};
use super::node::{self, Cmd, NodeRef};
use super::steps::{Unit, per_host_part};
use super::{Ctx, PipelineError};

const STEP: Step = Step::Upgrade;
const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
/// How long a Node may take to come back Ready at the new version.
const READY_WITHIN: Duration = Duration::from_secs(300);
const KUBEADM_TIMEOUT: Duration = Duration::from_secs(1200);

/// How the upgrade treats nodes (`--max-unavailable`, `--no-drain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpgradeOpts {
    /// Workers upgraded at a time.
    pub max_unavailable: usize,
    /// Drain timeout; None: cordon only.
    pub drain: Option<Duration>,
}

impl Default for UpgradeOpts {
    fn default() -> Self {
        Self {
            max_unavailable: 1,
            drain: Some(Duration::from_secs(300)),
        }
    }
}

/// How long an apiserver that is restarting (under kubeadm, or its static
/// pod recreated by a new kubelet) may answer with transient errors.
const SETTLE_WITHIN: Duration = Duration::from_secs(120);

/// Errors of an apiserver that is (re)starting: refused or reset
/// connections, 503s, and 403s before its RBAC caches synced.
const TRANSIENT: [&str; 10] = [
    // "connection refused", kubectl's "The connection to the server ... was refused"
    "refused",
    "Unable to connect to the server",
    "Forbidden",
    // kubeadm's wording (`configmaps "kubeadm-config" is forbidden: User
    // "system:node:..."`): an apiserver behind the VIP whose RBAC caches
    // have not synced yet after its restart.
    "is forbidden",
    "ServiceUnavailable",
    "the server is currently unable",
    "TLS handshake timeout",
    "connection reset",
    "i/o timeout",
    "leader changed",
];

fn transient(error: &str) -> bool {
    TRANSIENT.iter().any(|t| error.contains(t))
}

/// `kubectl --kubeconfig admin.conf ARGS` through master0's agent (every
/// call here is idempotent), again every 2 s for up to [`SETTLE_WITHIN`]
/// while it fails the way a restarting apiserver fails.
async fn kubectl(ctx: &Ctx, args: &[&str], timeout: Duration) -> Result<String, PipelineError> {
    let m0 = kubeadm_ops::master0(ctx, STEP)?;
    let mut argv = vec!["kubectl", "--kubeconfig", ADMIN_CONF];
    argv.extend_from_slice(args);
    let deadline = Instant::now() + SETTLE_WITHIN;
    loop {
        let mut cmd = Cmd::new(&argv);
        cmd.timeout = timeout;
        match node::run(&m0, &ctx.tls, &ctx.rec, STEP, cmd).await {
            Err(e) if Instant::now() < deadline && transient(&e.to_string()) => {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            res => return res,
        }
    }
}

/// What the cluster runs now: the apiserver's version and each Node's
/// (name, kubelet version, Ready).
struct ClusterNow {
    server: String,
    nodes: Vec<(String, String, bool)>,
}

async fn cluster_now(ctx: &Ctx) -> Result<ClusterNow, PipelineError> {
    let t = Duration::from_secs(60);
    let v: Value = serde_json::from_str(&kubectl(ctx, &["version", "-o", "json"], t).await?)
        .map_err(|e| PipelineError::cluster(STEP, format!("kubectl version: {e}")))?;
    let server = v["serverVersion"]["gitVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let n: Value = serde_json::from_str(&kubectl(ctx, &["get", "nodes", "-o", "json"], t).await?)
        .map_err(|e| PipelineError::cluster(STEP, format!("kubectl get nodes: {e}")))?;
    let nodes = n["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            let ready = i["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            (
                i["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                i["status"]["nodeInfo"]["kubeletVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                ready,
            )
        })
        .collect();
    Ok(ClusterNow { server, nodes })
}

/// The journal key of the version the last complete run left the cluster
/// at (no host: it is the cluster's).
const VERSION_KEY: &str = "";

fn version_digest(v: &str) -> String {
    digest(&["cluster-version", v])
}

/// Whether the last complete run left the cluster at this run's version:
/// then nothing is asked of the cluster (a re-run or an app install costs
/// no kubectl round). A failed or interrupted upgrade never records it, so
/// its re-run asks the cluster and resumes.
fn at_version(ctx: &Ctx) -> bool {
    ctx.rec
        .is_done(STEP, VERSION_KEY, &version_digest(&ctx.kube_version))
}

/// Records that every host now runs this run's version (called when the
/// cluster steps of a run all succeeded).
pub fn record_version(ctx: &Ctx) -> Result<(), PipelineError> {
    if at_version(ctx) {
        return Ok(());
    }
    ctx.rec.record(
        STEP,
        VERSION_KEY,
        &version_digest(&ctx.kube_version),
        Outcome::Done,
        &format!("the cluster runs {}", ctx.kube_version),
    )
}

fn refuse(detail: impl std::fmt::Display) -> PipelineError {
    PipelineError::Refused {
        step: STEP,
        detail: format!(
            "upgrade refused, nothing changed on any host and the stored Clusterfile is kept: {detail}"
        ),
    }
}

/// Whether this run upgrades the cluster, checked against the cluster
/// itself; refusals come before any host changes.
pub async fn detect(ctx: &Ctx) -> Result<Option<Upgrade>, PipelineError> {
    let m0 = ctx.master0.addr.to_string();
    if !ctx.rec.ever_done(Step::InitMaster, &m0) || at_version(ctx) {
        return Ok(None);
    }
    let now = cluster_now(ctx).await?;
    let target = KubeVersion::parse(&ctx.kube_version).map_err(refuse)?;
    let lagging: Vec<&(String, String, bool)> = now
        .nodes
        .iter()
        .filter(|(_, v, _)| KubeVersion::parse(v).ok().as_ref() != Some(&target))
        .collect();
    let up = match upgrade_path(&now.server, &ctx.kube_version).map_err(refuse)? {
        Some(u) => u,
        None if lagging.is_empty() => return Ok(None),
        // master0 is done (a resumed upgrade): the kubelets still lag.
        None => {
            let from = lagging
                .iter()
                .filter_map(|(_, v, _)| KubeVersion::parse(v).ok())
                .min()
                .unwrap_or_else(|| target.clone());
            Upgrade {
                from,
                to: target.clone(),
            }
        }
    };
    preflight(ctx, &now, &up).await?;
    Ok(Some(up))
}

async fn preflight(ctx: &Ctx, now: &ClusterNow, up: &Upgrade) -> Result<(), PipelineError> {
    let fresh_hosts: Vec<String> = ctx
        .hosts
        .iter()
        .filter(|h| {
            let k = h.addr.to_string();
            !(ctx.rec.ever_done(Step::InitMaster, &k)
                || ctx.rec.ever_done(Step::JoinMaster, &k)
                || ctx.rec.ever_done(Step::JoinWorker, &k))
        })
        .map(|h| h.addr.to_string())
        .collect();
    if !fresh_hosts.is_empty() {
        return Err(refuse(format!(
            "{} → {} with new hosts ({}); next: upgrade the cluster as it is, then add them",
            up.from,
            up.to,
            fresh_hosts.join(", ")
        )));
    }
    let resumed = ctx
        .hosts
        .iter()
        .any(|h| !ctx.rec.live_keys(STEP, &h.addr.to_string()).is_empty());
    let not_ready: Vec<&str> = now
        .nodes
        .iter()
        .filter(|(_, _, r)| !r)
        .map(|(n, _, _)| n.as_str())
        .collect();
    if !resumed && !not_ready.is_empty() {
        return Err(refuse(format!(
            "nodes not Ready: {}; next: bring them back (kubectl describe node), then re-run",
            not_ready.join(", ")
        )));
    }
    let skew: Vec<String> = now
        .nodes
        .iter()
        .filter(|(_, v, _)| {
            KubeVersion::parse(v)
                .map(|k| !kubelet_skew_ok(&k, &up.to))
                .unwrap_or(true)
        })
        .map(|(n, v, _)| format!("{n} ({v})"))
        .collect();
    if !skew.is_empty() {
        return Err(refuse(format!(
            "kubelets outside the supported skew of {} (at most 3 minors older): {}",
            up.to,
            skew.join(", ")
        )));
    }
    let etcd = kubectl(
        ctx,
        &["get", "--raw", "/readyz/etcd"],
        Duration::from_secs(30),
    )
    .await;
    match etcd {
        Ok(out) if out.trim() == "ok" => Ok(()),
        Ok(out) => Err(refuse(format!("etcd is not healthy: {}", out.trim()))),
        Err(e) => Err(refuse(format!("etcd is not healthy: {e}"))),
    }
}

/// Runs the upgrade host by host (nothing when this run is no upgrade).
pub async fn run(ctx: &Arc<Ctx>) -> Result<(), PipelineError> {
    let Some(up) = ctx.upgrade.clone() else {
        return Ok(());
    };
    ctx.rec.step_event(
        STEP,
        "",
        EventKind::Started,
        &format!("{} → {}", up.from, up.to),
    );
    let is_m0 = |h: &ResolvedHost| h.addr.ip == ctx.master0.addr.ip;
    let masters: Vec<ResolvedHost> = ctx
        .hosts
        .iter()
        .filter(|h| h.has_role(ROLE_MASTER) && !is_m0(h))
        .cloned()
        .collect();
    let workers: Vec<ResolvedHost> = ctx.workers().into_iter().cloned().collect();
    let order = upgrade_order(
        &ctx.master0,
        &masters,
        &workers,
        ctx.upgrade_opts.max_unavailable,
    );
    let d = digest(&["upgrade", &up.to.to_string()]);
    for batch in order {
        let d1 = d.clone();
        per_host_part(
            ctx,
            Unit {
                step: STEP,
                part: "kubeadm",
                once: false,
            },
            batch.clone(),
            move |_, _| d1.clone(),
            |c, h, n| async move { kubeadm_part(&c, &h, &n).await },
        )
        .await?;
        let d2 = d.clone();
        per_host_part(
            ctx,
            Unit {
                step: STEP,
                part: "kubelet",
                once: false,
            },
            batch,
            move |_, _| d2.clone(),
            |c, _h, n| async move { kubelet_part(&c, &n).await },
        )
        .await?;
    }
    ctx.rec.step_event(
        STEP,
        "",
        EventKind::Finished,
        &format!("{} → {}", up.from, up.to),
    );
    Ok(())
}

fn install(ctx: &Ctx, bin: &str) -> Cmd {
    let src = format!("{}/bin/{bin}", ctx.rootfs_dir());
    Cmd::new(&["install", "-m", "0755", &src, &format!("/usr/bin/{bin}")])
}

async fn kubeadm_part(ctx: &Ctx, h: &ResolvedHost, n: &NodeRef) -> Result<(), PipelineError> {
    let target = ctx.kube_version.clone();
    node::run(n, &ctx.tls, &ctx.rec, STEP, install(ctx, "kubeadm")).await?;
    let master0 = h.addr.ip == ctx.master0.addr.ip;
    if master0 {
        let manifest = "/etc/kubernetes/manifests/kube-apiserver.yaml";
        let tag = format!(":{target}");
        let done = Cmd::new(&["grep", "-q", "-F", &tag, manifest]);
        if probe(ctx, n, STEP, done).await?.is_some() {
            kubeadm_ops::already_done(ctx, n, STEP, &format!("kubeadm upgrade apply {target}"));
            return Ok(());
        }
    }
    let docs = super::kube::docs(ctx)?;
    kubeadm_ops::prepull(ctx, &docs, n, STEP, !h.has_role(ROLE_MASTER)).await?;
    // A master's apiserver restarts under kubeadm: the workers' VIP leaves
    // it out meanwhile, and takes it back whatever kubeadm's outcome.
    let master = h.has_role(ROLE_MASTER);
    if master {
        vip_members(ctx, Some(h.addr.ip)).await?;
    }
    let res = run_kubeadm(ctx, n, master0, &target).await;
    let back = if master {
        vip_members(ctx, None).await
    } else {
        Ok(())
    };
    res.and(back)
}

/// The workers' apiserver VIP without master `out` (None: all masters).
/// A one-master cluster has no other apiserver to send the VIP to.
async fn vip_members(ctx: &Ctx, out: Option<IpAddr>) -> Result<(), PipelineError> {
    if ctx.masters().len() < 2 {
        return Ok(());
    }
    let mut spec = super::kube::lb_spec(ctx)?;
    if let Some(IpAddr::V4(ip)) = out {
        spec.real_servers.retain(|r| *r.addr.ip() != ip);
    }
    let what = match out {
        Some(ip) => format!("VIP without {ip} while its apiserver restarts"),
        None => "VIP with every master again".to_string(),
    };
    for w in ctx.workers() {
        if let Some(n) = ctx.node(w) {
            super::kube::lb_sync(ctx, n, &spec).await?;
            ctx.rec
                .step_event(STEP, &n.host, EventKind::Progress, &what);
        }
    }
    Ok(())
}

async fn run_kubeadm(
    ctx: &Ctx,
    n: &NodeRef,
    master0: bool,
    target: &str,
) -> Result<(), PipelineError> {
    let mut cmd = if master0 {
        Cmd::new(&[
            "kubeadm",
            "upgrade",
            "apply",
            target,
            "--yes",
            "--certificate-renewal=false",
            "--ignore-preflight-errors=SystemVerification,ControlPlaneNodesReady,CreateJob",
        ])
    } else {
        Cmd::new(&[
            "kubeadm",
            "upgrade",
            "node",
            "--certificate-renewal=false",
            "--skip-phases",
            "preflight",
        ])
    };
    cmd.timeout = KUBEADM_TIMEOUT;
    if master0 {
        return node::run(n, &ctx.tls, &ctx.rec, STEP, cmd)
            .await
            .map(|_| ());
    }
    // `upgrade node` reads the cluster's config first: while an apiserver
    // behind the VIP restarts it can fail the way a restarting apiserver
    // fails; it changes nothing before that read, so it runs again.
    let deadline = Instant::now() + SETTLE_WITHIN;
    loop {
        match node::run(n, &ctx.tls, &ctx.rec, STEP, cmd.clone()).await {
            Err(e) if Instant::now() < deadline && transient(&e.to_string()) => {
                ctx.rec.step_event(
                    STEP,
                    &n.host,
                    EventKind::Progress,
                    "upgrade: kubeadm upgrade node met a restarting apiserver; again in 2 s",
                );
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            res => return res.map(|_| ()),
        }
    }
}

/// Restarts the kubelet: systemd where it runs the host, else the cluster
/// image's own supervisor starts it again once it exits.
const RESTART_KUBELET: &str = r#"set -e
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload
  systemctl restart kubelet
  exit 0
fi
for p in /proc/[0-9]*; do
  if [ "$(cat "$p/comm" 2>/dev/null)" = kubelet ]; then kill -TERM "${p#/proc/}" 2>/dev/null || true; fi
done"#;

async fn kubelet_part(ctx: &Ctx, n: &NodeRef) -> Result<(), PipelineError> {
    let name = node_name(ctx, n);
    let target = ctx.kube_version.clone();
    match ctx.upgrade_opts.drain {
        Some(t) => {
            let timeout = format!("--timeout={}s", t.as_secs());
            let args = [
                "drain",
                &name,
                "--ignore-daemonsets",
                "--delete-emptydir-data",
                &timeout,
            ];
            kubectl(ctx, &args, t + Duration::from_secs(30))
                .await
                .map_err(|e| drain_failed(n, &name, e))?;
        }
        None => {
            kubectl(ctx, &["cordon", &name], Duration::from_secs(60)).await?;
        }
    }
    for bin in ["kubectl", "kubelet"] {
        node::run(n, &ctx.tls, &ctx.rec, STEP, install(ctx, bin)).await?;
    }
    node::run(
        n,
        &ctx.tls,
        &ctx.rec,
        STEP,
        Cmd::script(RESTART_KUBELET, &[]).display("restart kubelet"),
    )
    .await?;
    wait_ready(ctx, n, &name, &target).await?;
    kubectl(ctx, &["uncordon", &name], Duration::from_secs(60)).await?;
    Ok(())
}

fn drain_failed(n: &NodeRef, name: &str, e: PipelineError) -> PipelineError {
    PipelineError::host(
        &n.host,
        STEP,
        format!(
            "drain of node `{name}` failed: {e}; next: make its pods evictable (PodDisruptionBudgets, pods without a controller), then re-run (or re-run with --no-drain to cordon only)"
        ),
    )
}

/// Polls master0's API until the Node is Ready with the target kubelet.
async fn wait_ready(ctx: &Ctx, n: &NodeRef, name: &str, target: &str) -> Result<(), PipelineError> {
    let deadline = Instant::now() + READY_WITHIN;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(out) = kubectl(
            ctx,
            &["get", "node", name, "-o", "json"],
            Duration::from_secs(30),
        )
        .await
            && let Ok(v) = serde_json::from_str::<Value>(&out)
        {
            let version = v["status"]["nodeInfo"]["kubeletVersion"]
                .as_str()
                .unwrap_or_default();
            let ready = v["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            if ready && version == target {
                return Ok(());
            }
            last = format!("kubelet {version}, Ready {ready}");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Err(PipelineError::host(
        &n.host,
        STEP,
        format!(
            "node `{name}` not Ready at {target} within {}s ({last}); next: look at the kubelet's log on the node, then re-run (the upgrade resumes here)",
            READY_WITHIN.as_secs()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeadm_rbac_race_is_transient() {
        assert!(transient(
            r#"error: unable to fetch the kubeadm-config ConfigMap: failed to get config map: configmaps "kubeadm-config" is forbidden: User "system:node:node3" cannot get resource"#
        ));
    }

    #[test]
    fn a_restarting_apiserver_is_told_from_real_failures() {
        // Both met on the real tier right after master0's kubelet upgrade.
        assert!(transient(
            "The connection to the server apiserver.cluster.local:6443 was refused - did you specify the right host or port?"
        ));
        assert!(transient("Error from server (Forbidden): unknown"));
        assert!(!transient(
            "error: unable to drain node \"node3\": global timeout reached: 5m0s"
        ));
        assert!(!transient(
            "error: the server doesn't have a resource type \"nodez\""
        ));
    }
}

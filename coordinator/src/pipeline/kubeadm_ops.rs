//! What happens on a node around `kubeadm init`/`join`: the images
//! pre-pulled through the node's CRI, fresh join secrets per batch (a
//! bootstrap token created and the control-plane certificates re-uploaded
//! through master0), and the checks that find an init or join already
//! done on the node although the journal missed it.

use std::sync::Arc;

use ferry_shared::EventKind;
use ferry_shared::kubeadm::{BootstrapToken, KubeadmDocs, certificate_key};
use ferry_shared::pipeline::Step;
use tokio::sync::OnceCell;

use super::node::{self, Cmd, NodeRef};
use super::{Ctx, PipelineError};

const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
/// Lifetime of the tokens ferry creates for a join batch.
const TOKEN_TTL: &str = "24h0m0s";

fn kubeadm_dir(ctx: &Ctx) -> String {
    format!("{}/kubeadm", ctx.data_dir)
}

/// Runs a check: `Some(stdout)` when it exits 0, `None` when it exits
/// non-zero; an unreachable agent is an error.
pub async fn probe(
    ctx: &Ctx,
    n: &NodeRef,
    step: Step,
    cmd: Cmd,
) -> Result<Option<String>, PipelineError> {
    match node::run(n, &ctx.tls, &ctx.rec, step, cmd).await {
        Ok(out) => Ok(Some(out)),
        Err(PipelineError::Command { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn master0(ctx: &Ctx, step: Step) -> Result<NodeRef, PipelineError> {
    ctx.node(&ctx.master0).cloned().ok_or_else(|| {
        PipelineError::host(
            &ctx.master0.addr.to_string(),
            step,
            "no agent for master0; next: `ferry agent install`, then re-run",
        )
    })
}

/// The Node name kubelet registers for a host.
pub fn node_name(ctx: &Ctx, n: &NodeRef) -> String {
    ctx.hostname(n.ip).to_ascii_lowercase()
}

/// Whether master0's apiserver lists `name` (`kubectl get nodes -o name`
/// with admin.conf, through master0's agent).
async fn node_registered(ctx: &Ctx, step: Step, name: &str) -> Result<bool, PipelineError> {
    let m0 = master0(ctx, step)?;
    let cmd = Cmd::new(&[
        "kubectl",
        "--kubeconfig",
        ADMIN_CONF,
        "get",
        "nodes",
        "-o",
        "name",
    ]);
    let want = format!("node/{name}");
    Ok(probe(ctx, &m0, step, cmd)
        .await?
        .is_some_and(|out| out.lines().any(|l| l.trim() == want)))
}

/// `kubeadm init` already ran on master0: its apiserver manifest and
/// admin.conf exist and the apiserver lists master0's Node.
pub async fn init_done(ctx: &Ctx, n: &NodeRef) -> Result<bool, PipelineError> {
    let step = Step::InitMaster;
    let files = Cmd::new(&[
        "test",
        "-f",
        "/etc/kubernetes/manifests/kube-apiserver.yaml",
        "-a",
        "-f",
        ADMIN_CONF,
    ]);
    if probe(ctx, n, step, files).await?.is_none() {
        return Ok(false);
    }
    node_registered(ctx, step, &node_name(ctx, n)).await
}

/// `kubeadm join` already ran on `n`: its kubelet.conf exists and the
/// cluster (asked through master0) has its Node.
pub async fn join_done(ctx: &Ctx, n: &NodeRef, step: Step) -> Result<bool, PipelineError> {
    let file = Cmd::new(&["test", "-f", "/etc/kubernetes/kubelet.conf"]);
    if probe(ctx, n, step, file).await?.is_none() {
        return Ok(false);
    }
    node_registered(ctx, step, &node_name(ctx, n)).await
}

/// Says on the host's event line why kubeadm is not run again.
pub fn already_done(ctx: &Ctx, n: &NodeRef, step: Step, what: &str) {
    ctx.rec.step_event(
        step,
        &n.host,
        EventKind::Progress,
        &format!("{what} already done on the node (journal record missing); not running it again"),
    );
}

/// What a worker runs of kubeadm's list: the kube-proxy DaemonSet, the
/// sandbox, CoreDNS (scheduled anywhere); not the control plane or etcd.
fn worker_needs(image: &str) -> bool {
    let name = image.rsplit('/').next().unwrap_or(image);
    let name = name.split([':', '@']).next().unwrap_or(name);
    matches!(name, "kube-proxy" | "pause" | "coredns")
}

/// Pre-pulls the images kubeadm will need through the node's CRI:
/// `kubeadm config images list --config <ClusterConfiguration>` (on a
/// worker only what [`worker_needs`]), then `crictl pull` each; skipped
/// with a progress event where the node has no `crictl` (`env` exits 127).
pub async fn prepull(
    ctx: &Ctx,
    docs: &KubeadmDocs,
    n: &NodeRef,
    step: Step,
    worker: bool,
) -> Result<(), PipelineError> {
    let path = write_config(ctx, n, step, "kubeadm-images.yaml", docs.images_yaml()).await?;
    let list = Cmd::new(&["kubeadm", "config", "images", "list", "--config", &path]);
    let out = node::run(n, &ctx.tls, &ctx.rec, step, list).await?;
    let images: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(|i| !worker || worker_needs(i))
        .collect();
    let has_crictl = Cmd::new(&["env", "crictl", "--version"]);
    if probe(ctx, n, step, has_crictl).await?.is_none() {
        ctx.rec.step_event(
            step,
            &n.host,
            EventKind::Progress,
            &format!(
                "pre-pull skipped: no crictl on the node's PATH ({} images left to kubeadm)",
                images.len()
            ),
        );
        return Ok(());
    }
    for image in &images {
        let pull = Cmd::new(&["crictl", "pull", image]);
        node::run(n, &ctx.tls, &ctx.rec, step, pull).await?;
    }
    ctx.rec.step_event(
        step,
        &n.host,
        EventKind::Progress,
        &format!("pre-pulled {} images", images.len()),
    );
    Ok(())
}

/// The join secrets of one batch, made on first use (a batch whose hosts
/// are all done makes none): a new bootstrap token created through
/// master0 and, for control planes, the certificates re-uploaded with a
/// new key (kubeadm deletes its kubeadm-certs Secret after 2 h).
pub struct FreshSecrets {
    base: Arc<KubeadmDocs>,
    control_plane: bool,
    docs: OnceCell<Arc<KubeadmDocs>>,
}

impl FreshSecrets {
    pub fn new(base: Arc<KubeadmDocs>, control_plane: bool) -> Self {
        Self {
            base,
            control_plane,
            docs: OnceCell::new(),
        }
    }

    /// The documents with this batch's token (and key).
    pub async fn docs(&self, ctx: &Ctx) -> Result<Arc<KubeadmDocs>, PipelineError> {
        self.docs
            .get_or_try_init(|| async {
                let step = if self.control_plane {
                    Step::JoinMaster
                } else {
                    Step::JoinWorker
                };
                let m0 = master0(ctx, step)?;
                let token = BootstrapToken::from_random(&rand::random::<[u8; 22]>());
                create_token(ctx, &m0, step, &token).await?;
                let key = if self.control_plane {
                    let key = certificate_key(&rand::random::<[u8; 32]>());
                    upload_certs(ctx, &self.base, &m0, &key).await?;
                    Some(key)
                } else {
                    None
                };
                Ok(Arc::new(self.base.with_join_secrets(token, key)))
            })
            .await
            .cloned()
    }
}

/// `kubeadm token create <token> --ttl 24h0m0s` on master0; the secret
/// half is masked in what is shown and the output (kubeadm prints the
/// token) never becomes an event.
async fn create_token(
    ctx: &Ctx,
    m0: &NodeRef,
    step: Step,
    token: &BootstrapToken,
) -> Result<(), PipelineError> {
    let full = token.expose();
    let cmd = Cmd::new(&[
        "kubeadm",
        "token",
        "create",
        &full,
        "--ttl",
        TOKEN_TTL,
        "--description",
        "ferry join",
    ])
    .secret(format!(
        "kubeadm token create {}.<secret> --ttl {TOKEN_TTL}",
        token.id
    ));
    node::run(m0, &ctx.tls, &ctx.rec, step, cmd).await?;
    ctx.rec.step_event(
        step,
        &m0.host,
        EventKind::Progress,
        &format!("bootstrap token {} created for this join batch", token.id),
    );
    Ok(())
}

/// `kubeadm init phase upload-certs --upload-certs --config <file>` on
/// master0, the file (0600) holding the new certificate key: real kubeadm
/// refuses `--certificate-key` beside `--config`.
async fn upload_certs(
    ctx: &Ctx,
    docs: &KubeadmDocs,
    m0: &NodeRef,
    key: &str,
) -> Result<(), PipelineError> {
    let step = Step::JoinMaster;
    let yaml = docs.upload_certs_yaml(key);
    let path = write_config(ctx, m0, step, "kubeadm-upload-certs.yaml", yaml).await?;
    let cmd = Cmd::new(&[
        "kubeadm",
        "init",
        "phase",
        "upload-certs",
        "--upload-certs",
        "--config",
        &path,
    ])
    // kubeadm prints the certificate key: its output stays off events.
    .secret(format!(
        "kubeadm init phase upload-certs --upload-certs --config {path}"
    ));
    node::run(m0, &ctx.tls, &ctx.rec, step, cmd).await?;
    ctx.rec.step_event(
        step,
        &m0.host,
        EventKind::Progress,
        "control-plane certificates re-uploaded (kubeadm-certs, 2h) for this join batch",
    );
    Ok(())
}

/// Writes a kubeadm config file `name` (0600: most hold a token or a
/// certificate key) into the node's kubeadm dir; returns its path.
async fn write_config(
    ctx: &Ctx,
    n: &NodeRef,
    step: Step,
    name: &str,
    yaml: Result<String, ferry_shared::kubeadm::KubeadmError>,
) -> Result<String, PipelineError> {
    let yaml = yaml.map_err(|e| PipelineError::host(&n.host, step, e))?;
    let path = format!("{}/{name}", kubeadm_dir(ctx));
    node::write_file(n, &ctx.tls, &ctx.rec, step, &path, yaml.into_bytes(), 0o600).await?;
    Ok(path)
}

/// Writes master0's `kubeadm init --config` file (it holds the init token
/// and certificate key); returns its path.
pub async fn write_init_yaml(
    ctx: &Ctx,
    docs: &KubeadmDocs,
    m0: &NodeRef,
    step: Step,
) -> Result<String, PipelineError> {
    write_config(ctx, m0, step, "kubeadm-init.yaml", docs.init_yaml()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_pull_proxy_sandbox_and_dns_only() {
        let list = [
            "sealos.hub:5000/kube-apiserver:v1.27.7",
            "sealos.hub:5000/kube-controller-manager:v1.27.7",
            "sealos.hub:5000/kube-scheduler:v1.27.7",
            "sealos.hub:5000/kube-proxy:v1.27.7",
            "registry.k8s.io/coredns/coredns:v1.10.1",
            "sealos.hub:5000/pause:3.9",
            "sealos.hub:5000/etcd:3.5.12-0",
        ];
        let kept: Vec<&str> = list.into_iter().filter(|i| worker_needs(i)).collect();
        assert_eq!(
            kept,
            [
                "sealos.hub:5000/kube-proxy:v1.27.7",
                "registry.k8s.io/coredns/coredns:v1.10.1",
                "sealos.hub:5000/pause:3.9",
            ]
        );
    }
}

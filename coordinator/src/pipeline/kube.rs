//! Kubernetes steps: cluster PKI (generated once on the bastion, copied to
//! masters with the audit policy), `kubeadm init` on master0,
//! control-plane joins (sequential), the workers' VIP load balancer and
//! worker joins (see `kubeadm_ops` for pre-pulls, fresh join secrets and
//! finding init/join done on the node).

use std::net::{IpAddr, SocketAddrV4};
use std::path::Path;

use ferry_shared::kubeadm::{
    AUDIT_POLICY, AUDIT_POLICY_PATH, BootstrapToken, ClusterFacts, JoinRole, KubeadmDocs,
    ca_cert_hash, certificate_key,
};
use ferry_shared::lb::{BackendKind, HealthCheck, LbSpec, RealServer, Scheduler};
use ferry_shared::pipeline::Step;
use ferry_shared::pki::kube::{
    Ca, CaSet, KubePkiSpec, PkiFile, SEALOS_VALIDITY_YEARS, generate_all, kubeconfigs, node_certs,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Ctx;
use super::PipelineError;
use super::kubeadm_ops::{self, FreshSecrets};
use super::node::{self, Cmd, NodeRef};
use super::pki_store;
use crate::lb::LbClient;
use crate::output::now_ms;
use crate::state::write_atomic;

pub const API_HOST: &str = "apiserver.cluster.local";
pub const API_PORT: u16 = 6443;

#[derive(Serialize, Deserialize)]
struct TokenFile {
    token: String,
    certificate_key: String,
}

/// The bootstrap token and certificate key, created once per cluster
/// (`~/.ferry/<cluster>/etc/kubeadm-token.json`, 0600).
pub fn token(state_dir: &Path) -> Result<(BootstrapToken, String), PipelineError> {
    let path = state_dir.join("etc").join("kubeadm-token.json");
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(t) = serde_json::from_str::<TokenFile>(&text)
        && let Ok(tok) = BootstrapToken::parse(&t.token)
    {
        return Ok((tok, t.certificate_key));
    }
    let tok = BootstrapToken::from_random(&rand::random::<[u8; 22]>());
    let key = certificate_key(&rand::random::<[u8; 32]>());
    let t = TokenFile {
        token: tok.expose(),
        certificate_key: key.clone(),
    };
    let dir = state_dir.join("etc");
    std::fs::create_dir_all(&dir).map_err(PipelineError::io("creating", &dir))?;
    write_atomic(
        &path,
        serde_json::to_string(&t).unwrap_or_default().as_bytes(),
        0o600,
    )?;
    Ok((tok, key))
}

pub fn kube_minor(version: &str) -> u32 {
    version
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// The kubeadm documents of this cluster.
pub fn docs(ctx: &Ctx) -> Result<KubeadmDocs, PipelineError> {
    let (tok, key) = token(ctx.state.dir())?;
    let facts = ClusterFacts {
        kube_version: ctx.kube_version.clone(),
        master0: ctx.master0.addr.ip,
        masters: ctx.masters().iter().map(|h| h.addr.ip).collect(),
        vip: ctx.vip,
        token: tok,
        certificate_key: key,
    };
    // One host (`ferry run --single`): its master must take workloads.
    KubeadmDocs::new(facts, &ctx.kube_overlays)
        .map(|d| {
            d.single_host(ctx.hosts.len() == 1)
                .for_hosts(&ctx.host_traits, &ctx.kube_overlays)
        })
        .map_err(|e| PipelineError::cluster(Step::InitMaster, e))
}

fn pki_spec(ctx: &Ctx, docs: &KubeadmDocs, ip: IpAddr, name: &str) -> KubePkiSpec {
    let mut sans = vec![
        "127.0.0.1".to_string(),
        API_HOST.to_string(),
        ctx.vip.to_string(),
    ];
    sans.extend(ctx.masters().iter().map(|h| h.addr.ip.to_string()));
    // The ClusterConfiguration's certSANs (defaults, image, Clusterfile).
    for s in docs_cert_sans(docs) {
        if !sans.contains(&s) {
            sans.push(s);
        }
    }
    KubePkiSpec {
        node_name: name.to_string(),
        node_ip: ip,
        control_plane_host: API_HOST.to_string(),
        control_plane_port: API_PORT,
        cert_sans: sans,
        service_cidr: docs.service_subnet(),
        dns_domain: "cluster.local".to_string(),
        validity_years: SEALOS_VALIDITY_YEARS,
        kube_minor: kube_minor(&ctx.kube_version),
    }
}

/// `apiServer.certSANs` of the generated ClusterConfiguration.
fn docs_cert_sans(docs: &KubeadmDocs) -> Vec<String> {
    let Ok(yaml) = docs.init_yaml() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for de in serde_yaml_ng::Deserializer::from_str(&yaml) {
        let Ok(v) = serde_yaml_ng::Value::deserialize(de) else {
            continue;
        };
        if v.get("kind").and_then(|k| k.as_str()) != Some("ClusterConfiguration") {
            continue;
        }
        if let Some(list) = v
            .get("apiServer")
            .and_then(|a| a.get("certSANs"))
            .and_then(|l| l.as_sequence())
        {
            out.extend(list.iter().filter_map(|x| x.as_str().map(str::to_string)));
        }
    }
    out
}

fn pki_err(e: impl std::fmt::Display) -> PipelineError {
    PipelineError::cluster(Step::Pki, e)
}

/// Generates the CAs and master0's set once (before the per-master
/// fan-out, so every master shares one CA). Blocking (RSA keygen): the
/// pipeline calls it through `spawn_blocking`.
pub fn ensure_cluster_pki(ctx: &Ctx, docs: &KubeadmDocs) -> Result<(), PipelineError> {
    let m0dir = ctx
        .state
        .dir()
        .join("pki/kubernetes")
        .join(ctx.master0.addr.ip.to_string());
    // A set is stored whole or not at all (`pki_store`): a damaged one
    // is refused by `pki_store::check_stored` before any host changes.
    if !m0dir.exists() {
        let m0name = ctx.hostname(ctx.master0.addr.ip);
        let spec = pki_spec(ctx, docs, ctx.master0.addr.ip, &m0name);
        let files = generate_all(&spec, OffsetDateTime::now_utc()).map_err(pki_err)?;
        pki_store::store_set(&m0dir, &files)?;
    }
    Ok(())
}

/// The files of one master: generated once per master and kept in
/// `~/.ferry/<cluster>/pki/kubernetes/<ip>/` (CAs shared from master0's).
/// Blocking (RSA keygen, file I/O): called through `spawn_blocking`.
pub fn master_files(
    ctx: &Ctx,
    docs: &KubeadmDocs,
    ip: IpAddr,
    name: &str,
) -> Result<Vec<PkiFile>, PipelineError> {
    let base = ctx.state.dir().join("pki").join("kubernetes");
    let m0dir = base.join(ctx.master0.addr.ip.to_string());
    let now = OffsetDateTime::now_utc();
    ensure_cluster_pki(ctx, docs)?;
    let dir = base.join(ip.to_string());
    if !dir.exists() {
        let read = |rel: &str| {
            let p = m0dir.join(rel);
            std::fs::read_to_string(&p).map_err(PipelineError::io("reading", &p))
        };
        let ca = |stem: &'static str| -> Result<Ca, PipelineError> {
            Ca::from_pem(
                stem,
                &read(&format!("pki/{stem}.crt"))?,
                &read(&format!("pki/{stem}.key"))?,
            )
            .map_err(pki_err)
        };
        let cas = CaSet {
            kubernetes: ca("ca")?,
            front_proxy: ca("front-proxy-ca")?,
            etcd: ca("etcd/ca")?,
        };
        let spec = pki_spec(ctx, docs, ip, name);
        let mut files = cas.files();
        for f in ["pki/sa.key", "pki/sa.pub"] {
            files.push(PkiFile {
                path: f.to_string(),
                contents: read(f)?,
                mode: 0o600,
            });
        }
        files.extend(node_certs(&cas, &spec, now).map_err(pki_err)?.files);
        files.extend(kubeconfigs(&cas, &spec, now).map_err(pki_err)?);
        pki_store::store_set(&dir, &files)?;
    }
    pki_store::read_set(&dir)
}

/// Kubeconfigs only `kubeadm init` keeps: a joining master's kubeadm
/// refuses an existing kubelet.conf (preflight FileAvailable) and
/// super-admin.conf (system:masters) stays on master0, as with kubeadm.
/// admin/controller-manager/scheduler.conf go to every master: kubeadm
/// join reuses them after checking their CA and server.
const MASTER0_ONLY: [&str; 2] = ["kubelet.conf", "super-admin.conf"];

/// What the pki step writes under a master's /etc/kubernetes: its PKI,
/// its kubeconfigs (minus [`MASTER0_ONLY`] on other masters) and the
/// audit policy the ClusterConfiguration points the apiserver at.
pub fn pki_tree(files: &[PkiFile], master0: bool) -> Vec<(String, Vec<u8>, u32)> {
    let mut tree: Vec<(String, Vec<u8>, u32)> = files
        .iter()
        .filter(|f| master0 || !MASTER0_ONLY.contains(&f.path.as_str()))
        .map(|f| (f.path.clone(), f.contents.as_bytes().to_vec(), f.mode))
        .collect();
    let audit = AUDIT_POLICY_PATH.trim_start_matches("/etc/kubernetes/");
    tree.push((audit.to_string(), AUDIT_POLICY.as_bytes().to_vec(), 0o600));
    tree
}

/// Copies a master's PKI, kubeconfigs and audit policy to its /etc/kubernetes.
pub async fn push_pki(ctx: &Ctx, n: &NodeRef, files: &[PkiFile]) -> Result<(), PipelineError> {
    let tree = pki_tree(files, n.ip == ctx.master0.addr.ip);
    node::write_tree(n, &ctx.tls, &ctx.rec, Step::Pki, "/etc/kubernetes", &tree).await
}

pub async fn init_master0(ctx: &Ctx, docs: &KubeadmDocs, n: &NodeRef) -> Result<(), PipelineError> {
    let step = Step::InitMaster;
    if kubeadm_ops::init_done(ctx, n).await? {
        kubeadm_ops::already_done(ctx, n, step, "kubeadm init");
    } else {
        kubeadm_ops::prepull(ctx, docs, n, step, false).await?;
        let path = kubeadm_ops::write_init_yaml(ctx, docs, n, step).await?;
        let cmd = Cmd::new(&[
            "kubeadm",
            "init",
            "--config",
            &path,
            "--upload-certs",
            "--skip-token-print",
            "--skip-certificate-key-print",
            "--ignore-preflight-errors=SystemVerification",
        ]);
        node::run(n, &ctx.tls, &ctx.rec, step, cmd).await?;
    }
    // admin.conf: to ~/.kube/config on master0 and to the bastion state.
    let m0dir = ctx
        .state
        .dir()
        .join("pki/kubernetes")
        .join(ctx.master0.addr.ip.to_string());
    let admin =
        std::fs::read(m0dir.join("admin.conf")).map_err(PipelineError::io("reading", &m0dir))?;
    node::write_file(
        n,
        &ctx.tls,
        &ctx.rec,
        Step::InitMaster,
        "/root/.kube/config",
        admin.clone(),
        0o600,
    )
    .await?;
    let etc = ctx.state.dir().join("etc");
    std::fs::create_dir_all(&etc).map_err(PipelineError::io("creating", &etc))?;
    write_atomic(&etc.join("admin.conf"), &admin, 0o600)?;
    Ok(())
}

fn ca_hash(ctx: &Ctx) -> Result<String, PipelineError> {
    let p = ctx
        .state
        .dir()
        .join("pki/kubernetes")
        .join(ctx.master0.addr.ip.to_string())
        .join("pki/ca.crt");
    let pem = std::fs::read_to_string(&p).map_err(PipelineError::io("reading", &p))?;
    ca_cert_hash(&pem).map_err(|e| PipelineError::cluster(Step::JoinMaster, e))
}

/// `kubeadm join` of one host with its batch's fresh token (and
/// certificate key); skipped when the node is found joined already.
pub async fn join(
    ctx: &Ctx,
    fresh: &FreshSecrets,
    n: &NodeRef,
    master: bool,
) -> Result<(), PipelineError> {
    let (step, role) = if master {
        (Step::JoinMaster, JoinRole::Master { ip: n.ip })
    } else {
        (Step::JoinWorker, JoinRole::Worker { ip: n.ip })
    };
    if kubeadm_ops::join_done(ctx, n, step).await? {
        kubeadm_ops::already_done(ctx, n, step, "kubeadm join");
    } else {
        let docs = fresh.docs(ctx).await?;
        kubeadm_ops::prepull(ctx, &docs, n, step, step == Step::JoinWorker).await?;
        let yaml = docs
            .join_yaml(&role, &ca_hash(ctx)?)
            .map_err(|e| PipelineError::host(&n.host, step, e))?;
        let path = format!("{}/kubeadm/kubeadm-join.yaml", ctx.data_dir);
        node::write_file(n, &ctx.tls, &ctx.rec, step, &path, yaml.into_bytes(), 0o600).await?;
        let cmd = Cmd::new(&[
            "kubeadm",
            "join",
            "--config",
            &path,
            "--ignore-preflight-errors=SystemVerification",
        ]);
        node::run(n, &ctx.tls, &ctx.rec, step, cmd).await?;
    }
    if master {
        // A joined master talks to its own apiserver.
        node::hosts_entry(n, &ctx.tls, &ctx.rec, step, API_HOST, Some(n.ip)).await?;
    }
    Ok(())
}

/// The VIP load balancer's desired state: the masters' :6443.
pub fn lb_spec(ctx: &Ctx) -> Result<LbSpec, PipelineError> {
    let IpAddr::V4(vip) = ctx.vip else {
        return Err(PipelineError::cluster(Step::LbSync, "the VIP must be IPv4"));
    };
    let mut real_servers = Vec::new();
    for m in ctx.masters() {
        let IpAddr::V4(ip) = m.addr.ip else {
            return Err(PipelineError::cluster(
                Step::LbSync,
                format!("master {} is not IPv4", m.addr),
            ));
        };
        real_servers.push(RealServer {
            addr: SocketAddrV4::new(ip, API_PORT),
            weight: 1,
        });
    }
    let spec = LbSpec {
        vip: SocketAddrV4::new(vip, API_PORT),
        real_servers,
        scheduler: Scheduler::Rr,
        health: HealthCheck::default(),
        backend: BackendKind::Auto,
        version: u64::try_from(now_ms()).unwrap_or(1).max(1),
    };
    spec.validate()
        .map_err(|e| PipelineError::cluster(Step::LbSync, e))?;
    Ok(spec)
}

pub async fn lb_sync(ctx: &Ctx, n: &NodeRef, spec: &LbSpec) -> Result<(), PipelineError> {
    let c = n.connect(&ctx.tls, Step::LbSync).await?;
    LbClient::new(&c, std::time::Duration::from_secs(30))
        .set(spec, ctx.rec.reporter().op())
        .await
        .map_err(|e| PipelineError::host(&n.host, Step::LbSync, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<PkiFile> {
        [
            "pki/ca.crt",
            "pki/ca.key",
            "admin.conf",
            "super-admin.conf",
            "controller-manager.conf",
            "scheduler.conf",
            "kubelet.conf",
        ]
        .iter()
        .map(|p| PkiFile {
            path: (*p).to_string(),
            contents: format!("contents of {p}"),
            mode: 0o600,
        })
        .collect()
    }

    fn paths(tree: &[(String, Vec<u8>, u32)]) -> Vec<&str> {
        tree.iter().map(|(p, _, _)| p.as_str()).collect()
    }

    #[test]
    fn joining_masters_get_no_kubelet_conf_and_every_master_an_audit_policy() {
        let m0 = pki_tree(&files(), true);
        let p0 = paths(&m0);
        for f in [
            "kubelet.conf",
            "super-admin.conf",
            "admin.conf",
            "audit-policy.yml",
        ] {
            assert!(p0.contains(&f), "master0 gets {f}: {p0:?}");
        }
        let other = pki_tree(&files(), false);
        let p = paths(&other);
        assert!(
            !p.contains(&"kubelet.conf"),
            "kubeadm join refuses it: {p:?}"
        );
        assert!(!p.contains(&"super-admin.conf"), "{p:?}");
        for f in [
            "pki/ca.key",
            "admin.conf",
            "controller-manager.conf",
            "scheduler.conf",
        ] {
            assert!(p.contains(&f), "joining master gets {f}: {p:?}");
        }
        let audit = other
            .iter()
            .find(|(p, _, _)| p == "audit-policy.yml")
            .unwrap();
        assert_eq!(audit.1, AUDIT_POLICY.as_bytes());
        assert_eq!(
            format!("/etc/kubernetes/{}", audit.0),
            AUDIT_POLICY_PATH,
            "written where the ClusterConfiguration points"
        );
    }
}

//! `ferry cert --renew`: `kubeadm certs renew all` for every master, with
//! the cluster's CAs. The renewed sets are generated on the bastion first
//! (`cert_stage`), then each master in turn gets the files its node has
//! (kubeadm renews what is there: super-admin.conf lives on master0 only),
//! master0 also `/root/.kube/config`; its etcd, kube-apiserver,
//! kube-controller-manager and kube-scheduler containers are restarted
//! (`crictl`; the kubelet starts new ones, which read the new files) and
//! the apiserver's `/readyz` awaited before the next master. What reached
//! the node is read back and compared, then committed to the bastion copy
//! (and master0's admin.conf to `<state>/etc/admin.conf`). A failed master
//! stays staged: a re-run continues with it alone.

use std::collections::BTreeMap;
use std::time::Instant;

use ferry_shared::pki::kube::{RenewKind, Renewable, renew_all, renewables_in};
use ferry_shared::{EventKind, Phase};
use time::OffsetDateTime;

use super::cert::{master_dirs, pki_root};
use super::cert_expiry::cert_part;
use super::cert_node::{CertError, Master, Restart};
use super::cert_stage::{Plan, Stage, node_mode};
use super::summary::Summary;
use super::{CliError, Exit};
use crate::client::ClientTls;
use crate::output::{Reporter, now_ms};
use crate::pipeline::load_clusterfile;
use crate::state::{ClusterState, NodeRecord, write_atomic};

/// The apiserver port of clusters ferry makes (its ClusterConfiguration).
const API_PORT: u16 = 6443;
/// The static pods that read the renewed files, in restart order.
const STATIC_PODS: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

pub async fn renew(cluster: &ClusterState, r: &Reporter) -> Result<Exit, CliError> {
    let started = Instant::now();
    let dirs = master_dirs(cluster)?;
    let stage = Stage::new(&pki_root(cluster));
    let m0 = master0_ip(cluster);
    let plan = match stage.pending()? {
        Some(p) if !p.masters.is_empty() => {
            say(
                r,
                &format!(
                    "cert --renew: continuing the renewal staged in {} (masters left: {})",
                    stage.dir().display(),
                    p.masters.join(", ")
                ),
            );
            p
        }
        _ => generate(&stage, &dirs, m0.as_deref()).await?,
    };
    let inventory = cluster.load_inventory()?;
    let tls = ClientTls::from_pki(&cluster.agent_pki()?);
    let mut sum = Summary::default();
    for ip in &plan.masters {
        let Some((_, dir)) = dirs.iter().find(|(d, _)| d == ip) else {
            sum.ok(ip, "no longer a master in the bastion state: skipped");
            continue;
        };
        let node = inventory
            .nodes
            .iter()
            .find(|n| n.addr.ip.to_string() == *ip);
        let is_m0 = m0.as_deref() == Some(ip.as_str());
        let done = match renew_master(r, &stage, ip, node, &tls, is_m0).await {
            Ok(note) => commit(cluster, &stage, ip, dir, is_m0).map(|()| note),
            Err(e) => Err(e),
        };
        match done {
            Ok(note) => sum.ok(ip, note),
            Err(e) => {
                r.emit(
                    r.event(ip, Phase::Exec, EventKind::Failed)
                        .message(e.to_string()),
                );
                sum.failed(ip, e);
            }
        }
    }
    if sum.failed_count() == 0 {
        stage.discard()?;
    } else {
        say(
            r,
            &format!(
                "cert --renew: the renewed certificates of the failed masters stay in {}; \
             fix what is named and re-run `ferry cert --renew` to continue with them",
                stage.dir().display()
            ),
        );
    }
    r.finish();
    Ok(sum.print(r, "cert --renew", started))
}

fn say(r: &Reporter, text: &str) {
    if r.is_json() {
        r.emit(r.event("", Phase::Exec, EventKind::Log).message(text));
    } else {
        r.text(text);
    }
}

/// master0 as the stored Clusterfile names it (it holds /root/.kube/config
/// and the bastion's admin.conf is its copy).
fn master0_ip(cluster: &ClusterState) -> Option<String> {
    let cf = load_clusterfile(cluster).ok().flatten()?;
    Some(cf.cluster.master0().ok()?.addr.ip.to_string())
}

/// Renews every master's set into the stage and seals it (master0 first).
async fn generate(
    stage: &Stage,
    dirs: &[(String, std::path::PathBuf)],
    m0: Option<&str>,
) -> Result<Plan, CliError> {
    let mut masters: Vec<String> = dirs.iter().map(|(ip, _)| ip.clone()).collect();
    masters.sort_by_key(|ip| Some(ip.as_str()) != m0);
    let now = OffsetDateTime::now_utc();
    for (ip, dir) in dirs {
        let d = dir.clone();
        // RSA keygen: off the async runtime.
        let files = tokio::task::spawn_blocking(move || {
            renew_all(|rel| std::fs::read_to_string(d.join(rel)).ok(), now)
        })
        .await
        .map_err(|e| CliError::Usage(format!("renewal task: {e}")))?
        .map_err(|e| CertError::Bastion {
            path: dir.display().to_string(),
            step: "renew",
            detail: e.to_string(),
            next: "restore this master's PKI in the bastion state; nothing was changed on any node"
                .into(),
        })?;
        stage.write(ip, &files)?;
    }
    let plan = Plan {
        started_ms: now_ms(),
        masters,
    };
    stage.seal(&plan)?;
    Ok(plan)
}

async fn renew_master(
    r: &Reporter,
    stage: &Stage,
    ip: &str,
    node: Option<&NodeRecord>,
    tls: &ClientTls,
    is_m0: bool,
) -> Result<String, CertError> {
    let node = node.ok_or_else(|| CertError::Node {
        host: ip.to_string(),
        step: "connect",
        detail: "no agent for this master in agents.json".into(),
        next: format!("`ferry agent install --masters {ip}`, then re-run `ferry cert --renew`"),
    })?;
    let m = Master::connect(ip, node.addr.ip, node.agent_port, tls).await?;
    r.emit(
        r.event(ip, Phase::Exec, EventKind::Started)
            .message("cert --renew: push the renewed certificates and kubeconfigs"),
    );
    let staged: BTreeMap<String, Vec<u8>> = stage.files(ip)?.into_iter().collect();
    let keys: Vec<&String> = staged.keys().collect();
    let renewables = renewables_in(&keys);
    let wanted: Vec<&str> = renewables.iter().map(|x| x.path).collect();
    let on_node = m.read_certs(r, &wanted).await?;
    let mut tree = Vec::new();
    let mut skipped = Vec::new();
    for x in &renewables {
        if !on_node.contains_key(x.path) {
            skipped.push(x.path);
            continue;
        }
        for out in x.outputs() {
            let data = staged.get(&out).cloned().ok_or_else(|| {
                m.err(
                    "push",
                    format!("{out} is missing from the stage"),
                    "remove the stage and re-run",
                )
            })?;
            tree.push((out.clone(), data, node_mode(&out)));
        }
    }
    m.write_files(r, "/etc/kubernetes", &tree).await?;
    if let (true, Some(admin)) = (
        is_m0 && !skipped.contains(&"admin.conf"),
        staged.get("admin.conf"),
    ) {
        m.write_files(r, "/root/.kube", &[("config".into(), admin.clone(), 0o600)])
            .await?;
    }
    let restarted = restart_control_plane(r, &m).await?;
    verify(r, &m, &renewables, &skipped, &staged).await?;
    let n = renewables.len() - skipped.len();
    let mut note = format!("{n} certificates renewed; {restarted}");
    if !skipped.is_empty() {
        note.push_str(&format!(
            "; not on the node, left alone: {}",
            skipped.join(", ")
        ));
    }
    Ok(note)
}

/// Restarts etcd, then the apiserver, which must answer `/readyz`
/// before the controller-manager and the scheduler go (together).
async fn restart_control_plane(r: &Reporter, m: &Master) -> Result<String, CertError> {
    let t = Instant::now();
    let no_runtime = || {
        format!(
            "no crictl on the node: restart {} to load them",
            STATIC_PODS.join(", ")
        )
    };
    let [etcd, apiserver, cm, sched] = STATIC_PODS;
    for name in [etcd, apiserver] {
        if !restarted(r, m, name, m.restart(r, name).await?) {
            return Ok(no_runtime());
        }
    }
    let ready_ms = m
        .wait_ready(r, API_PORT)
        .await?
        .then(|| t.elapsed().as_millis() as u64);
    let (a, b) = futures::join!(m.restart(r, cm), m.restart(r, sched));
    if !restarted(r, m, cm, a?) | !restarted(r, m, sched, b?) {
        return Ok(no_runtime());
    }
    let mut ev = r
        .event(&m.host, Phase::Exec, EventKind::Finished)
        .message(format!("static pods restarted: {}", STATIC_PODS.join(", ")));
    let ready = match ready_ms {
        Some(ms) => {
            ev = ev.counter("apiserver_ready_ms", ms);
            format!(
                "apiserver ready {:.1}s after etcd was stopped",
                ms as f64 / 1000.0
            )
        }
        None => "apiserver readiness not checked: no kubectl on the node".into(),
    };
    r.emit(ev);
    Ok(format!("{} restarted, {ready}", STATIC_PODS.join(", ")))
}

/// Reports one restart; false when the node has no runtime to ask.
fn restarted(r: &Reporter, m: &Master, name: &str, how: Restart) -> bool {
    let Restart::Done { secs } = how else {
        return false;
    };
    r.emit(
        r.event(&m.host, Phase::Exec, EventKind::Progress)
            .message(format!(
                "{name} restarted: a new container runs after {secs:.1}s"
            ))
            .counter("restart_ms", (secs * 1000.0) as u64),
    );
    true
}

/// Reads back what was pushed: every certificate on the node is the staged one.
async fn verify(
    r: &Reporter,
    m: &Master,
    renewables: &[Renewable],
    skipped: &[&str],
    staged: &BTreeMap<String, Vec<u8>>,
) -> Result<(), CertError> {
    let pushed: Vec<&str> = renewables
        .iter()
        .map(|x| x.path)
        .filter(|p| !skipped.contains(p))
        .collect();
    let back = m.read_certs(r, &pushed).await?;
    for x in renewables.iter().filter(|x| pushed.contains(&x.path)) {
        let want = staged
            .get(x.path)
            .and_then(|d| cert_part(x.path, &String::from_utf8_lossy(d)).ok());
        let got = back.get(x.path).and_then(|t| cert_part(x.path, t).ok());
        if want.is_none() || want != got {
            let kind = if x.kind == RenewKind::Kubeconfig {
                "kubeconfig"
            } else {
                "certificate"
            };
            return Err(m.err(
                "verify",
                format!(
                    "the {kind} /etc/kubernetes/{} on the node is not the renewed one",
                    x.path
                ),
                "something else writes it (another tool?); re-run `ferry cert --renew`",
            ));
        }
    }
    Ok(())
}

/// The master's new files become the bastion copy; master0's admin.conf
/// also `<state>/etc/admin.conf` (first: the stage goes last, so a crash
/// in between repeats the whole commit).
fn commit(
    cluster: &ClusterState,
    stage: &Stage,
    ip: &str,
    dir: &std::path::Path,
    is_m0: bool,
) -> Result<(), CertError> {
    let admin = stage
        .files(ip)?
        .into_iter()
        .find(|(p, _)| p == "admin.conf");
    if let (true, Some((_, admin))) = (is_m0, admin) {
        let etc = cluster.dir().join("etc");
        let path = etc.join("admin.conf");
        std::fs::create_dir_all(&etc)
            .map_err(|e| e.to_string())
            .and_then(|()| write_atomic(&path, &admin, 0o600).map_err(|e| e.to_string()))
            .map_err(|detail| CertError::Bastion {
                path: path.display().to_string(),
                step: "refresh the admin kubeconfig",
                detail,
                next: "re-run `ferry cert --renew`".into(),
            })?;
    }
    stage.commit(ip, dir)
}

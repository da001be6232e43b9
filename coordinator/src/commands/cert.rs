//! `ferry cert`: the cluster's Kubernetes PKI. The pipeline keeps each
//! master's set on the bastion (`<state>/pki/kubernetes/<master-ip>/`,
//! files laid out as in `/etc/kubernetes`).
//! - `--check-expiration` (`cert_check`) reads the certificates on the
//!   masters through their agents and compares them with the bastion copy;
//! - `--renew` (`cert_renew`) is `kubeadm certs renew all` on every master;
//! - `--alt-names a,b` re-issues each master's apiserver certificate with
//!   those SANs added (same CA), stores it, and pushes it to every master
//!   whose agent answers. It restarts the apiserver only where a container
//!   runtime lets it (`crictl`); otherwise it says what is left to do. The
//!   SANs are also recorded in the stored Clusterfile (0600) as the
//!   ClusterConfiguration's `apiServer.certSANs`, sealos' way, so a master
//!   added later gets them in its certificate and kubeadm config.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ferry_shared::clusterfile::{Clusterfile, OtherDoc};
use ferry_shared::pki::kube::reissue_apiserver;
use ferry_shared::{EventKind, Phase};
use time::OffsetDateTime;

use super::cert_node::{CertError, Master, Restart};
use super::cert_stage::Stage;
use super::summary::Summary;
use super::{CliError, Exit, cert_check, cert_renew};
use crate::client::ClientTls;
use crate::output::Reporter;
use crate::pipeline::{load_clusterfile, save_clusterfile};
use crate::state::{ClusterState, NodeRecord, write_atomic};

const KUBEADM_V1BETA3: &str = "kubeadm.k8s.io/v1beta3";

#[derive(Debug, clap::Args)]
pub struct CertArgs {
    /// Show each certificate's expiry and residual time (like `kubeadm certs check-expiration`).
    #[arg(long)]
    pub check_expiration: bool,
    /// Add these SANs (IPs or DNS names, comma-separated) to every master's apiserver certificate.
    #[arg(long, value_delimiter = ',')]
    pub alt_names: Vec<String>,
    /// With --alt-names: update the bastion state only, push nothing.
    #[arg(long)]
    pub no_push: bool,
    /// Renew every master's leaf certificates and kubeconfigs with the same CAs
    /// (like `kubeadm certs renew all`) and restart the static pods; a re-run
    /// after a failure continues.
    #[arg(long)]
    pub renew: bool,
}

/// `<state>/pki/kubernetes`, where the pipeline keeps each master's PKI.
pub fn pki_root(cluster: &ClusterState) -> PathBuf {
    cluster.dir().join("pki").join("kubernetes")
}

/// The per-master directories (named by IP), sorted.
pub(super) fn master_dirs(cluster: &ClusterState) -> Result<Vec<(String, PathBuf)>, CliError> {
    let root = pki_root(cluster);
    let entries = std::fs::read_dir(&root).map_err(|_| {
        CliError::Usage(format!(
            "no Kubernetes PKI in {}: `ferry cert` works on clusters created by `ferry run` (cluster `{}`)",
            root.display(),
            cluster.name()
        ))
    })?;
    let mut dirs: Vec<(String, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("pki/ca.crt").is_file())
        .filter_map(|p| Some((p.file_name()?.to_string_lossy().into_owned(), p)))
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(CliError::Usage(format!(
            "no master PKI under {}",
            root.display()
        )));
    }
    Ok(dirs)
}

pub async fn cert(cluster: &ClusterState, r: &Reporter, a: CertArgs) -> Result<Exit, CliError> {
    match (a.check_expiration, a.renew, a.alt_names.is_empty()) {
        (true, false, true) => cert_check::check_expiration(cluster, r).await,
        (false, true, true) => cert_renew::renew(cluster, r).await,
        (false, false, false) => alt_names(cluster, r, &a).await,
        _ => Err(CliError::Usage(
            "give exactly one of --check-expiration, --renew or --alt-names a,b".into(),
        )),
    }
}

fn read(dir: &Path, rel: &str) -> Result<String, String> {
    std::fs::read_to_string(dir.join(rel)).map_err(|e| format!("{}: {e}", dir.join(rel).display()))
}

fn reissue(dir: &Path, extra: &[String]) -> Result<(String, String), String> {
    let (cert, key) = reissue_apiserver(
        &read(dir, "pki/ca.crt")?,
        &read(dir, "pki/ca.key")?,
        &read(dir, "pki/apiserver.crt")?,
        extra,
        OffsetDateTime::now_utc(),
    )
    .map_err(|e| e.to_string())?;
    let write = |rel: &str, data: &str| {
        write_atomic(&dir.join(rel), data.as_bytes(), 0o600).map_err(|e| e.to_string())
    };
    write("pki/apiserver.key", &key)?;
    write("pki/apiserver.crt", &cert)?;
    Ok((cert, key))
}

/// Adds `sans` to the ClusterConfiguration's `apiServer.certSANs` among
/// the Clusterfile's documents (a new v1beta3 document if there is none);
/// true when something changed.
pub fn record_cert_sans(cf: &mut Clusterfile, sans: &[String]) -> bool {
    use serde_yaml_ng::{Mapping, Value};
    let idx = cf
        .docs
        .iter()
        .position(|d| d.is_kube_config() && d.kind == "ClusterConfiguration");
    let idx = match idx {
        Some(i) => i,
        None => {
            let mut m = Mapping::new();
            m.insert("apiVersion".into(), KUBEADM_V1BETA3.into());
            m.insert("kind".into(), "ClusterConfiguration".into());
            cf.docs.push(OtherDoc {
                api_version: KUBEADM_V1BETA3.into(),
                kind: "ClusterConfiguration".into(),
                value: Value::Mapping(m),
            });
            cf.docs.len() - 1
        }
    };
    let Value::Mapping(doc) = &mut cf.docs[idx].value else {
        return false;
    };
    let api = doc
        .entry("apiServer".into())
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if !api.is_mapping() {
        *api = Value::Mapping(Mapping::new());
    }
    let Value::Mapping(api) = api else {
        return false;
    };
    let list = api
        .entry("certSANs".into())
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if !list.is_sequence() {
        *list = Value::Sequence(Vec::new());
    }
    let Value::Sequence(list) = list else {
        return false;
    };
    let mut changed = false;
    for s in sans {
        if !list.iter().any(|v| v.as_str() == Some(s.as_str())) {
            list.push(Value::from(s.as_str()));
            changed = true;
        }
    }
    changed
}

/// Records the SANs in the stored Clusterfile; a note on what happened.
fn persist_sans(cluster: &ClusterState, sans: &[String]) -> Result<String, CliError> {
    let Some(mut cf) = load_clusterfile(cluster)? else {
        return Ok(format!(
            "no stored Clusterfile in {}: masters added later will not get these SANs",
            cluster.dir().display()
        ));
    };
    if !record_cert_sans(&mut cf, sans) {
        return Ok("the stored Clusterfile already lists these SANs".into());
    }
    save_clusterfile(cluster, &cf)?;
    Ok(format!(
        "recorded in {} (ClusterConfiguration apiServer.certSANs) for masters added later",
        cluster.dir().join(crate::pipeline::CLUSTERFILE).display()
    ))
}

async fn alt_names(cluster: &ClusterState, r: &Reporter, a: &CertArgs) -> Result<Exit, CliError> {
    let started = Instant::now();
    let dirs = master_dirs(cluster)?;
    if Stage::new(&pki_root(cluster)).pending()?.is_some() {
        return Err(CliError::Usage(
            "a certificate renewal is pending: finish it with `ferry cert --renew` first".into(),
        ));
    }
    let note = persist_sans(cluster, &a.alt_names)?;
    if r.is_json() {
        r.emit(
            r.event("", Phase::Facts, EventKind::Finished)
                .message(format!("certSANs {}: {note}", a.alt_names.join(","))),
        );
    } else {
        r.text(&format!("cert: SANs {note}"));
    }
    let inventory = cluster.load_inventory()?;
    let tls = if a.no_push || inventory.nodes.is_empty() {
        None
    } else {
        Some(ClientTls::from_pki(&cluster.agent_pki()?))
    };
    let mut sum = Summary::default();
    for (ip, dir) in &dirs {
        // RSA keygen: off the async runtime.
        let (d, extra) = (dir.clone(), a.alt_names.clone());
        let issued = tokio::task::spawn_blocking(move || reissue(&d, &extra))
            .await
            .map_err(|e| format!("blocking task: {e}"))
            .and_then(|r| r);
        let (cert, key) = match issued {
            Ok(p) => p,
            Err(e) => {
                sum.failed(ip, format_args!("re-issuing apiserver.crt: {e}"));
                continue;
            }
        };
        let node = inventory
            .nodes
            .iter()
            .find(|n| n.addr.ip.to_string() == *ip);
        let (Some(tls), Some(node)) = (&tls, node) else {
            sum.ok(ip, "apiserver.crt re-issued in the bastion state (not pushed: no agent for this master)");
            continue;
        };
        match push(r, ip, node, tls, &cert, &key).await {
            Ok(note) => sum.ok(
                ip,
                format_args!("apiserver.crt re-issued and pushed; {note}"),
            ),
            Err(e) => sum.failed(
                ip,
                format_args!("re-issued in the bastion state, push failed: {e}"),
            ),
        }
    }
    r.finish();
    Ok(sum.print(
        r,
        &format!("cert --alt-names {}", a.alt_names.join(",")),
        started,
    ))
}

async fn push(
    r: &Reporter,
    host: &str,
    node: &NodeRecord,
    tls: &ClientTls,
    cert: &str,
    key: &str,
) -> Result<String, CertError> {
    r.emit(
        r.event(host, Phase::Exec, EventKind::Started)
            .message("push apiserver.crt/key"),
    );
    let m = Master::connect(host, node.addr.ip, node.agent_port, tls).await?;
    let files = [
        (
            "pki/apiserver.key".to_string(),
            key.as_bytes().to_vec(),
            0o600,
        ),
        (
            "pki/apiserver.crt".to_string(),
            cert.as_bytes().to_vec(),
            0o644,
        ),
    ];
    m.write_files(r, "/etc/kubernetes", &files).await?;
    let note = match m.restart(r, "kube-apiserver").await? {
        Restart::Done { secs } => format!("apiserver container restarted ({secs:.1}s)"),
        Restart::NoRuntime => {
            "no container runtime answers: restart the apiserver to load the new certificate"
                .to_string()
        }
    };
    r.emit(
        r.event(host, Phase::Exec, EventKind::Finished)
            .message(format!("apiserver certificate pushed; {note}")),
    );
    Ok(note)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const CF: &str = "apiVersion: apps.sealos.io/v1beta1\nkind: Cluster\nmetadata: {name: default}\nspec:\n  hosts:\n  - ips: [10.0.0.2]\n    roles: [master]\n";

    fn sans(cf: &Clusterfile) -> Vec<String> {
        let d = cf
            .docs
            .iter()
            .find(|d| d.kind == "ClusterConfiguration")
            .unwrap();
        d.value["apiServer"]["certSANs"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn sans_are_added_to_a_new_cluster_configuration() {
        let mut cf = Clusterfile::parse(CF).unwrap();
        assert!(record_cert_sans(
            &mut cf,
            &["a.example.com".into(), "10.9.9.9".into()]
        ));
        assert_eq!(sans(&cf), ["a.example.com", "10.9.9.9"]);
        // Round trip through the stored text: a kubeadm document again.
        let back = Clusterfile::parse(&cf.to_yaml(true).unwrap()).unwrap();
        let d = back.kube_config_docs().next().unwrap();
        assert_eq!(d.api_version, KUBEADM_V1BETA3);
        assert_eq!(sans(&back), ["a.example.com", "10.9.9.9"]);
        assert!(
            !record_cert_sans(&mut cf, &["10.9.9.9".into()]),
            "no change twice"
        );
    }

    #[test]
    fn sans_merge_into_an_existing_cluster_configuration() {
        let text = format!(
            "{CF}---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking: {{podSubnet: 10.160.0.0/12}}\napiServer: {{certSANs: [k8s.example.com], extraArgs: [{{name: a, value: b}}]}}\n"
        );
        let mut cf = Clusterfile::parse(&text).unwrap();
        assert!(record_cert_sans(
            &mut cf,
            &["k8s.example.com".into(), "new.example.com".into()]
        ));
        assert_eq!(cf.docs.len(), 1);
        assert_eq!(sans(&cf), ["k8s.example.com", "new.example.com"]);
        assert_eq!(cf.docs[0].value["networking"]["podSubnet"], "10.160.0.0/12");
        assert_eq!(cf.docs[0].value["apiServer"]["extraArgs"][0]["name"], "a");
    }
}

//! `ferry cert`: the cluster's Kubernetes PKI as the pipeline keeps it on
//! the bastion (`<state>/pki/kubernetes/<master-ip>/`, files laid out as in
//! `/etc/kubernetes`). `--check-expiration` reports every certificate;
//! `--alt-names a,b` re-issues each master's apiserver certificate with
//! those SANs added (same CA), stores it, and pushes it to every master
//! whose agent answers. It restarts the apiserver only where a container
//! runtime lets it (`crictl`); otherwise it says what is left to do. The
//! SANs are also recorded in the stored Clusterfile (0600) as the
//! ClusterConfiguration's `apiServer.certSANs`, sealos' way, so a master
//! added later gets them in its certificate and kubeadm config.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferry_shared::pki::kube::reissue_apiserver;
use ferry_shared::{EventKind, ExecSpec, Phase};
use futures::StreamExt;
use time::OffsetDateTime;

use ferry_shared::clusterfile::{Clusterfile, OtherDoc};

use super::cert_expiry::{rows, table};
use super::summary::Summary;
use super::{CliError, Exit};
use crate::client::{AgentClient, ClientTls, ExecItem};
use crate::output::Reporter;
use crate::pipeline::{load_clusterfile, save_clusterfile};
use crate::state::ClusterState;

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
}

/// `<state>/pki/kubernetes`, where the pipeline keeps each master's PKI.
pub fn pki_root(cluster: &ClusterState) -> PathBuf {
    cluster.dir().join("pki").join("kubernetes")
}

/// The per-master directories (named by IP), sorted.
fn master_dirs(cluster: &ClusterState) -> Result<Vec<(String, PathBuf)>, CliError> {
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
    match (a.check_expiration, a.alt_names.is_empty()) {
        (true, true) => check_expiration(cluster, r),
        (false, false) => alt_names(cluster, r, &a).await,
        _ => Err(CliError::Usage(
            "give exactly one of --check-expiration or --alt-names a,b".into(),
        )),
    }
}

fn check_expiration(cluster: &ClusterState, r: &Reporter) -> Result<Exit, CliError> {
    let now = OffsetDateTime::now_utc();
    let mut bad = 0;
    for (ip, dir) in master_dirs(cluster)? {
        let (leaves, cas) = rows(&dir);
        r.text(&format!("[{ip}] {}", dir.display()));
        for line in table(now, &leaves, &cas) {
            r.text(&line);
        }
        r.text("");
        for row in leaves.iter().chain(&cas) {
            let ev = match &row.facts {
                Ok(f) => {
                    let days = (f.not_after - now).whole_days().max(0) as u64;
                    if f.not_after <= now {
                        bad += 1;
                    }
                    r.event(&ip, Phase::Facts, EventKind::Finished)
                        .message(format!("certificate {} expires {}", row.name, f.not_after))
                        .counter("residual_days", days)
                }
                Err(e) => {
                    bad += 1;
                    r.event(&ip, Phase::Facts, EventKind::Failed)
                        .message(format!("certificate {}: {e}", row.name))
                }
            };
            if r.is_json() {
                r.emit(ev);
            }
        }
    }
    Ok(Exit::from_failures(bad))
}

fn read(dir: &Path, rel: &str) -> Result<String, String> {
    std::fs::read_to_string(dir.join(rel)).map_err(|e| format!("{}: {e}", dir.join(rel).display()))
}

/// Writes `bytes` to `path` atomically with `mode`.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("ferry-tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
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
    write_atomic(&dir.join("pki/apiserver.key"), key.as_bytes(), 0o600)?;
    write_atomic(&dir.join("pki/apiserver.crt"), cert.as_bytes(), 0o600)?;
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
        match push(r, ip, node.addr.ip, node.agent_port, tls, &cert, &key).await {
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

const WRITE: &str = r#"set -e; mkdir -p "$(dirname "$1")"; umask 077; cat > "$1.ferry-tmp"; chmod "$2" "$1.ferry-tmp"; mv -f "$1.ferry-tmp" "$1""#;
const RESTART: &str = r#"if command -v crictl >/dev/null 2>&1 && ids=$(crictl ps -q --name kube-apiserver 2>/dev/null) && [ -n "$ids" ]; then crictl stop $ids >/dev/null && echo "apiserver container restarted"; else echo "no container runtime answers: restart the apiserver to load the new certificate"; fi"#;

/// Runs one command through the agent; returns its stdout.
async fn run(
    client: &AgentClient,
    r: &Reporter,
    argv: &[&str],
    stdin: Vec<u8>,
) -> Result<String, String> {
    let mut spec = ExecSpec::argv(argv.iter().map(|s| s.to_string()).collect(), r.op());
    spec.stdin = stdin;
    spec.timeout = Some(Duration::from_secs(60));
    let mut stream = client.exec(&spec).await.map_err(|e| e.to_string())?;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(item) = stream.next().await {
        match item.map_err(|e| e.to_string())? {
            ExecItem::Stdout(d) => out.extend(d),
            ExecItem::Stderr(d) => err.extend(d),
            ExecItem::Exit(o) if o.success() => {
                return Ok(String::from_utf8_lossy(&out).trim().to_string());
            }
            ExecItem::Exit(o) => {
                return Err(format!(
                    "{}: {}",
                    o.describe(),
                    String::from_utf8_lossy(&err).trim()
                ));
            }
            ExecItem::Started { .. } | ExecItem::Heartbeat => {}
        }
    }
    Err("exec stream ended without an exit status".into())
}

async fn push(
    r: &Reporter,
    host: &str,
    ip: std::net::IpAddr,
    port: u16,
    tls: &ClientTls,
    cert: &str,
    key: &str,
) -> Result<String, String> {
    r.emit(
        r.event(host, Phase::Exec, EventKind::Started)
            .message("push apiserver.crt/key"),
    );
    let client = AgentClient::connect(ip, port, tls, Duration::from_secs(10))
        .await
        .map_err(|e| e.to_string())?;
    for (path, data, mode) in [
        ("/etc/kubernetes/pki/apiserver.key", key, "600"),
        ("/etc/kubernetes/pki/apiserver.crt", cert, "644"),
    ] {
        run(
            &client,
            r,
            &["bash", "-c", WRITE, "write", path, mode],
            data.as_bytes().to_vec(),
        )
        .await
        .map_err(|e| format!("writing {path}: {e}"))?;
    }
    let note = run(&client, r, &["bash", "-c", RESTART], Vec::new()).await?;
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

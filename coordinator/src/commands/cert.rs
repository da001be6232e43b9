//! `ferry cert`: the cluster's Kubernetes PKI as the pipeline keeps it on
//! the bastion (`<state>/pki/kubernetes/<master-ip>/`, files laid out as in
//! `/etc/kubernetes`). `--check-expiration` reports every certificate;
//! `--alt-names a,b` re-issues each master's apiserver certificate with
//! those SANs added (same CA), stores it, and pushes it to every master
//! whose agent answers. It restarts the apiserver only where a container
//! runtime lets it (`crictl`); otherwise it says what is left to do.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferry_shared::pki::kube::reissue_apiserver;
use ferry_shared::{EventKind, ExecSpec, Phase};
use futures::StreamExt;
use time::OffsetDateTime;

use super::cert_expiry::{rows, table};
use super::summary::Summary;
use super::{CliError, Exit};
use crate::client::{AgentClient, ClientTls, ExecItem};
use crate::output::Reporter;
use crate::state::ClusterState;

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

async fn alt_names(cluster: &ClusterState, r: &Reporter, a: &CertArgs) -> Result<Exit, CliError> {
    let started = Instant::now();
    let dirs = master_dirs(cluster)?;
    let inventory = cluster.load_inventory()?;
    let tls = if a.no_push || inventory.nodes.is_empty() {
        None
    } else {
        Some(ClientTls::from_pki(&cluster.agent_pki()?))
    };
    let mut sum = Summary::default();
    for (ip, dir) in &dirs {
        let (cert, key) = match reissue(dir, &a.alt_names) {
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

//! `/api/clusters/{name}/certs`: certificate expiry per master, read as
//! `ferry cert --check-expiration` reads it — through the master's agent
//! (no key leaves the node) — and, where no agent answers, the bastion
//! PKI copy, labelled `bastion-copy`.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::client::ClientTls;
use crate::commands::cert_expiry::{Row, node_paths, node_rows, rows};
use crate::commands::cert_node::Master;
use crate::output::{OutputMode, Reporter};
use crate::state::{Inventory, read_client_tls};

/// A master's agent has this long to answer.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Serialize)]
pub struct CertRow {
    pub name: &'static str,
    pub ca: Option<&'static str>,
    /// RFC 3339; absent when the file could not be read.
    pub not_after: Option<String>,
    pub residual_days: Option<i64>,
    pub expired: bool,
    /// Read from a node: `same`, `differs` or `absent` against the bastion copy.
    pub bastion_copy: Option<&'static str>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MasterCerts {
    pub master: String,
    /// `node` (read through its agent) or `bastion-copy`.
    pub source: &'static str,
    /// Why the bastion copy is shown, when it is.
    pub note: String,
    pub certs: Vec<CertRow>,
}

fn to_rows(now: OffsetDateTime, leaves: Vec<Row>, cas: Vec<Row>) -> Vec<CertRow> {
    leaves
        .into_iter()
        .chain(cas)
        .map(|r| match r.facts {
            Ok(f) => CertRow {
                name: r.name,
                ca: r.ca,
                not_after: f
                    .not_after
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok(),
                residual_days: Some((f.not_after - now).whole_days()),
                expired: f.not_after <= now,
                bastion_copy: r.copy.map(|c| c.as_str()),
                error: None,
            },
            Err(e) => CertRow {
                name: r.name,
                ca: r.ca,
                not_after: None,
                residual_days: None,
                expired: false,
                bastion_copy: r.copy.map(|c| c.as_str()),
                error: Some(e),
            },
        })
        .collect()
}

/// Every master with a PKI directory under `<cluster dir>/pki/kubernetes/`.
pub async fn check(dir: &Path, inventory: &Inventory) -> Vec<MasterCerts> {
    let now = OffsetDateTime::now_utc();
    let root = dir.join("pki").join("kubernetes");
    let mut masters: Vec<(String, std::path::PathBuf)> = std::fs::read_dir(&root)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.join("pki/ca.crt").is_file())
                .filter_map(|p| Some((p.file_name()?.to_string_lossy().into_owned(), p)))
                .collect()
        })
        .unwrap_or_default();
    masters.sort();
    let tls = read_client_tls(&dir.join("pki"))
        .ok()
        .flatten()
        .map(|(ca, cert, key)| ClientTls::from_pem(&ca, &cert, key.expose()));
    let r = Reporter::new(OutputMode::Json, "dashboard-certs".into());
    let mut out = Vec::new();
    for (ip, mdir) in masters {
        let node = inventory.nodes.iter().find(|n| n.addr.ip.to_string() == ip);
        let read = match (node, &tls) {
            (Some(n), Some(tls)) => {
                let fut = async {
                    let m = Master::connect(&ip, n.addr.ip, n.agent_port, tls).await?;
                    m.read_certs(&r, &node_paths()).await
                };
                match tokio::time::timeout(READ_TIMEOUT, fut).await {
                    Ok(Ok(files)) => Ok(files),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("the agent did not answer within {READ_TIMEOUT:?}")),
                }
            }
            (None, _) => Err("no agent for this master in the inventory".to_string()),
            (_, None) => Err("no coordinator certificate to reach the agents".to_string()),
        };
        let m = match read {
            Ok(files) => {
                let (l, c) = node_rows(&files, &mdir);
                MasterCerts {
                    master: ip,
                    source: "node",
                    note: String::new(),
                    certs: to_rows(now, l, c),
                }
            }
            Err(why) => {
                let (l, c) = rows(&mdir);
                MasterCerts {
                    master: ip,
                    source: "bastion-copy",
                    note: format!("bastion copy {} ({why})", mdir.display()),
                    certs: to_rows(now, l, c),
                }
            }
        };
        out.push(m);
    }
    out
}

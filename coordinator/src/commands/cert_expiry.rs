//! `ferry cert --check-expiration`: every certificate of a master's PKI
//! (as read from the node, or the bastion copy), shown like `kubeadm certs
//! check-expiration`, with how the node's copy compares with the bastion's.

use std::collections::BTreeMap;
use std::path::Path;

use ferry_shared::pki::kube::{CertFacts, cert_facts, kubeconfig_client_cert};
use time::OffsetDateTime;

/// (name shown, file under the master dir, signing CA) — kubeadm's order.
const LEAVES: [(&str, &str, &str); 12] = [
    ("admin.conf", "admin.conf", "ca"),
    ("super-admin.conf", "super-admin.conf", "ca"),
    ("apiserver", "pki/apiserver.crt", "ca"),
    (
        "apiserver-etcd-client",
        "pki/apiserver-etcd-client.crt",
        "etcd-ca",
    ),
    (
        "apiserver-kubelet-client",
        "pki/apiserver-kubelet-client.crt",
        "ca",
    ),
    ("controller-manager.conf", "controller-manager.conf", "ca"),
    (
        "etcd-healthcheck-client",
        "pki/etcd/healthcheck-client.crt",
        "etcd-ca",
    ),
    ("etcd-peer", "pki/etcd/peer.crt", "etcd-ca"),
    ("etcd-server", "pki/etcd/server.crt", "etcd-ca"),
    (
        "front-proxy-client",
        "pki/front-proxy-client.crt",
        "front-proxy-ca",
    ),
    ("scheduler.conf", "scheduler.conf", "ca"),
    ("kubelet.conf", "kubelet.conf", "ca"),
];

const CAS: [(&str, &str); 3] = [
    ("ca", "pki/ca.crt"),
    ("etcd-ca", "pki/etcd/ca.crt"),
    ("front-proxy-ca", "pki/front-proxy-ca.crt"),
];

/// One row of the report.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: &'static str,
    /// The file, relative to /etc/kubernetes.
    pub rel: &'static str,
    pub ca: Option<&'static str>,
    pub facts: Result<CertFacts, String>,
    /// Read from a node: how the bastion copy compares.
    pub copy: Option<BastionCopy>,
}

/// The bastion copy of a certificate read from a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BastionCopy {
    Same,
    Differs,
    Absent,
}

impl BastionCopy {
    pub fn as_str(self) -> &'static str {
        match self {
            BastionCopy::Same => "same",
            BastionCopy::Differs => "differs",
            BastionCopy::Absent => "absent",
        }
    }
}

/// The certificate PEM in a file's text (a kubeconfig's client certificate).
pub fn cert_part(rel: &str, text: &str) -> Result<String, String> {
    if rel.ends_with(".conf") {
        kubeconfig_client_cert(rel, text).map_err(|e| e.to_string())
    } else {
        Ok(text.to_string())
    }
}

fn facts_of(rel: &str, text: &str) -> Result<CertFacts, String> {
    cert_facts(rel, &cert_part(rel, text)?).map_err(|e| e.to_string())
}

/// The files a node is asked for: kubeadm's list (no kubelet.conf: its
/// client certificate is the kubelet's own, rotated in /var/lib/kubelet).
pub fn node_paths() -> Vec<&'static str> {
    LEAVES
        .iter()
        .map(|(_, rel, _)| *rel)
        .filter(|rel| *rel != "kubelet.conf")
        .chain(CAS.iter().map(|(_, rel)| *rel))
        .collect()
}

/// Leaves then CAs that `read` finds (`read(rel)`: the file's text).
pub fn rows_with(read: &dyn Fn(&str) -> Option<String>) -> (Vec<Row>, Vec<Row>) {
    let row = |name, rel, ca| {
        read(rel).map(|text| Row {
            name,
            rel,
            ca,
            facts: facts_of(rel, &text),
            copy: None,
        })
    };
    let leaves = LEAVES
        .iter()
        .filter_map(|(name, rel, ca)| row(name, rel, Some(*ca)))
        .collect();
    let cas = CAS
        .iter()
        .filter_map(|(name, rel)| row(name, rel, None))
        .collect();
    (leaves, cas)
}

/// Leaves then CAs present in one master's bastion directory.
pub fn rows(dir: &Path) -> (Vec<Row>, Vec<Row>) {
    rows_with(&|rel| std::fs::read_to_string(dir.join(rel)).ok())
}

/// Rows of what a node holds (`node`: relative path -> text), each
/// compared with the bastion copy in `dir`.
pub fn node_rows(node: &BTreeMap<String, String>, dir: &Path) -> (Vec<Row>, Vec<Row>) {
    let (mut leaves, mut cas) = rows_with(&|rel| node.get(rel).cloned());
    let pem = |text: &str, rel: &str| {
        cert_part(rel, text)
            .ok()
            .map(|p| p.split_whitespace().collect::<String>())
    };
    for row in leaves.iter_mut().chain(cas.iter_mut()) {
        let here = node.get(row.rel).and_then(|t| pem(t, row.rel));
        let there = std::fs::read_to_string(dir.join(row.rel))
            .ok()
            .and_then(|t| pem(&t, row.rel));
        row.copy = Some(match (here, there) {
            (_, None) => BastionCopy::Absent,
            (Some(a), Some(b)) if a == b => BastionCopy::Same,
            _ => BastionCopy::Differs,
        });
    }
    (leaves, cas)
}

/// kubeadm's short human duration: `45s`, `30m`, `20h`, `300d`, `99y`.
pub fn residual(now: OffsetDateTime, not_after: OffsetDateTime) -> String {
    let secs = (not_after - now).whole_seconds();
    if secs < 0 {
        return "<invalid>".into();
    }
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    match () {
        _ if secs < 120 => format!("{secs}s"),
        _ if m < 120 => format!("{m}m"),
        _ if h < 48 => format!("{h}h"),
        _ if d < 365 * 2 => format!("{d}d"),
        _ => format!("{}y", d / 365),
    }
}

/// `Nov 30, 2126 14:05 UTC`.
pub fn expires(t: OffsetDateTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{} {:02}, {} {:02}:{:02} UTC",
        MONTHS[usize::from(u8::from(t.month())) - 1],
        t.day(),
        t.year(),
        t.hour(),
        t.minute()
    )
}

fn copy_col(r: &Row) -> String {
    r.copy
        .map(|c| format!(" {:<12}", c.as_str()))
        .unwrap_or_default()
}

/// The two tables for one master, as text lines (with a BASTION COPY
/// column when the rows were read from the node).
pub fn table(now: OffsetDateTime, leaves: &[Row], cas: &[Row]) -> Vec<String> {
    let node = leaves.iter().chain(cas).any(|r| r.copy.is_some());
    let copy_head = if node { " BASTION COPY" } else { "" };
    let mut out = vec![format!(
        "{:<26} {:<24} {:<15} {:<23} {:<18}{copy_head}",
        "CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY", "EXTERNALLY MANAGED"
    )];
    for r in leaves {
        out.push(match &r.facts {
            Ok(f) => format!(
                "{:<26} {:<24} {:<15} {:<23} {:<18}{}",
                r.name,
                expires(f.not_after),
                residual(now, f.not_after),
                r.ca.unwrap_or_default(),
                "no",
                copy_col(r)
            ),
            Err(e) => format!("{:<26} unreadable: {e}", r.name),
        });
    }
    out.push(String::new());
    out.push(format!(
        "{:<26} {:<24} {:<15} {:<18}{copy_head}",
        "CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", "EXTERNALLY MANAGED"
    ));
    for r in cas {
        out.push(match &r.facts {
            Ok(f) => format!(
                "{:<26} {:<24} {:<15} {:<18}{}",
                r.name,
                expires(f.not_after),
                residual(now, f.not_after),
                "no",
                copy_col(r)
            ),
            Err(e) => format!("{:<26} unreadable: {e}", r.name),
        });
    }
    out.iter().map(|l| l.trim_end().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    #[test]
    fn residual_like_kubeadm() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(residual(now, now + Duration::seconds(30)), "30s");
        assert_eq!(residual(now, now + Duration::minutes(90)), "90m");
        assert_eq!(residual(now, now + Duration::hours(30)), "30h");
        assert_eq!(residual(now, now + Duration::days(364)), "364d");
        assert_eq!(residual(now, now + Duration::days(36_524)), "100y");
        assert_eq!(residual(now, now - Duration::days(1)), "<invalid>");
        let t = time::Date::from_calendar_date(2126, time::Month::November, 30)
            .unwrap()
            .with_hms(14, 5, 0)
            .unwrap()
            .assume_utc();
        assert_eq!(expires(t), "Nov 30, 2126 14:05 UTC");
    }

    #[test]
    fn node_rows_compare_with_the_bastion_copy() {
        use ferry_shared::pki::kube::{generate_all, renew_all};
        let now = OffsetDateTime::now_utc();
        let spec = ferry_shared::pki::kube::KubePkiSpec {
            node_name: "node1".into(),
            node_ip: "10.0.0.2".parse().unwrap(),
            control_plane_host: "apiserver.cluster.local".into(),
            control_plane_port: 6443,
            cert_sans: vec![],
            service_cidr: "10.96.0.0/22".into(),
            dns_domain: "cluster.local".into(),
            validity_years: 100,
            kube_minor: 34,
        };
        let files = generate_all(&spec, now).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        for f in &files {
            let p = tmp.path().join(&f.path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, &f.contents).unwrap();
        }
        let text = |p: &str| {
            files
                .iter()
                .find(|f| f.path == p)
                .map(|f| f.contents.clone())
        };
        let renewed = renew_all(text, now + Duration::minutes(1)).unwrap();
        // The node: renewed apiserver (key stripped kubeconfigs as READ sends
        // them), the rest as on the bastion, plus a file the bastion lacks.
        let mut node = BTreeMap::new();
        for p in node_paths() {
            if let Some(t) = text(p) {
                let t = t
                    .lines()
                    .filter(|l| !l.contains("client-key-data"))
                    .collect::<Vec<_>>()
                    .join("\n");
                node.insert(p.to_string(), t);
            }
        }
        let api = renewed
            .iter()
            .find(|f| f.path == "pki/apiserver.crt")
            .unwrap();
        node.insert("pki/apiserver.crt".into(), api.contents.clone());
        std::fs::remove_file(tmp.path().join("scheduler.conf")).unwrap();
        let (leaves, cas) = node_rows(&node, tmp.path());
        let copy = |name: &str| {
            leaves
                .iter()
                .chain(&cas)
                .find(|r| r.name == name)
                .unwrap()
                .copy
                .unwrap()
        };
        assert_eq!(copy("apiserver"), BastionCopy::Differs);
        assert_eq!(copy("admin.conf"), BastionCopy::Same);
        assert_eq!(copy("etcd-peer"), BastionCopy::Same);
        assert_eq!(copy("ca"), BastionCopy::Same);
        assert_eq!(copy("scheduler.conf"), BastionCopy::Absent);
        assert!(
            leaves.iter().all(|r| r.name != "kubelet.conf"),
            "not asked for"
        );
        assert!(leaves.iter().chain(&cas).all(|r| r.facts.is_ok()));
        let lines = table(now, &leaves, &cas);
        assert!(lines[0].ends_with("BASTION COPY"), "{}", lines[0]);
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("apiserver ") && l.ends_with("differs"))
        );
        // The bastion table keeps kubeadm's columns.
        let (l, c) = rows(tmp.path());
        assert!(table(now, &l, &c)[0].ends_with("EXTERNALLY MANAGED"));
    }
}

//! `ferry cert --check-expiration`: every certificate of every master's
//! PKI in the bastion state, shown like `kubeadm certs check-expiration`.

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
    pub ca: Option<&'static str>,
    pub facts: Result<CertFacts, String>,
}

fn read_facts(dir: &Path, rel: &str) -> Option<Result<CertFacts, String>> {
    let text = std::fs::read_to_string(dir.join(rel)).ok()?;
    let pem = if rel.ends_with(".conf") {
        match kubeconfig_client_cert(rel, &text) {
            Ok(p) => p,
            Err(e) => return Some(Err(e.to_string())),
        }
    } else {
        text
    };
    Some(cert_facts(rel, &pem).map_err(|e| e.to_string()))
}

/// Leaves then CAs present in one master's directory.
pub fn rows(dir: &Path) -> (Vec<Row>, Vec<Row>) {
    let leaves = LEAVES
        .iter()
        .filter_map(|(name, rel, ca)| {
            read_facts(dir, rel).map(|facts| Row {
                name,
                ca: Some(ca),
                facts,
            })
        })
        .collect();
    let cas = CAS
        .iter()
        .filter_map(|(name, rel)| {
            read_facts(dir, rel).map(|facts| Row {
                name,
                ca: None,
                facts,
            })
        })
        .collect();
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

/// The two tables for one master, as text lines.
pub fn table(now: OffsetDateTime, leaves: &[Row], cas: &[Row]) -> Vec<String> {
    let mut out = vec![format!(
        "{:<26} {:<24} {:<15} {:<23} {}",
        "CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY", "EXTERNALLY MANAGED"
    )];
    for r in leaves {
        out.push(match &r.facts {
            Ok(f) => format!(
                "{:<26} {:<24} {:<15} {:<23} no",
                r.name,
                expires(f.not_after),
                residual(now, f.not_after),
                r.ca.unwrap_or_default()
            ),
            Err(e) => format!("{:<26} unreadable: {e}", r.name),
        });
    }
    out.push(String::new());
    out.push(format!(
        "{:<26} {:<24} {:<15} {}",
        "CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", "EXTERNALLY MANAGED"
    ));
    for r in cas {
        out.push(match &r.facts {
            Ok(f) => format!(
                "{:<26} {:<24} {:<15} no",
                r.name,
                expires(f.not_after),
                residual(now, f.not_after)
            ),
            Err(e) => format!("{:<26} unreadable: {e}", r.name),
        });
    }
    out
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
}

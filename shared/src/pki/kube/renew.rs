//! `ferry cert`: facts about an existing certificate (expiry, SANs, CA or
//! not) and re-issuing the apiserver certificate with more SANs, signed by
//! the existing cluster CA (same subject, usages and validity length; a
//! new RSA-2048 key, as sealos' `cert --alt-names` does).

use std::net::IpAddr;

use rcgen::SanType;
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;

use super::KubePkiError;
use super::certs::{BACKDATE, Ca, Leaf, san};

#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    #[error("{what} is not a PEM X.509 certificate: {reason}")]
    BadCert { what: String, reason: String },
    #[error(transparent)]
    Pki(#[from] KubePkiError),
}

/// What `check-expiration` shows about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    pub subject_cn: String,
    pub issuer_cn: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub is_ca: bool,
    /// DNS names and IP addresses, in certificate order.
    pub sans: Vec<String>,
    /// Subject organisations (the groups of a client certificate).
    pub orgs: Vec<String>,
    /// Extended key usages.
    pub server_auth: bool,
    pub client_auth: bool,
    /// The serial number, lower-case hex.
    pub serial: String,
}

fn bad(what: &str, reason: impl ToString) -> RenewError {
    RenewError::BadCert {
        what: what.to_string(),
        reason: reason.to_string(),
    }
}

fn cn(name: &x509_parser::x509::X509Name<'_>) -> String {
    name.iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Parses the first certificate of `pem`; `what` names it in errors.
pub fn cert_facts(what: &str, pem: &str) -> Result<CertFacts, RenewError> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| bad(what, e))?;
    let c = p.parse_x509().map_err(|e| bad(what, e))?;
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = c.subject_alternative_name() {
        for g in &ext.value.general_names {
            match g {
                GeneralName::DNSName(d) => sans.push((*d).to_string()),
                GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*b).ok().map(IpAddr::from),
                        _ => None,
                    };
                    sans.extend(ip.map(|i| i.to_string()));
                }
                _ => {}
            }
        }
    }
    let eku = c.extended_key_usage().ok().flatten().map(|e| e.value);
    Ok(CertFacts {
        subject_cn: cn(c.subject()),
        issuer_cn: cn(c.issuer()),
        not_before: c.validity().not_before.to_datetime(),
        not_after: c.validity().not_after.to_datetime(),
        is_ca: c.is_ca(),
        sans,
        orgs: c
            .subject()
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(str::to_string))
            .collect(),
        server_auth: eku.is_some_and(|e| e.server_auth),
        client_auth: eku.is_some_and(|e| e.client_auth),
        serial: c.raw_serial_as_string().replace(':', ""),
    })
}

/// The client certificate (PEM) embedded in a kubeconfig's first user.
pub fn kubeconfig_client_cert(what: &str, kubeconfig: &str) -> Result<String, RenewError> {
    use base64::Engine;
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(kubeconfig).map_err(|e| bad(what, e))?;
    let b64 = v["users"][0]["user"]["client-certificate-data"]
        .as_str()
        .ok_or_else(|| bad(what, "no users[0].user.client-certificate-data"))?;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| bad(what, e))?;
    String::from_utf8(pem).map_err(|e| bad(what, e))
}

/// A new apiserver certificate and key: the old one's SANs plus `extra`
/// (IPs or DNS names; invalid ones refused), signed by the CA.
pub fn reissue_apiserver(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    old_cert_pem: &str,
    extra: &[String],
    now: OffsetDateTime,
) -> Result<(String, String), RenewError> {
    let ca = Ca::from_pem("ca", ca_cert_pem, ca_key_pem)?;
    renew_leaf(&ca, "apiserver.crt", old_cert_pem, extra, now)
}

/// A new certificate and key for `old_pem`, signed by `ca`, as kubeadm's
/// renewal makes it: the same CommonName, organisations, DNS/IP SANs (plus
/// `extra`) and extended key usages, a new key (so a new serial), valid
/// from `now` (backdated) for as long as the old one was, but never past
/// the CA's own expiry.
pub fn renew_leaf(
    ca: &Ca,
    what: &str,
    old_pem: &str,
    extra: &[String],
    now: OffsetDateTime,
) -> Result<(String, String), RenewError> {
    let old = cert_facts(what, old_pem)?;
    let ca_facts = cert_facts(ca.stem, &ca.cert_pem)?;
    let mut sans: Vec<SanType> = Vec::new();
    for s in old.sans.iter().chain(extra) {
        let s = san(s.trim())?;
        if !sans.contains(&s) {
            sans.push(s);
        }
    }
    let orgs: Vec<&str> = old.orgs.iter().map(String::as_str).collect();
    let leaf = Leaf {
        cn: &old.subject_cn,
        orgs: &orgs,
        sans,
        server: old.server_auth,
        client: old.client_auth,
    };
    let lifetime = (old.not_after - old.not_before).max(Duration::hours(1));
    let not_after = (now - BACKDATE + lifetime).min(ca_facts.not_after);
    Ok(ca.issue_until(&leaf, now, not_after)?)
}

#[cfg(test)]
mod tests {
    use super::super::tests::spec;
    use super::super::{PkiFile, generate_all};
    use super::*;

    fn file<'a>(files: &'a [PkiFile], path: &str) -> &'a str {
        &files.iter().find(|f| f.path == path).unwrap().contents
    }

    #[test]
    fn reissued_apiserver_keeps_sans_and_adds_new_ones() {
        let now = OffsetDateTime::now_utc();
        let files = generate_all(&spec(28), now).unwrap();
        let old = cert_facts("old", file(&files, "pki/apiserver.crt")).unwrap();
        assert_eq!(old.subject_cn, "kube-apiserver");
        assert_eq!(old.issuer_cn, "kubernetes");
        assert!(!old.is_ca);
        assert!(
            old.sans.contains(&"10.96.0.1".to_string()),
            "{:?}",
            old.sans
        );
        let extra = vec![
            "k8s.new.example.com".to_string(),
            "192.168.7.7".to_string(),
            "10.96.0.1".to_string(),
        ];
        let (cert, key) = reissue_apiserver(
            file(&files, "pki/ca.crt"),
            file(&files, "pki/ca.key"),
            file(&files, "pki/apiserver.crt"),
            &extra,
            now,
        )
        .unwrap();
        assert!(key.contains("PRIVATE KEY"));
        let new = cert_facts("new", &cert).unwrap();
        assert_eq!(new.subject_cn, "kube-apiserver");
        for s in old.sans.iter().chain(&extra[..2]) {
            assert!(new.sans.contains(s), "{s} in {:?}", new.sans);
        }
        assert_eq!(new.sans.len(), old.sans.len() + 2, "no duplicates");
        assert!(
            new.not_after - now > Duration::days(365 * 99),
            "100-year validity kept"
        );
        let admin = kubeconfig_client_cert("admin.conf", file(&files, "admin.conf")).unwrap();
        assert_eq!(
            cert_facts("admin", &admin).unwrap().subject_cn,
            "kubernetes-admin"
        );
        let ca = cert_facts("ca", file(&files, "pki/ca.crt")).unwrap();
        assert!(ca.is_ca);
        assert!(matches!(
            reissue_apiserver(
                file(&files, "pki/ca.crt"),
                file(&files, "pki/ca.key"),
                file(&files, "pki/apiserver.crt"),
                &["bad name!".into()],
                now
            ),
            Err(RenewError::Pki(KubePkiError::BadSan(_)))
        ));
    }
}

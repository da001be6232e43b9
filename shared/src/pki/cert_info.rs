//! What the agent PKI needs to know of a certificate: its serial (the key of
//! revocation), whether it is the coordinator identity (the coordinator
//! EKU, see [`super::agent_ca`]), its expiry and its issuer's fingerprint.

use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

use super::agent_ca::COORDINATOR_EKU_DER;

/// Longest serial accepted (RFC 5280: 20 octets, plus a DER sign octet).
pub const MAX_SERIAL_HEX: usize = 42;

#[derive(Debug, thiserror::Error)]
pub enum CertInfoError {
    #[error("{what} is not a PEM certificate")]
    NoPem { what: String },
    #[error("{what} is not a valid X.509 certificate: {detail}")]
    Parse { what: String, detail: String },
    #[error("`{0}` is not a certificate serial (lowercase hex, at most 21 octets)")]
    BadSerial(String),
}

/// Facts of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The serial's DER octets, lowercase hex.
    pub serial: String,
    /// Carries the coordinator EKU.
    pub coordinator: bool,
    /// The subject's common name (informational only).
    pub common_name: String,
    /// Seconds since the Unix epoch.
    pub not_after: i64,
    /// The raw issuer and subject names (DER), and the authority and
    /// subject key identifiers, to match a leaf to its CA.
    pub issuer_der: Vec<u8>,
    pub subject_der: Vec<u8>,
    pub authority_key_id: Option<Vec<u8>>,
    pub subject_key_id: Option<Vec<u8>>,
    /// sha256 of the whole certificate (hex).
    pub sha256: String,
}

impl CertInfo {
    /// Parses a DER certificate; `what` names it in errors.
    pub fn from_der(der: &[u8], what: &str) -> Result<Self, CertInfoError> {
        let (_, x) = X509Certificate::from_der(der).map_err(|e| CertInfoError::Parse {
            what: what.to_string(),
            detail: e.to_string(),
        })?;
        let coordinator = match x.extended_key_usage() {
            Ok(Some(eku)) => eku
                .value
                .other
                .iter()
                .any(|o| o.as_bytes() == COORDINATOR_EKU_DER),
            _ => false,
        };
        let common_name = x
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_string();
        let mut authority_key_id = None;
        let mut subject_key_id = None;
        for ext in x.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    authority_key_id = a.key_identifier.as_ref().map(|k| k.0.to_vec());
                }
                ParsedExtension::SubjectKeyIdentifier(k) => subject_key_id = Some(k.0.to_vec()),
                _ => {}
            }
        }
        Ok(Self {
            serial: hex::encode(x.tbs_certificate.raw_serial()),
            coordinator,
            common_name,
            not_after: x.validity().not_after.timestamp(),
            issuer_der: x.issuer().as_raw().to_vec(),
            subject_der: x.subject().as_raw().to_vec(),
            authority_key_id,
            subject_key_id,
            sha256: hex::encode(Sha256::digest(der)),
        })
    }

    /// Parses the first certificate of `pem`.
    pub fn from_pem(pem: &str, what: &str) -> Result<Self, CertInfoError> {
        let mut all = Self::all_from_pem(pem, what)?;
        if all.is_empty() {
            return Err(CertInfoError::NoPem {
                what: what.to_string(),
            });
        }
        Ok(all.swap_remove(0))
    }

    /// Parses every certificate of a PEM bundle, in order.
    pub fn all_from_pem(pem: &str, what: &str) -> Result<Vec<Self>, CertInfoError> {
        let mut out = Vec::new();
        for p in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
            let p = p.map_err(|e| CertInfoError::Parse {
                what: what.to_string(),
                detail: e.to_string(),
            })?;
            if p.label == "CERTIFICATE" {
                out.push(Self::from_der(&p.contents, what)?);
            }
        }
        Ok(out)
    }

    /// Whether `ca` issued this certificate: by key identifier where both
    /// carry one (two CAs of a cluster share a name), else by name.
    /// Signatures are checked by TLS; this is bookkeeping.
    pub fn issued_by(&self, ca: &CertInfo) -> bool {
        match (&self.authority_key_id, &ca.subject_key_id) {
            (Some(a), Some(s)) => a == s,
            _ => self.issuer_der == ca.subject_der,
        }
    }
}

/// Checks (and lowercases) a hex serial.
pub fn normalize_serial(s: &str) -> Result<String, CertInfoError> {
    let ok = !s.is_empty()
        && s.len() <= MAX_SERIAL_HEX
        && s.len().is_multiple_of(2)
        && s.bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(CertInfoError::BadSerial(s.chars().take(80).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::AgentCa;
    use crate::pki::agent_ca::{CA_VALIDITY, LEAF_VALIDITY};
    use time::OffsetDateTime;

    #[test]
    fn coordinator_and_agent_certificates_are_told_apart() {
        let now = OffsetDateTime::now_utc();
        let ca = AgentCa::generate("t", now, CA_VALIDITY).unwrap();
        let c = ca.issue_coordinator(now, LEAF_VALIDITY).unwrap();
        let a = ca
            .issue_agent("n", &["10.0.0.2".parse().unwrap()], &[], now, LEAF_VALIDITY)
            .unwrap();
        let ci = CertInfo::from_pem(&c.cert_pem, "coordinator").unwrap();
        let ai = CertInfo::from_pem(&a.cert_pem, "agent").unwrap();
        let cai = CertInfo::from_pem(ca.cert_pem(), "ca").unwrap();
        assert!(ci.coordinator && !ai.coordinator && !cai.coordinator);
        let other = AgentCa::generate("t", now, CA_VALIDITY).unwrap();
        let oi = CertInfo::from_pem(other.cert_pem(), "other").unwrap();
        assert_eq!(oi.subject_der, cai.subject_der, "same cluster, same name");
        assert!(!ai.issued_by(&oi), "told apart by key identifier");
        assert_ne!(ci.serial, ai.serial);
        assert_eq!(normalize_serial(&ci.serial).unwrap(), ci.serial);
        assert!(ci.issued_by(&cai) && ai.issued_by(&cai));
        let lifetime = ai.not_after - now.unix_timestamp();
        assert!((lifetime - LEAF_VALIDITY.whole_seconds()).abs() < 60);
        assert_eq!(ai.common_name, "ferry-agent n");
    }

    #[test]
    fn bundles_parse_in_order_and_garbage_is_named() {
        let now = OffsetDateTime::now_utc();
        let a = AgentCa::generate("a", now, CA_VALIDITY).unwrap();
        let b = AgentCa::generate("b", now, CA_VALIDITY).unwrap();
        let both = format!("{}{}", a.cert_pem(), b.cert_pem());
        let all = CertInfo::all_from_pem(&both, "bundle").unwrap();
        assert_eq!(all.len(), 2);
        assert_ne!(all[0].sha256, all[1].sha256);
        let e = CertInfo::from_pem("nothing", "ca.crt").unwrap_err();
        assert!(e.to_string().contains("ca.crt"), "{e}");
        for bad in ["", "0", "zz", &"a".repeat(44)] {
            assert!(normalize_serial(bad).is_err(), "{bad}");
        }
    }
}

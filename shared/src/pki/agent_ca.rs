//! The per-cluster agent CA: it signs every agent's server certificate and
//! the coordinator's client certificate. Agents accept only clients signed by
//! it and the coordinator trusts agents only through it. ECDSA P-256.
//!
//! Identities: the coordinator's certificate carries the extended key usage
//! [`COORDINATOR_EKU_OID`] (besides clientAuth); agents' certificates never
//! do. An agent grants coordinator-only RPCs to that EKU alone, never to a
//! common name (see `agent/src/authz.rs`).

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::secret::Secret;

/// Lifetime of a new agent CA (`ferry agent rotate-certs --ca` replaces it).
pub const CA_VALIDITY: Duration = Duration::days(5 * 365);
/// Lifetime of agent and coordinator certificates: renewed by `ferry agent
/// upgrade`, `install` (when it uploads) and `rotate-certs`.
pub const LEAF_VALIDITY: Duration = Duration::days(365);

/// Common name of the coordinator's client certificate (informational: the
/// identity is the EKU below).
pub const COORDINATOR_CN: &str = "ferry-coordinator";

/// The coordinator identity, an extended key usage only the coordinator's
/// certificate carries: `2.25.205683261087742610731472407959386207447`, the
/// UUID-derived OID (ITU-T X.667, no registration needed) of UUID
/// 9abd27b8-7cdf-410b-8fac-79c9721434d7.
pub const COORDINATOR_EKU_OID: &str = "2.25.205683261087742610731472407959386207447";
/// [`COORDINATOR_EKU_OID`] as DER content octets (without tag and length).
pub const COORDINATOR_EKU_DER: [u8; 20] = [
    0x69, 0x82, 0xb5, 0xbd, 0x93, 0xee, 0x8f, 0xcd, 0xfa, 0x84, 0x97, 0x8f, 0xd6, 0x9e, 0xb9, 0x97,
    0x90, 0xd0, 0xe9, 0x57,
];
/// id-kp-clientAuth (1.3.6.1.5.5.7.3.2), DER content octets.
const CLIENT_AUTH_DER: [u8; 8] = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
/// id-ce-extKeyUsage.
const EKU_EXTENSION: [u64; 4] = [2, 5, 29, 37];

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("generating a key pair failed: {0}")]
    KeyGen(rcgen::Error),
    #[error("building the certificate for `{subject}` failed: {source}")]
    Build {
        subject: String,
        source: rcgen::Error,
    },
    #[error(
        "the agent CA certificate or key is not valid PEM ({0}); remove the cluster's pki directory to start over"
    )]
    BadCaPem(rcgen::Error),
    #[error("`{0}` is not a valid DNS name for a certificate")]
    BadDnsName(String),
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: Secret,
}

#[derive(Debug)]
pub struct AgentCa {
    cert_pem: String,
    key: KeyPair,
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "ferry");
    dn.push(DnType::CommonName, cn);
    dn
}

fn window(params: &mut CertificateParams, now: OffsetDateTime, validity: Duration) {
    // Backdate a little so a node whose clock lags slightly still accepts it.
    params.not_before = now - Duration::hours(1);
    params.not_after = now + validity;
}

impl AgentCa {
    /// Creates a new CA for `cluster`.
    pub fn generate(
        cluster: &str,
        now: OffsetDateTime,
        validity: Duration,
    ) -> Result<Self, PkiError> {
        let key = KeyPair::generate().map_err(PkiError::KeyGen)?;
        let subject = format!("ferry agent CA ({cluster})");
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(&subject);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        window(&mut params, now, validity);
        let cert = params
            .self_signed(&key)
            .map_err(|source| PkiError::Build { subject, source })?;
        Ok(Self {
            cert_pem: cert.pem(),
            key,
        })
    }

    /// Loads a CA previously written by [`AgentCa::generate`].
    pub fn from_pem(cert_pem: &str, key_pem: &Secret) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem.expose()).map_err(PkiError::BadCaPem)?;
        // Parse once now so a corrupt file fails here, not at first issue.
        Issuer::from_ca_cert_pem(cert_pem, &key).map_err(PkiError::BadCaPem)?;
        Ok(Self {
            cert_pem: cert_pem.to_string(),
            key,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> Secret {
        Secret::new(self.key.serialize_pem())
    }

    fn issue(&self, mut params: CertificateParams, subject: String) -> Result<Issued, PkiError> {
        let issuer =
            Issuer::from_ca_cert_pem(&self.cert_pem, &self.key).map_err(PkiError::BadCaPem)?;
        let key = KeyPair::generate().map_err(PkiError::KeyGen)?;
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|source| PkiError::Build { subject, source })?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: Secret::new(key.serialize_pem()),
        })
    }

    /// An agent's certificate: server auth for the coordinator, client auth
    /// for agent-to-agent relays. SANs are the node's IPs and host names.
    pub fn issue_agent(
        &self,
        node_name: &str,
        ips: &[IpAddr],
        dns_names: &[String],
        now: OffsetDateTime,
        validity: Duration,
    ) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(&format!("ferry-agent {node_name}"));
        for ip in ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        for name in dns_names {
            let n = name
                .clone()
                .try_into()
                .map_err(|_| PkiError::BadDnsName(name.clone()))?;
            params.subject_alt_names.push(SanType::DnsName(n));
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        window(&mut params, now, validity);
        self.issue(params, format!("agent {node_name}"))
    }

    /// The coordinator's client certificate: clientAuth plus the
    /// coordinator EKU. rcgen's EKU list takes only 64-bit arcs, so the
    /// extension is written here (SEQUENCE OF OBJECT IDENTIFIER).
    pub fn issue_coordinator(
        &self,
        now: OffsetDateTime,
        validity: Duration,
    ) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(COORDINATOR_CN);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let mut ekus = Vec::new();
        for oid in [&CLIENT_AUTH_DER[..], &COORDINATOR_EKU_DER[..]] {
            ekus.push(0x06);
            ekus.push(oid.len() as u8);
            ekus.extend_from_slice(oid);
        }
        let mut content = vec![0x30, ekus.len() as u8];
        content.extend(ekus);
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(&EKU_EXTENSION, content));
        window(&mut params, now, validity);
        self.issue(params, COORDINATOR_CN.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    fn parse(pem: &str) -> Vec<u8> {
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        p.contents
    }

    #[test]
    fn agent_cert_has_sans_and_chains_to_ca() {
        let now = OffsetDateTime::now_utc();
        let ca = AgentCa::generate("default", now, LEAF_VALIDITY).unwrap();
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        let leaf = ca
            .issue_agent(
                "10.0.0.2",
                &[ip],
                &["node1".to_string()],
                now,
                LEAF_VALIDITY,
            )
            .unwrap();
        let ca_der = parse(ca.cert_pem());
        let leaf_der = parse(&leaf.cert_pem);
        let (_, ca_x) = X509Certificate::from_der(&ca_der).unwrap();
        let (_, leaf_x) = X509Certificate::from_der(&leaf_der).unwrap();
        assert!(ca_x.is_ca());
        assert_eq!(leaf_x.issuer(), ca_x.subject());
        leaf_x.verify_signature(Some(ca_x.public_key())).unwrap();
        let san = leaf_x.subject_alternative_name().unwrap().unwrap();
        let names: Vec<String> = san
            .value
            .general_names
            .iter()
            .map(|g| format!("{g}"))
            .collect();
        assert!(names.iter().any(|n| n.contains("0a:00:00:02")), "{names:?}");
        assert!(names.iter().any(|n| n.contains("node1")), "{names:?}");
        let eku = leaf_x.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
    }

    #[test]
    fn ca_reloads_from_pem_and_keeps_issuing() {
        let now = OffsetDateTime::now_utc();
        let ca = AgentCa::generate("c1", now, CA_VALIDITY).unwrap();
        let again = AgentCa::from_pem(ca.cert_pem(), &ca.key_pem()).unwrap();
        let c = again.issue_coordinator(now, LEAF_VALIDITY).unwrap();
        let der = parse(&c.cert_pem);
        let (_, x) = X509Certificate::from_der(&der).unwrap();
        let ca_der = parse(ca.cert_pem());
        let (_, ca_x) = X509Certificate::from_der(&ca_der).unwrap();
        x.verify_signature(Some(ca_x.public_key())).unwrap();
        let eku = x.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        let others: Vec<&[u8]> = eku.other.iter().map(|o| o.as_bytes()).collect();
        assert_eq!(others, [&COORDINATOR_EKU_DER[..]]);
    }

    #[test]
    fn the_coordinator_eku_der_spells_its_dotted_oid() {
        // Base-128 decoding of the content octets, arcs as decimal strings.
        let mut arcs: Vec<u128> = Vec::new();
        let mut cur: u128 = 0;
        for b in COORDINATOR_EKU_DER {
            cur = (cur << 7) | u128::from(b & 0x7f);
            if b & 0x80 == 0 {
                arcs.push(cur);
                cur = 0;
            }
        }
        let first = arcs.remove(0);
        let mut dotted = format!("2.{}", first - 80);
        for a in arcs {
            dotted.push_str(&format!(".{a}"));
        }
        assert_eq!(dotted, COORDINATOR_EKU_OID);
    }

    #[test]
    fn only_the_coordinator_certificate_carries_the_coordinator_eku() {
        let now = OffsetDateTime::now_utc();
        let ca = AgentCa::generate("c1", now, CA_VALIDITY).unwrap();
        let agent = ca
            .issue_agent("n", &["10.0.0.2".parse().unwrap()], &[], now, LEAF_VALIDITY)
            .unwrap();
        let der = parse(&agent.cert_pem);
        let (_, x) = X509Certificate::from_der(&der).unwrap();
        let eku = x.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.other.is_empty());
    }

    #[test]
    fn corrupt_pem_is_a_named_error() {
        let e = AgentCa::from_pem("nope", &Secret::new("nope")).unwrap_err();
        assert!(e.to_string().contains("pki directory"), "{e}");
    }
}

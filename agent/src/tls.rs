//! The agent's TLS material: the cluster CA bundle (to verify clients; two
//! CAs during a CA rotation), and the agent's own certificate and key.
//! Turned into a rustls server config that *requires* a client certificate
//! chaining to the bundle (served by `accept.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferry_shared::Secret;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

pub const CA_FILE: &str = "ca.crt";
pub const CERT_FILE: &str = "agent.crt";
pub const KEY_FILE: &str = "agent.key";

/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} ({origin}) holds no PEM certificate: {detail}")]
    NoCertificate {
        what: &'static str,
        origin: String,
        detail: String,
    },
    #[error("agent key ({origin}) holds no PEM private key: {detail}")]
    NoKey { origin: String, detail: String },
    #[error("the TLS material ({origin}) cannot serve: {detail}")]
    Config { origin: String, detail: String },
}

/// PEM text of the CA certificate, the agent certificate and its key.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    ca_pem: String,
    cert_pem: String,
    key_pem: Secret,
    origin: String,
}

fn check_certs(what: &'static str, origin: &str, pem: &str) -> Result<(), TlsError> {
    let mut n = 0;
    for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        c.map_err(|e| TlsError::NoCertificate {
            what,
            origin: origin.to_string(),
            detail: e.to_string(),
        })?;
        n += 1;
    }
    if n == 0 {
        return Err(TlsError::NoCertificate {
            what,
            origin: origin.to_string(),
            detail: "no CERTIFICATE section found".to_string(),
        });
    }
    Ok(())
}

impl TlsMaterial {
    /// Checks that each PEM holds what it should. `origin` names where the
    /// material came from, for error messages.
    pub fn from_pem(
        ca_pem: impl Into<String>,
        cert_pem: impl Into<String>,
        key_pem: Secret,
        origin: &str,
    ) -> Result<Self, TlsError> {
        let (ca_pem, cert_pem) = (ca_pem.into(), cert_pem.into());
        check_certs("CA certificate", &format!("{origin}/{CA_FILE}"), &ca_pem)?;
        check_certs(
            "agent certificate",
            &format!("{origin}/{CERT_FILE}"),
            &cert_pem,
        )?;
        PrivateKeyDer::from_pem_slice(key_pem.expose().as_bytes()).map_err(|e| {
            TlsError::NoKey {
                origin: format!("{origin}/{KEY_FILE}"),
                detail: e.to_string(),
            }
        })?;
        let m = Self {
            ca_pem,
            cert_pem,
            key_pem,
            origin: origin.to_string(),
        };
        // Fails now on a key that is not the certificate's, not at first use.
        m.server_config()?;
        Ok(m)
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &Secret {
        &self.key_pem
    }

    fn config_err(&self, detail: impl std::fmt::Display) -> TlsError {
        TlsError::Config {
            origin: self.origin.clone(),
            detail: detail.to_string(),
        }
    }

    fn client_verifier(
        &self,
    ) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            let c = c.map_err(|e| self.config_err(format!("CA bundle: {e}")))?;
            roots
                .add(c)
                .map_err(|e| self.config_err(format!("CA bundle: {e}")))?;
        }
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| self.config_err(format!("client verifier: {e}")))
    }

    /// Whether a client presenting `chain` (leaf first) would be accepted
    /// by this material's CA bundle now.
    pub fn accepts_client(&self, chain: &[CertificateDer<'static>]) -> Result<(), TlsError> {
        let (leaf, rest) = chain
            .split_first()
            .ok_or_else(|| self.config_err("no client certificate"))?;
        self.client_verifier()?
            .verify_client_cert(leaf, rest, UnixTime::now())
            .map(|_| ())
            .map_err(|e| self.config_err(e))
    }

    /// A server config that demands a client certificate signed by one of
    /// the CAs of the bundle, speaking HTTP/2 (ALPN h2) as tonic does.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| self.config_err(format!("agent certificate: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.expose().as_bytes())
            .map_err(|e| self.config_err(format!("agent key: {e}")))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| self.config_err(e))?
            .with_client_cert_verifier(self.client_verifier()?)
            .with_single_cert(chain, key)
            .map_err(|e| self.config_err(e))?;
        config.alpn_protocols.push(b"h2".to_vec());
        Ok(Arc::new(config))
    }

    /// Reads `ca.crt`, `agent.crt` and `agent.key` from `dir`.
    pub fn from_dir(dir: &Path) -> Result<Self, TlsError> {
        let read = |what: &'static str, name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| TlsError::Read { what, path, source })
        };
        let ca = read("CA certificate", CA_FILE)?;
        let cert = read("agent certificate", CERT_FILE)?;
        let key = Secret::new(read("agent key", KEY_FILE)?);
        Self::from_pem(ca, cert, key, &dir.display().to_string())
    }

    /// A client config for agent-to-agent traffic (transfer relays): this
    /// agent's certificate as client identity, peers verified against the
    /// cluster CA under `domain` (their IP, a SAN of every agent cert).
    pub fn client_config(&self, domain: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, self.key_pem.expose()))
            .domain_name(domain)
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_shared::pki::AgentCa;
    use time::OffsetDateTime;

    fn material() -> (String, String, Secret) {
        let now = OffsetDateTime::now_utc();
        let ca = AgentCa::generate("t", now, time::Duration::days(1)).unwrap();
        let leaf = ca
            .issue_agent(
                "n",
                &["127.0.0.1".parse().unwrap()],
                &[],
                now,
                time::Duration::days(1),
            )
            .unwrap();
        (ca.cert_pem().to_string(), leaf.cert_pem, leaf.key_pem)
    }

    #[test]
    fn reads_a_tls_dir() {
        let (ca, cert, key) = material();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CA_FILE), &ca).unwrap();
        std::fs::write(dir.path().join(CERT_FILE), &cert).unwrap();
        std::fs::write(dir.path().join(KEY_FILE), key.expose()).unwrap();
        assert!(TlsMaterial::from_dir(dir.path()).is_ok());
    }

    #[test]
    fn missing_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let e = TlsMaterial::from_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("ca.crt") && e.contains("CA certificate"), "{e}");
    }

    #[test]
    fn swapped_files_are_named() {
        let (ca, cert, key) = material();
        let e = TlsMaterial::from_pem(ca.clone(), key.expose(), key.clone(), "/x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/x/agent.crt"), "{e}");
        let e = TlsMaterial::from_pem(ca, cert.clone(), Secret::new(cert), "/x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/x/agent.key") && !e.contains("BEGIN"), "{e}");
    }
}

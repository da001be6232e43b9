//! The agent's TLS material: the cluster CA (to verify clients), and the
//! agent's own certificate and key. Turned into a tonic server config that
//! *requires* a client certificate chaining to the CA.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_shared::Secret;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

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
}

/// PEM text of the CA certificate, the agent certificate and its key.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    ca_pem: String,
    cert_pem: String,
    key_pem: Secret,
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
        Ok(Self {
            ca_pem,
            cert_pem,
            key_pem,
        })
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

    /// A server config that demands a client certificate signed by the CA.
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, self.key_pem.expose()))
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
            .client_auth_optional(false)
            .timeout(HANDSHAKE_TIMEOUT)
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

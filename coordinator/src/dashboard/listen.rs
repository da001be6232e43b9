//! Who may reach the dashboard: on a loopback address it answers without
//! a token unless one is given; on any other address it requires a bearer
//! token (from `--token-file`, or generated and printed once on stderr)
//! AND TLS (`--tls-cert/--tls-key`, or with `--self-signed-tls` a
//! generated certificate whose SHA-256 fingerprint is printed on stderr);
//! without TLS it refuses to start.
//!
//! Invariant: the token is never logged and never part of an event.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_shared::Secret;
use sha2::{Digest, Sha256};

use super::error::DashboardError;

/// The default address: loopback only, no token needed.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7480";

/// What the command line asked for.
#[derive(Debug, Clone, Default)]
pub struct ListenArgs {
    pub listen: Option<SocketAddr>,
    pub token_file: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Serve a generated self-signed certificate when no --tls-cert is given.
    pub self_signed: bool,
}

/// TLS for the listener, with what to tell the user about it.
pub struct Tls {
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate (DER), `AA:BB:...`.
    pub fingerprint: String,
    pub self_signed: bool,
}

pub struct Listen {
    pub addr: SocketAddr,
    pub token: Option<Secret>,
    /// The token was generated here (print it once).
    pub token_generated: bool,
    pub tls: Option<Tls>,
}

fn read(what: &'static str, path: &Path) -> Result<String, DashboardError> {
    std::fs::read_to_string(path).map_err(|source| DashboardError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn server_config(
    certs: Vec<rustls_pki_types::CertificateDer<'static>>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
    self_signed: bool,
) -> Result<Tls, DashboardError> {
    let fingerprint = certs.first().map(|c| fingerprint(c)).unwrap_or_default();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| DashboardError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        config: Arc::new(config),
        fingerprint,
        self_signed,
    })
}

fn load_tls(cert: &Path, key: &Path) -> Result<Tls, DashboardError> {
    use rustls_pki_types::pem::PemObject;
    let invalid = |what, path: &Path, reason: String| DashboardError::Invalid {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let cert_pem = read("TLS certificate", cert)?;
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("TLS certificate", cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(invalid(
            "TLS certificate",
            cert,
            "no CERTIFICATE block".into(),
        ));
    }
    let key_pem = Secret::new(read("TLS key", key)?);
    let key_der = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.expose().as_bytes())
        .map_err(|e| invalid("TLS key", key, format!("no usable private key ({e})")))?;
    server_config(certs, key_der, false)
}

/// A self-signed certificate for `addr` (its IP and `localhost` as SANs).
pub fn self_signed(addr: &SocketAddr) -> Result<Tls, DashboardError> {
    let sans = vec![addr.ip().to_string(), "localhost".to_string()];
    let ck = rcgen::generate_simple_self_signed(sans)
        .map_err(|e| DashboardError::SelfSigned(e.to_string()))?;
    let der = ck.cert.der().clone();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    server_config(vec![der], key, true)
}

fn new_token() -> Secret {
    let bytes: [u8; 32] = rand::random();
    Secret::new(hex::encode(bytes))
}

impl Listen {
    pub fn resolve(a: &ListenArgs) -> Result<Self, DashboardError> {
        let addr = match a.listen {
            Some(x) => x,
            None => DEFAULT_LISTEN.parse().map_err(|e| DashboardError::Usage {
                flag: "--listen",
                reason: format!("{e}"),
            })?,
        };
        let loopback = addr.ip().is_loopback();
        if a.tls_cert.is_some() != a.tls_key.is_some() {
            return Err(DashboardError::Usage {
                flag: "--tls-cert/--tls-key",
                reason: "give both or neither".into(),
            });
        }
        let mut token = match &a.token_file {
            Some(p) => {
                let t = read("token file", p)?.trim().to_string();
                if t.len() < 16 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(DashboardError::Invalid {
                        what: "token file",
                        path: p.clone(),
                        reason: "the token must be one word of at least 16 characters".into(),
                    });
                }
                Some(Secret::new(t))
            }
            None => None,
        };
        let mut tls = match (&a.tls_cert, &a.tls_key) {
            (Some(c), Some(k)) => Some(load_tls(c, k)?),
            _ => None,
        };
        let mut token_generated = false;
        if !loopback {
            if tls.is_none() && !a.self_signed {
                return Err(DashboardError::Insecure {
                    addr,
                    missing: if token.is_some() {
                        "TLS"
                    } else {
                        "TLS (and a token)"
                    },
                    next: "--tls-cert F --tls-key F, or --self-signed-tls for a generated certificate (a token is generated when --token-file is not given)",
                });
            }
            if tls.is_none() {
                tls = Some(self_signed(&addr)?);
            }
            if token.is_none() {
                token = Some(new_token());
                token_generated = true;
            }
        }
        Ok(Self {
            addr,
            token,
            token_generated,
            tls,
        })
    }
}

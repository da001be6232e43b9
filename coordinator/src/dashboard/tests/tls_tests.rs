//! HTTPS with a generated self-signed certificate: a client pinning its
//! printed fingerprint gets the API with the token, 401 without it.

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::super::listen::{fingerprint, self_signed};
use super::request_on;

/// Trusts exactly the certificate with this SHA-256 fingerprint.
#[derive(Debug)]
struct Pinned {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

type Cert<'a> = CertificateDer<'a>;
type Dss = DigitallySignedStruct;
type Sig = Result<HandshakeSignatureValid, rustls::Error>;

impl Pinned {
    fn algs(&self) -> &rustls::crypto::WebPkiSupportedAlgorithms {
        &self.provider.signature_verification_algorithms
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if fingerprint(end_entity) == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("fingerprint mismatch".into()))
        }
    }

    fn verify_tls12_signature(&self, m: &[u8], c: &Cert<'_>, d: &Dss) -> Sig {
        rustls::crypto::verify_tls12_signature(m, c, d, self.algs())
    }

    fn verify_tls13_signature(&self, m: &[u8], c: &Cert<'_>, d: &Dss) -> Sig {
        rustls::crypto::verify_tls13_signature(m, c, d, self.algs())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algs().supported_schemes()
    }
}

#[tokio::test]
async fn https_with_a_generated_certificate_and_the_token() {
    let home = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = self_signed(&addr).unwrap();
    let token = "fedcba9876543210fedcba";
    let reg = Arc::new(super::super::clusters::Registry::new(
        home.path(),
        false,
        std::time::Duration::from_millis(20),
    ));
    let app = super::super::api::router(
        reg,
        Some(Arc::new(ferry_shared::Secret::new(token.to_string()))),
    );
    tokio::spawn(super::super::server::serve(
        listener,
        app,
        Some(tls.config.clone()),
        std::future::pending(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            fingerprint: tls.fingerprint.clone(),
            provider,
        }))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let get = |headers: Vec<(&'static str, String)>| {
        let connector = connector.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = ServerName::IpAddress(addr.ip().into());
            let io = connector.connect(name, tcp).await.unwrap();
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            request_on(io, "127.0.0.1", "/api/clusters", &h)
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(get(vec![]).await, 401);
    assert_eq!(
        get(vec![("authorization", format!("Bearer {token}"))]).await,
        200
    );
    // Plain HTTP to the TLS port gets no answer.
    let (status, _) = tokio::time::timeout(std::time::Duration::from_secs(5), plain_get(addr))
        .await
        .unwrap_or((0, String::new()));
    assert_ne!(status, 200);
}

async fn plain_get(addr: std::net::SocketAddr) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s
        .write_all(b"GET /api/clusters HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

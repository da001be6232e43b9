//! lvscare's health check: HTTPS GET `path` on the member, certificate not
//! verified (InsecureSkipVerify), bounded by the check's timeout. Only the
//! status line is read.

use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::Duration;

use ferry_shared::lb::{HealthCheck, ProbeResult};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::LbError;

/// Accepts any server certificate, like lvscare's InsecureSkipVerify: the
/// check is about liveness, not identity.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A reusable prober (one TLS config for every check).
#[derive(Clone)]
pub struct Prober {
    tls: TlsConnector,
}

const MAX_STATUS_LINE: usize = 512;

impl Prober {
    pub fn new() -> Result<Self, LbError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| LbError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth();
        Ok(Self {
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    /// One check of `addr`; never fails, every problem is an unhealthy result.
    pub async fn probe(&self, addr: SocketAddrV4, check: &HealthCheck) -> ProbeResult {
        let timeout = Duration::from_millis(check.timeout_ms);
        match tokio::time::timeout(timeout, self.get_status(addr, &check.path)).await {
            Err(_) => ProbeResult::Unhealthy {
                reason: format!("no answer within {timeout:?}"),
            },
            Ok(Err(reason)) => ProbeResult::Unhealthy { reason },
            Ok(Ok(status)) => ProbeResult::from_status(status, check),
        }
    }

    async fn get_status(&self, addr: SocketAddrV4, path: &str) -> Result<u16, String> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::IpAddress((*addr.ip()).into());
        let mut tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: ferry-agent-lb\r\nConnection: close\r\n\r\n"
        );
        tls.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("sending the request: {e}"))?;
        let mut buf = Vec::with_capacity(128);
        let mut chunk = [0u8; 256];
        while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < MAX_STATUS_LINE {
            let n = tls
                .read(&mut chunk)
                .await
                .map_err(|e| format!("reading the response: {e}"))?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        parse_status_line(&buf)
    }
}

/// `HTTP/1.x NNN ...` → NNN.
fn parse_status_line(buf: &[u8]) -> Result<u16, String> {
    let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next().map(str::parse::<u16>)) {
        (Some(v), Some(Ok(code))) if v.starts_with("HTTP/") => Ok(code),
        _ => Err(format!(
            "not an HTTP response: `{}`",
            line.trim_end().chars().take(80).collect::<String>()
        )),
    }
}

#[cfg(test)]
#[path = "health_tests.rs"]
pub(crate) mod tests;

use super::*;
use std::sync::atomic::{AtomicU16, Ordering};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A TLS HTTP server on 127.0.0.1 answering every request with `status`.
pub(crate) async fn tls_server(status: Arc<AtomicU16>) -> SocketAddrV4 {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    )
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let std::net::SocketAddr::V4(addr) = l.local_addr().unwrap() else {
        panic!()
    };
    tokio::spawn(async move {
        loop {
            let (tcp, _) = l.accept().await.unwrap();
            let (acceptor, status) = (acceptor.clone(), status.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                let _ = tls.read(&mut buf).await;
                let code = status.load(Ordering::SeqCst);
                let _ = tls
                    .write_all(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

fn check() -> HealthCheck {
    HealthCheck {
        timeout_ms: 500,
        ..HealthCheck::default()
    }
}

#[tokio::test]
async fn statuses_refusals_and_silence_are_classified() {
    let status = Arc::new(AtomicU16::new(200));
    let addr = tls_server(status.clone()).await;
    let p = Prober::new().unwrap();
    assert_eq!(
        p.probe(addr, &check()).await,
        ProbeResult::Healthy { status: 200 }
    );
    status.store(500, Ordering::SeqCst);
    assert_eq!(
        p.probe(addr, &check()).await,
        ProbeResult::Unhealthy {
            reason: "HTTP status 500".into()
        }
    );
    // A closed port: refused.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let std::net::SocketAddr::V4(a) = l.local_addr().unwrap() else {
            panic!()
        };
        a
    };
    let r = p.probe(closed, &check()).await;
    assert!(
        matches!(&r, ProbeResult::Unhealthy { reason } if reason.starts_with("connect")),
        "{r:?}"
    );
    // Accepts TCP but never speaks TLS: the timeout.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let std::net::SocketAddr::V4(sa) = silent.local_addr().unwrap() else {
        panic!()
    };
    let r = p.probe(sa, &check()).await;
    assert!(
        matches!(&r, ProbeResult::Unhealthy { reason } if reason.contains("no answer")),
        "{r:?}"
    );
    drop(silent);
}

#[test]
fn status_lines() {
    assert_eq!(parse_status_line(b"HTTP/1.0 200 ok\r\n"), Ok(200));
    assert_eq!(
        parse_status_line(b"HTTP/1.1 503 Service Unavailable\r\nX: y"),
        Ok(503)
    );
    assert!(parse_status_line(b"SSH-2.0-OpenSSH\r\n").is_err());
}

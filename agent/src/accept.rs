//! The agent's TLS front. Accepts TCP, runs each handshake on its own task
//! (at most [`MAX_HANDSHAKES`] at once, each bounded by
//! [`HANDSHAKE_TIMEOUT`]) and hands tonic finished TLS streams that carry
//! the verified client's identity ([`PeerInfo`], read by `authz.rs`). The
//! server configuration can be replaced while serving ([`TlsState::install`],
//! the Trust service's InstallTls): the next handshake uses the new one,
//! established connections keep theirs.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use ferry_shared::pki::CertInfo;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use crate::tls::{HANDSHAKE_TIMEOUT, TlsError, TlsMaterial};

/// Unauthenticated connections at once (handshakes in progress, or done
/// and not yet taken by tonic); further ones wait in the kernel's accept
/// queue.
pub const MAX_HANDSHAKES: usize = 128;
/// Finished connections waiting for tonic to take them.
const READY_QUEUE: usize = 16;
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const TCP_KEEPALIVE_RETRIES: u32 = 4;

struct Current {
    material: TlsMaterial,
    server: Arc<rustls::ServerConfig>,
}

/// The agent's TLS identity and CA bundle, replaceable while serving.
#[derive(Clone)]
pub struct TlsState {
    inner: Arc<RwLock<Arc<Current>>>,
}

impl TlsState {
    pub fn new(material: TlsMaterial) -> Result<Self, TlsError> {
        let server = material.server_config()?;
        Ok(Self {
            inner: Arc::new(RwLock::new(Arc::new(Current { material, server }))),
        })
    }

    fn current(&self) -> Arc<Current> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn material(&self) -> TlsMaterial {
        self.current().material.clone()
    }

    /// Serves `material` from the next handshake on.
    pub fn install(&self, material: TlsMaterial) -> Result<(), TlsError> {
        let server = material.server_config()?;
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(Current { material, server });
        Ok(())
    }
}

/// The verified client certificate of a connection.
#[derive(Debug)]
pub struct PeerCert {
    pub info: CertInfo,
    /// As presented, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
}

/// What tonic puts into every request's extensions for this connection.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub remote: Option<SocketAddr>,
    /// None only if the verified leaf could not be parsed (then every RPC
    /// is refused).
    pub cert: Option<Arc<PeerCert>>,
}

/// A TLS connection and its verified peer.
pub struct PeerStream {
    io: TlsStream<TcpStream>,
    info: PeerInfo,
}

impl Connected for PeerStream {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

fn tune(tcp: &TcpStream) {
    use rustix::net::sockopt;
    let res = sockopt::set_tcp_nodelay(tcp, true)
        .and_then(|()| sockopt::set_socket_keepalive(tcp, true))
        .and_then(|()| sockopt::set_tcp_keepidle(tcp, TCP_KEEPALIVE))
        .and_then(|()| sockopt::set_tcp_keepintvl(tcp, TCP_KEEPALIVE_INTERVAL))
        .and_then(|()| sockopt::set_tcp_keepcnt(tcp, TCP_KEEPALIVE_RETRIES));
    if let Err(e) = res {
        tracing::debug!(error = %e, "setting TCP options failed");
    }
}

async fn handshake(tcp: TcpStream, tls: &TlsState) -> Option<PeerStream> {
    let remote = tcp.peer_addr().ok();
    let acceptor = TlsAcceptor::from(tls.current().server.clone());
    let io = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(io)) => io,
        Ok(Err(e)) => {
            tracing::debug!(?remote, error = %e, "TLS handshake failed");
            return None;
        }
        Err(_) => {
            tracing::debug!(?remote, "TLS handshake timed out");
            return None;
        }
    };
    let chain: Vec<CertificateDer<'static>> = io
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
        .unwrap_or_default();
    let cert = chain.first().and_then(|leaf| {
        CertInfo::from_der(leaf, "client certificate")
            .map_err(|e| tracing::warn!(?remote, error = %e, "unreadable client certificate"))
            .ok()
    });
    let cert = cert.map(|info| Arc::new(PeerCert { info, chain }));
    Some(PeerStream {
        io,
        info: PeerInfo { remote, cert },
    })
}

/// Accepts on `listener` until the returned stream is dropped.
pub fn incoming(listener: TcpListener, tls: TlsState) -> ReceiverStream<io::Result<PeerStream>> {
    let (tx, rx) = mpsc::channel(READY_QUEUE);
    tokio::spawn(async move {
        let limit = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        loop {
            let Ok(permit) = limit.clone().acquire_owned().await else {
                return;
            };
            let accepted = tokio::select! {
                () = tx.closed() => return,
                a = listener.accept() => a,
            };
            let tcp = match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            tune(&tcp);
            let (tx, tls) = (tx.clone(), tls.clone());
            tokio::spawn(async move {
                // The permit is held until tonic takes the connection, so
                // finished handshakes waiting for it count as well.
                if let Some(s) = handshake(tcp, &tls).await {
                    let _ = tx.send(Ok(s)).await;
                }
                drop(permit);
            });
        }
    });
    ReceiverStream::new(rx)
}

//! In-process tests of the dashboard: a real listener on 127.0.0.1:0, a
//! hyper client, events written to a temporary state directory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod auth_tests;
mod metrics_tests;
mod sse_tests;
mod tls_tests;
mod view_tests;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry_shared::{Event, EventKind, Phase, Secret, Source};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use super::clusters::Registry;

/// Event `i` of a test run: a `run` progress line with `ts_ms` = base + i.
pub fn ev(i: u64) -> Event {
    let mut e = Event::new(
        Source::Coordinator,
        1_700_000_000_000 + i as i64,
        "10.77.0.11",
        "op-test",
        Phase::Run,
        EventKind::Progress,
    )
    .message(format!("bootstrap: step {i}"));
    e.counters.insert("i".into(), i);
    e
}

pub fn append(path: &Path, range: std::ops::RangeInclusive<u64>) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in range {
        writeln!(f, "{}", ev(i).to_json_line()).unwrap();
    }
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
pub async fn until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A registry of `home` (no agent watchers) served on 127.0.0.1:0.
pub async fn serve(
    home: &Path,
    token: Option<&str>,
    limits: (usize, usize),
) -> (Arc<Registry>, SocketAddr) {
    let reg = Arc::new(
        Registry::new(home, false, Duration::from_millis(20)).with_limits(limits.0, limits.1),
    );
    reg.scan();
    let app = super::api::router(
        reg.clone(),
        token.map(|t| Arc::new(Secret::new(t.to_string()))),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(super::server::serve(l, app, None, std::future::pending()));
    (reg, addr)
}

async fn request(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> http::Response<hyper::body::Incoming> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    request_on(tcp, &addr.to_string(), path, headers).await
}

/// One GET on an open connection (plain TCP or TLS).
pub async fn request_on<I>(
    io: I,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> http::Response<hyper::body::Incoming>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::get(path).header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send.send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap()
}

/// GET `path`: status and body.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let res = request(addr, path, headers).await;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// One SSE message.
#[derive(Debug, Default, Clone)]
pub struct Msg {
    pub event: String,
    pub id: String,
    pub data: String,
}

/// Reads SSE messages from `path` until `n` arrived (10 s at most).
pub async fn sse(addr: SocketAddr, path: &str, headers: &[(&str, &str)], n: usize) -> Vec<Msg> {
    let res = request(addr, path, headers).await;
    assert_eq!(res.status(), 200, "SSE {path}");
    let mut body = res.into_body();
    let (mut buf, mut out) = (String::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(10);
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, body.frame())
            .await
            .unwrap_or_else(|_| panic!("{} of {n} SSE messages within 10 s", out.len()))
            .expect("stream open")
            .unwrap();
        if let Ok(d) = frame.into_data() {
            buf.push_str(&String::from_utf8_lossy(&d));
        }
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut m = Msg::default();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("data:") {
                    m.data.push_str(v.trim_start());
                } else if let Some(v) = line.strip_prefix("id:") {
                    m.id = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("event:") {
                    m.event = v.trim().to_string();
                }
            }
            if !m.data.is_empty() {
                out.push(m);
            }
        }
    }
    out
}

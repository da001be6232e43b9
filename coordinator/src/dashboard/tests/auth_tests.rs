//! Access: 401 without the token when one is configured, none needed on
//! loopback without one; a non-loopback listener without TLS is refused;
//! TLS with a generated certificate serves the API.

use std::path::PathBuf;

use super::super::error::DashboardError;
use super::super::listen::{Listen, ListenArgs};
use super::{get, serve};

const TOKEN: &str = "0123456789abcdef0123";

#[tokio::test]
async fn requests_without_the_token_get_401() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("c1")).unwrap();
    std::fs::write(home.path().join("c1/events.jsonl"), "").unwrap();
    let (_reg, addr) = serve(home.path(), Some(TOKEN), (100, 16)).await;
    let bearer = format!("Bearer {TOKEN}");
    for path in ["/", "/api/clusters", "/api/clusters/c1/events", "/metrics"] {
        let (status, body) = get(addr, path, &[]).await;
        assert_eq!(status, 401, "{path} without a token: {body}");
        let (status, _) = get(
            addr,
            path,
            &[("authorization", "Bearer wrong-token-xxxxxxx")],
        )
        .await;
        assert_eq!(status, 401, "{path} with a wrong token");
    }
    for path in ["/", "/api/clusters", "/metrics", "/app.js"] {
        let (status, _) = get(addr, path, &[("authorization", &bearer)]).await;
        assert_eq!(status, 200, "{path} with the bearer token");
        let q = format!("{path}?token={TOKEN}");
        let (status, _) = get(addr, &q, &[]).await;
        assert_eq!(status, 200, "{path} with ?token=");
    }
    let (status, body) = get(addr, "/api/clusters", &[("authorization", &bearer)]).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"c1\""), "{body}");
    assert!(
        !body.contains(TOKEN),
        "the token leaks into the API: {body}"
    );
}

#[tokio::test]
async fn loopback_without_a_token_needs_none() {
    let home = tempfile::tempdir().unwrap();
    let (_reg, addr) = serve(home.path(), None, (100, 16)).await;
    let (status, body) = get(addr, "/api/clusters", &[]).await;
    assert_eq!((status, body.as_str()), (200, "[]"));
    let (status, _) = get(addr, "/api/clusters/nope/runs", &[]).await;
    assert_eq!(status, 404);
}

fn args(listen: &str) -> ListenArgs {
    ListenArgs {
        listen: Some(listen.parse().unwrap()),
        ..ListenArgs::default()
    }
}

#[test]
fn non_loopback_without_tls_is_refused() {
    let Err(e) = Listen::resolve(&args("0.0.0.0:7480")) else {
        panic!("0.0.0.0 without TLS was accepted");
    };
    assert!(matches!(e, DashboardError::Insecure { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("TLS") && msg.contains("token") && msg.contains("--tls-cert"),
        "{msg}"
    );

    let dir = tempfile::tempdir().unwrap();
    let token: PathBuf = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let mut a = args("10.1.2.3:7480");
    a.token_file = Some(token.clone());
    let e = Listen::resolve(&a)
        .err()
        .expect("a token alone is not enough");
    assert!(e.to_string().contains("TLS"), "{e}");

    // Loopback: no token, no TLS.
    let l = Listen::resolve(&args("127.0.0.1:0")).unwrap();
    assert!(l.token.is_none() && l.tls.is_none());

    // --self-signed-tls: a certificate and a generated token.
    a.token_file = None;
    a.self_signed = true;
    let l = Listen::resolve(&a).unwrap();
    assert!(l.token_generated && l.token.is_some());
    let tls = l.tls.expect("TLS");
    assert!(
        tls.self_signed && tls.fingerprint.len() == 95,
        "{}",
        tls.fingerprint
    );

    // A short token file is refused.
    std::fs::write(&token, "short").unwrap();
    let mut a = args("127.0.0.1:7480");
    a.token_file = Some(token);
    assert!(Listen::resolve(&a).is_err());
}

//! What authorization costs (figures, not a pass/fail timing test): the
//! per-RPC decision (`authz::decide`), the per-connection parse of the
//! client certificate, and end to end an mTLS handshake plus one call and
//! one call on an open connection, in-process on 127.0.0.1. Run with:
//!   cargo test -p ferry-agent --release --test bench_authz -- --ignored --nocapture

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{channel, start_agent};
use ferry_agent::accept::{PeerCert, PeerInfo};
use ferry_agent::authz::decide;
use ferry_agent::trust::Revocations;
use ferry_proto::pb;
use ferry_proto::pb::trust_client::TrustClient;
use ferry_shared::pki::CertInfo;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

fn per_op(total: Duration, n: u32) -> String {
    format!("{:.2} µs", total.as_secs_f64() * 1e6 / f64::from(n))
}

#[tokio::test]
#[ignore = "figures: run explicitly with --ignored --nocapture"]
async fn bench_authz_costs() {
    let a = start_agent(|_| {}).await;
    let der = CertificateDer::from_pem_slice(a.pki.client.cert_pem.as_bytes()).unwrap();

    let n = 100_000;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(CertInfo::from_der(&der, "client").unwrap());
    }
    println!(
        "client certificate parse, per connection: {}",
        per_op(t.elapsed(), n)
    );

    let revoked = Revocations::load(None).unwrap();
    let serials: Vec<String> = (0..1000).map(|i| format!("{i:04x}")).collect();
    revoked.replace(1, serials).unwrap();
    let info = CertInfo::from_der(&der, "client").unwrap();
    let peer = PeerInfo {
        remote: None,
        cert: Some(Arc::new(PeerCert {
            info,
            chain: vec![der.clone()],
        })),
    };
    let n = 1_000_000;
    let t = Instant::now();
    for _ in 0..n {
        let path = std::hint::black_box("/ferry.agent.v1.Agent/Exec");
        std::hint::black_box(decide(path, Some(&peer), &revoked).unwrap());
    }
    println!(
        "authz decision (1000 revoked serials), per RPC: {}",
        per_op(t.elapsed(), n)
    );

    let (ca, id) = (a.pki.ca.cert_pem(), &a.pki.client);
    let n = 200;
    let t = Instant::now();
    for _ in 0..n {
        let ch = channel(a.addr, ca, id).await.unwrap();
        TrustClient::new(ch)
            .get_trust(pb::GetTrustRequest {})
            .await
            .unwrap();
    }
    println!("mTLS handshake + GetTrust: {}", per_op(t.elapsed(), n));

    let mut c = TrustClient::new(channel(a.addr, ca, id).await.unwrap());
    let n = 5000;
    let t = Instant::now();
    for _ in 0..n {
        c.get_trust(pb::GetTrustRequest {}).await.unwrap();
    }
    println!("GetTrust on an open connection: {}", per_op(t.elapsed(), n));
}

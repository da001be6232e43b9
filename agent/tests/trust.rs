//! The Trust service in-process: revoked serials are refused on every RPC
//! at once (also on a connection opened before) and after a restart; the
//! coordinator cannot revoke itself or go back a generation; InstallTls
//! replaces the agent's identity for new connections, and a CA switch
//! through a two-CA bundle ends with the old CA's coordinator refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use common::{channel, start_agent_with};
use ferry_proto::pb;
use ferry_proto::pb::agent_client::AgentClient;
use ferry_proto::pb::trust_client::TrustClient;
use ferry_shared::pki::{AgentCa, CertInfo, Issued};
use time::OffsetDateTime;
use tonic::Code;

fn serial(i: &Issued) -> String {
    CertInfo::from_pem(&i.cert_pem, "test").unwrap().serial
}

async fn trust(
    addr: std::net::SocketAddr,
    ca: &str,
    id: &Issued,
) -> TrustClient<tonic::transport::Channel> {
    TrustClient::new(channel(addr, ca, id).await.unwrap())
}

async fn facts(
    addr: std::net::SocketAddr,
    ca: &str,
    id: &Issued,
) -> Result<pb::FactsReply, tonic::Status> {
    let ch = channel(addr, ca, id)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    AgentClient::new(ch)
        .facts(pb::FactsRequest {})
        .await
        .map(|r| r.into_inner())
}

/// An agent of `pki` whose Trust changes persist in `dir`.
async fn persisting_agent(pki: &common::Pki, dir: &std::path::Path) -> common::TestAgent {
    pki.write_tls_dir(dir);
    let dir = dir.to_path_buf();
    start_agent_with(pki.again(), |c| c.tls_dir = Some(dir)).await
}

fn revoke(generation: u64, serials: &[String]) -> pb::SetRevokedRequest {
    pb::SetRevokedRequest {
        generation,
        serials: serials.to_vec(),
    }
}

#[tokio::test]
async fn revoked_certificates_are_refused_at_once_and_after_a_restart() {
    let (pki, tls_dir) = (common::pki(), tempfile::tempdir().unwrap());
    let dir = tls_dir.path().to_path_buf();
    let a = persisting_agent(&pki, &dir).await;
    let ca = pki.ca.cert_pem().to_string();
    let now = OffsetDateTime::now_utc();
    // A second coordinator certificate (as after a rotation), already connected.
    let old = pki
        .ca
        .issue_coordinator(now, time::Duration::days(1))
        .unwrap();
    let old_ch = channel(a.addr, &ca, &old).await.unwrap();
    let mut old_agent = AgentClient::new(old_ch);
    assert!(old_agent.facts(pb::FactsRequest {}).await.is_ok());

    let mut t = trust(a.addr, &ca, &pki.client).await;
    let e = t
        .set_revoked(revoke(1, &[serial(&pki.client)]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("lock itself out"), "{}", e.message());
    let st = t
        .set_revoked(revoke(2, &[serial(&old)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((st.revoked_generation, st.revoked_count), (2, 1));
    // The open connection's next call is refused, naming the revocation.
    let e = old_agent.facts(pb::FactsRequest {}).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("revoked"), "{}", e.message());
    let e = t.set_revoked(revoke(1, &[])).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "an older list: {e:?}");
    assert!(facts(a.addr, &ca, &pki.client).await.is_ok());

    // A restarted agent keeps refusing it.
    a.shutdown().await.unwrap();
    let a = start_agent_with(pki.again(), |c| c.tls_dir = Some(dir)).await;
    let e = facts(a.addr, &ca, &old).await.unwrap_err();
    assert!(e.message().contains("revoked"), "{}", e.message());
    assert!(facts(a.addr, &ca, &pki.client).await.is_ok());
}

fn install(ca: &str, leaf: Option<&Issued>) -> pb::InstallTlsRequest {
    pb::InstallTlsRequest {
        ca_pem: ca.to_string(),
        cert_pem: leaf.map(|l| l.cert_pem.clone()).unwrap_or_default(),
        key_pem: leaf
            .map(|l| l.key_pem.expose().as_bytes().to_vec())
            .unwrap_or_default(),
    }
}

fn leaf(ca: &AgentCa) -> Issued {
    let now = OffsetDateTime::now_utc();
    ca.issue_agent(
        "127.0.0.1",
        &["127.0.0.1".parse().unwrap()],
        &[],
        now,
        time::Duration::days(1),
    )
    .unwrap()
}

#[tokio::test]
async fn install_tls_rotates_the_identity_and_a_ca_switch_drops_the_old_ca() {
    let (pki, tls_dir) = (common::pki(), tempfile::tempdir().unwrap());
    let dir = tls_dir.path().to_path_buf();
    let a = persisting_agent(&pki, &dir).await;
    let ca1 = pki.ca.cert_pem().to_string();
    let c1 = pki.client.clone();

    // A new leaf under the same CA: new connections see it, and it is on disk.
    let a2 = leaf(&pki.ca);
    let mut t = trust(a.addr, &ca1, &c1).await;
    t.install_tls(install(&ca1, Some(&a2))).await.unwrap();
    let st = trust(a.addr, &ca1, &c1)
        .await
        .get_trust(pb::GetTrustRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.cert_pem, a2.cert_pem);
    assert_eq!(
        std::fs::read_to_string(dir.join("agent.crt")).unwrap(),
        a2.cert_pem
    );

    // CA switch: both CAs trusted and a leaf of the new one ...
    let now = OffsetDateTime::now_utc();
    let ca2 = AgentCa::generate("next", now, time::Duration::days(2)).unwrap();
    let c2 = ca2.issue_coordinator(now, time::Duration::days(1)).unwrap();
    let both = format!("{}{}", ca2.cert_pem(), ca1);
    let a3 = leaf(&ca2);
    t.install_tls(install(&both, Some(&a3))).await.unwrap();
    assert!(
        facts(a.addr, &both, &c1).await.is_ok(),
        "old coordinator, grace period"
    );
    assert!(facts(a.addr, &both, &c2).await.is_ok(), "new coordinator");
    // ... a bundle refusing the caller is refused ...
    let mut t1 = trust(a.addr, &both, &c1).await;
    let e = t1
        .install_tls(install(ca2.cert_pem(), None))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("lock itself out"), "{}", e.message());
    // ... and the new coordinator drops the old CA: its coordinator is refused.
    let mut t2 = trust(a.addr, &both, &c2).await;
    t2.install_tls(install(ca2.cert_pem(), None)).await.unwrap();
    assert!(
        facts(a.addr, &both, &c1).await.is_err(),
        "old CA still trusted"
    );
    assert!(facts(a.addr, &both, &c2).await.is_ok());

    // A leaf of a CA outside the bundle, or a coordinator leaf, is refused.
    let e = t2
        .install_tls(install(ca2.cert_pem(), Some(&leaf(&pki.ca))))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let e = t2
        .install_tls(install(ca2.cert_pem(), Some(&c2)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");

    // A restart serves what was installed last.
    a.shutdown().await.unwrap();
    let tls = ferry_agent::trust::TlsDir::new(&dir).load().unwrap();
    assert_eq!(tls.cert_pem(), a3.cert_pem);
    assert_eq!(tls.ca_pem(), ca2.cert_pem());
}

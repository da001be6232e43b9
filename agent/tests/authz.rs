//! Per-RPC authorization (issue 15, done-means 1): an agent served with
//! leaf A refuses every coordinator RPC (Facts, Exec, Events, LB, Trust,
//! Transfer Plan/Commit) from leaf B, another node's certificate of the same
//! CA, and from a certificate that only copies the coordinator's common
//! name; leaf B's relay Push is accepted into a transfer the coordinator
//! planned on A, and refused into anything else.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use common::{channel, start_agent};
use ferry_proto::lb_pb;
use ferry_proto::lb_pb::load_balancer_client::LoadBalancerClient;
use ferry_proto::pb;
use ferry_proto::pb::agent_client::AgentClient;
use ferry_proto::pb::trust_client::TrustClient;
use ferry_proto::transfer_pb as tpb;
use ferry_proto::transfer_pb::transfer_client::TransferClient;
use ferry_shared::Secret;
use ferry_shared::pki::Issued;
use ferry_shared::transfer::ChunkHash;
use tonic::Code;
use tonic::transport::Channel;

fn denied<T: std::fmt::Debug>(what: &str, r: Result<T, tonic::Status>) {
    let s = r.expect_err(what);
    assert_eq!(s.code(), Code::PermissionDenied, "{what}: {s:?}");
    assert!(
        s.message().contains("coordinator"),
        "{what}: {}",
        s.message()
    );
}

fn plan_msgs(id: &str, dest: &std::path::Path, data: &[u8]) -> Vec<tpb::PlanRequest> {
    let entry = tpb::Entry {
        path: "f".into(),
        kind: tpb::EntryKind::File as i32,
        mode: 0o644,
        size: data.len() as u64,
        chunks: vec![ChunkHash::of(data).0.to_vec()],
        mtime_ns: 1_700_000_000_000_000_000,
        ..Default::default()
    };
    let header = tpb::PlanHeader {
        transfer_id: id.into(),
        destination: dest.display().to_string(),
        chunk_size: 4096,
        operation_id: "op".into(),
        entry_count: 1,
        ..Default::default()
    };
    use tpb::plan_request::Msg;
    vec![
        tpb::PlanRequest {
            msg: Some(Msg::Header(header)),
        },
        tpb::PlanRequest {
            msg: Some(Msg::Entries(tpb::EntryBatch {
                entries: vec![entry],
            })),
        },
    ]
}

/// Pushes `data` as one raw chunk of transfer `id`; the acks or the error.
async fn push(ch: Channel, id: &str, data: &[u8]) -> Result<Vec<tpb::PushAck>, tonic::Status> {
    use tpb::push_frame::Frame;
    let mut frames = Vec::new();
    if !id.is_empty() {
        frames.push(tpb::PushFrame {
            frame: Some(Frame::TransferId(id.into())),
        });
    }
    frames.push(tpb::PushFrame {
        frame: Some(Frame::Chunk(tpb::Chunk {
            hash: ChunkHash::of(data).0.to_vec(),
            raw_len: data.len() as u32,
            data: data.to_vec(),
            ..Default::default()
        })),
    });
    let mut acks = TransferClient::new(ch)
        .push(futures::stream::iter(frames))
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(a) = acks.message().await? {
        out.push(a);
    }
    Ok(out)
}

#[tokio::test]
async fn another_nodes_certificate_may_only_relay_into_a_planned_transfer() {
    let cache = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_path_buf();
    let a = start_agent(|c| c.transfer.cache_dir = cache_dir).await;
    let ca = a.pki.ca.cert_pem();
    let leaf_b = a.pki.other_agent("10.0.0.3");
    let b = channel(a.addr, ca, &leaf_b).await.unwrap();

    let mut agent = AgentClient::new(b.clone());
    denied("Facts", agent.facts(pb::FactsRequest {}).await);
    denied("Exec", agent.exec(common::argv(&["true"])).await);
    denied("Events", agent.events(pb::EventsRequest::default()).await);
    let mut lb = LoadBalancerClient::new(b.clone());
    denied(
        "LB Get",
        lb.get_load_balancer(lb_pb::GetLoadBalancerRequest {}).await,
    );
    denied(
        "LB Set",
        lb.set_load_balancer(lb_pb::SetLoadBalancerRequest::default())
            .await,
    );
    denied(
        "LB Delete",
        lb.delete_load_balancer(lb_pb::DeleteLoadBalancerRequest::default())
            .await,
    );
    let mut trust = TrustClient::new(b.clone());
    denied("GetTrust", trust.get_trust(pb::GetTrustRequest {}).await);
    denied(
        "SetRevoked",
        trust.set_revoked(pb::SetRevokedRequest::default()).await,
    );
    denied(
        "InstallTls",
        trust.install_tls(pb::InstallTlsRequest::default()).await,
    );
    let data = b"relayed content".to_vec();
    let mut t = TransferClient::new(b.clone());
    let plan = t
        .plan(futures::stream::iter(plan_msgs("t1", dest.path(), &data)))
        .await;
    denied("Plan", plan);
    let commit = tpb::CommitRequest {
        transfer_id: "t1".into(),
    };
    denied("Commit", t.commit(commit.clone()).await);

    // Pushes into nothing the coordinator planned are refused.
    for id in ["", "t1"] {
        let e = push(b.clone(), id, &data).await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{id}: {e:?}");
        assert!(
            e.message().contains("planned on this node"),
            "{}",
            e.message()
        );
    }

    // The coordinator plans t1; B's relay push into it lands and commits.
    let coord = channel(a.addr, ca, &a.pki.client).await.unwrap();
    let mut tc = TransferClient::new(coord.clone());
    let reply = tc
        .plan(futures::stream::iter(plan_msgs("t1", dest.path(), &data)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.missing.len(), 1);
    let acks = push(b.clone(), "t1", &data).await.unwrap();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].hash, ChunkHash::of(&data).0.to_vec());
    denied("Commit by an agent", t.commit(commit.clone()).await);
    tc.commit(commit).await.unwrap();
    assert_eq!(std::fs::read(dest.path().join("f")).unwrap(), data);

    // The coordinator keeps every RPC.
    let mut c = AgentClient::new(coord);
    let out = common::run(&mut c, common::argv(&["true"])).await;
    assert_eq!(out.exit().code, 0);
}

/// A certificate with the coordinator's CN and clientAuth, but not the
/// coordinator EKU (what ferry issued before the identity existed).
fn cn_only_coordinator(pki: &common::Pki) -> Issued {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};
    let ca_key = KeyPair::from_pem(pki.ca.key_pem().expose()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(pki.ca.cert_pem(), ca_key).unwrap();
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "ferry-coordinator");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    Issued {
        cert_pem: cert.pem(),
        key_pem: Secret::new(key.serialize_pem()),
    }
}

#[tokio::test]
async fn the_coordinators_common_name_alone_is_not_the_coordinator() {
    let a = start_agent(|_| {}).await;
    let fake = cn_only_coordinator(&a.pki);
    let ch = channel(a.addr, a.pki.ca.cert_pem(), &fake).await.unwrap();
    let mut c = AgentClient::new(ch);
    denied("Exec", c.exec(common::argv(&["true"])).await);
    denied("Facts", c.facts(pb::FactsRequest {}).await);
    let mut ok = a.client().await;
    assert!(ok.facts(pb::FactsRequest {}).await.is_ok());
}

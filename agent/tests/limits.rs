//! Per-connection and per-agent bounds: HTTP/2 streams per connection and
//! the budget of planned transfers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::path::Path;
use std::time::Duration;

use ferry_proto::pb;
use ferry_proto::transfer_pb as tpb;
use ferry_proto::transfer_pb::transfer_client::TransferClient;
use ferry_shared::transfer::ChunkHash;
use tonic::transport::Channel;

const CS: usize = 4096;

fn dir(path: &str) -> tpb::Entry {
    tpb::Entry {
        path: path.into(),
        kind: tpb::EntryKind::Dir as i32,
        mode: 0o755,
        ..Default::default()
    }
}

fn file(path: &str, data: &[u8]) -> tpb::Entry {
    tpb::Entry {
        path: path.into(),
        kind: tpb::EntryKind::File as i32,
        mode: 0o644,
        size: data.len() as u64,
        chunks: data
            .chunks(CS)
            .map(|c| ChunkHash::of(c).0.to_vec())
            .collect(),
        ..Default::default()
    }
}

async fn plan(
    c: &mut TransferClient<Channel>,
    id: &str,
    dest: &Path,
    entries: Vec<tpb::Entry>,
) -> Result<tpb::PlanReply, tonic::Status> {
    let header = tpb::PlanHeader {
        transfer_id: id.into(),
        destination: dest.display().to_string(),
        chunk_size: CS as u32,
        prune: true,
        operation_id: "op".into(),
        entry_count: entries.len() as u64,
        exclude: Vec::new(),
    };
    let msgs = vec![
        tpb::PlanRequest {
            msg: Some(tpb::plan_request::Msg::Header(header)),
        },
        tpb::PlanRequest {
            msg: Some(tpb::plan_request::Msg::Entries(tpb::EntryBatch { entries })),
        },
    ];
    c.plan(futures::stream::iter(msgs))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn open_transfers_share_a_bounded_plan_budget() {
    let cache = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_path_buf();
    let agent = common::start_agent(|c| {
        c.transfer.cache_dir = cache_dir;
        c.transfer.budget = ferry_agent::transfer::PlanBudget {
            entries: 3,
            bytes: 3 * CS as u64,
        };
    })
    .await;
    let mut c = common::transfer_client(&agent).await;
    let (a, b) = (dest.path().join("a"), dest.path().join("b"));

    // Entries: 2 + 2 > 3, refused at the header, before any entry is kept.
    plan(&mut c, "t1", &a, vec![dir("x"), dir("y")])
        .await
        .unwrap();
    let e = plan(&mut c, "t2", &b, vec![dir("x"), dir("y")])
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("entry budget"), "{}", e.message());
    assert!(e.message().contains("--transfer-budget-entries"));
    // A re-plan of the same transfer replaces it rather than adding up.
    plan(&mut c, "t1", &a, vec![dir("x"), dir("y")])
        .await
        .unwrap();
    // Committed: its share is returned.
    c.commit(tpb::CommitRequest {
        transfer_id: "t1".into(),
    })
    .await
    .unwrap();
    plan(&mut c, "t2", &b, vec![dir("x"), dir("y")])
        .await
        .unwrap();
    c.commit(tpb::CommitRequest {
        transfer_id: "t2".into(),
    })
    .await
    .unwrap();

    // Bytes: 2 chunks still to come + 2 more > 3 chunks.
    let bytes =
        |seed: usize| -> Vec<u8> { (0..2 * CS).map(|i| (i / CS * 2 + seed) as u8).collect() };
    let (data1, data2) = (bytes(0), bytes(1));
    let r = plan(&mut c, "t3", &a, vec![file("f", &data1)])
        .await
        .unwrap();
    assert_eq!(r.missing_bytes, 2 * CS as u64);
    let e = plan(&mut c, "t4", &b, vec![file("g", &data2)])
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("byte budget"), "{}", e.message());
    agent.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_connection_has_a_bounded_number_of_streams() {
    let agent = common::start_agent(|c| c.streams_per_connection = 2).await;
    // One client = one HTTP/2 connection.
    let mut client = agent.client().await;
    let s1 = client
        .events(pb::EventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let _s2 = client
        .events(pb::EventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut third = client.clone();
    let mut call = tokio::spawn(async move { third.facts(pb::FactsRequest {}).await });
    // The third stream waits for a free one...
    let waited = tokio::time::timeout(Duration::from_millis(500), &mut call).await;
    assert!(waited.is_err(), "a third stream was served: {waited:?}");
    // ...and gets it once one ends.
    drop(s1);
    let facts = tokio::time::timeout(common::DEADLINE, call)
        .await
        .expect("the third stream never got a slot")
        .unwrap()
        .unwrap();
    assert_eq!(facts.into_inner().node_name, "test-node");
    agent.shutdown().await.unwrap();
}

//! Relay in-process over real mTLS: chunks pushed in parts (cut-through)
//! are forwarded hop by hop and reassembled on every node, and a successor
//! spliced out in the middle of a chunk's parts costs its own successor
//! only that chunk (held back, never half-sent), with no error.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::time::Instant;

use ferry_proto::transfer_pb as pb;
use ferry_shared::transfer::ChunkHash;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const PART: usize = 1024;

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `data` as raw parts of PART bytes, needed by tree positions 0..3.
fn parts(data: &[u8]) -> Vec<pb::PushFrame> {
    data.chunks(PART)
        .enumerate()
        .map(|(i, d)| {
            frame(pb::Chunk {
                hash: ChunkHash::of(data).0.to_vec(),
                raw_len: data.len() as u32,
                encoding: pb::ChunkEncoding::Raw as i32,
                data: d.to_vec(),
                needed_by: vec![0b111],
                wire_len: data.len() as u32,
                offset: (i * PART) as u32,
            })
        })
        .collect()
}

fn frame(c: pb::Chunk) -> pb::PushFrame {
    pb::PushFrame {
        frame: Some(pb::push_frame::Frame::Chunk(c)),
    }
}

fn hop(endpoint: String, id: &str, position: u32, children: Vec<pb::RelayHop>) -> pb::RelayHop {
    pb::RelayHop {
        endpoint,
        transfer_id: id.into(),
        position,
        children,
    }
}

fn head(children: Vec<pb::RelayHop>) -> Vec<pb::PushFrame> {
    use pb::push_frame::Frame;
    vec![
        pb::PushFrame {
            frame: Some(Frame::TransferId("a".into())),
        },
        pb::PushFrame {
            frame: Some(Frame::Relay(pb::RelayPlan {
                position: 0,
                children,
            })),
        },
    ]
}

/// (node, hash) of every stored chunk, and the failed nodes.
type Seen = (Vec<(String, Vec<u8>)>, Vec<(String, String)>);

fn record(seen: &mut Seen, a: pb::PushAck) {
    assert!(!a.passed, "every node needs every chunk here");
    if a.failed_node.is_empty() {
        seen.0.push((a.node, a.hash));
    } else {
        seen.1.push((a.failed_node, a.error));
    }
}

/// Two agents sharing one cluster identity: "a" relays to "c", where the
/// coordinator planned transfer "c" (an agent may push into nothing else).
async fn pair() -> (common::TestAgent, common::TestAgent, Vec<tempfile::TempDir>) {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let d0 = dirs[0].path().to_path_buf();
    let a = common::start_agent(|c| c.transfer.cache_dir = d0).await;
    let (tls, d1) = (a.pki.tls(), dirs[1].path().to_path_buf());
    let c = common::start_agent(|c| {
        c.tls = tls;
        c.transfer.cache_dir = d1;
    })
    .await;
    common::open_transfer(c.addr, &a.pki, "c", dirs[2].path()).await;
    (a, c, dirs)
}

#[tokio::test]
async fn parts_are_forwarded_and_reassembled_on_every_hop() {
    let (a, c, _dirs) = pair().await;
    let x = noise(100 * PART + 17, 1);
    let y = noise(3 * PART, 2);
    let mut frames = head(vec![hop(c.addr.to_string(), "c", 1, vec![])]);
    frames.extend(parts(&x));
    frames.extend(parts(&y));
    let mut client = common::transfer_client(&a).await;
    let mut acks = client
        .push(futures::stream::iter(frames))
        .await
        .unwrap()
        .into_inner();
    let mut seen = Seen::default();
    while let Some(ack) = acks.message().await.unwrap() {
        record(&mut seen, ack);
    }
    assert!(seen.1.is_empty(), "{:?}", seen.1);
    let (hx, hy) = (ChunkHash::of(&x).0.to_vec(), ChunkHash::of(&y).0.to_vec());
    seen.0.sort();
    let mut want = vec![
        ("a".to_string(), hx.clone()),
        ("a".to_string(), hy.clone()),
        ("c".to_string(), hx),
        ("c".to_string(), hy),
    ];
    want.sort();
    assert_eq!(seen.0, want, "both chunks verified (sha256) on both nodes");
}

#[tokio::test]
async fn a_successor_spliced_out_mid_transfer_leaves_its_successor_whole_chunks_only() {
    let (a, c, _dirs) = pair().await;
    // "b" (position 1) accepts TCP but never answers TLS until we drop the
    // connection; "c" (position 2) follows it.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = held.local_addr().unwrap();
    let c_hop = hop(c.addr.to_string(), "c", 2, vec![]);
    let (tx, rx) = mpsc::channel(4);
    for f in head(vec![hop(dead.to_string(), "b", 1, vec![c_hop])]) {
        tx.send(f).await.unwrap();
    }
    let mut client = common::transfer_client(&a).await;
    let mut acks = client
        .push(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let (conn, _) = tokio::task::spawn_blocking(move || held.accept())
        .await
        .unwrap()
        .unwrap();

    // w goes to a (and into b's queue); then x starts and b's connection
    // drops while x's parts flow: a splices b out and attaches c, most
    // likely in the middle of x.
    let (w, x, y) = (noise(PART / 2, 5), noise(200 * PART, 3), noise(5 * PART, 4));
    let mut seen = Seen::default();
    for f in parts(&w) {
        tx.send(f).await.unwrap();
    }
    while seen.0.is_empty() {
        record(&mut seen, acks.message().await.unwrap().unwrap());
    }
    let mut xs = parts(&x).into_iter();
    for f in xs.by_ref().take(2) {
        tx.send(f).await.unwrap();
    }
    drop(conn);
    for f in xs.chain(parts(&y)) {
        tx.send(f).await.unwrap();
    }
    drop(tx);
    let deadline = Instant::now() + common::DEADLINE;
    while let Some(ack) = tokio::time::timeout_at(deadline.into(), acks.message())
        .await
        .expect("the push ended")
        .unwrap()
    {
        record(&mut seen, ack);
    }

    assert_eq!(seen.1.len(), 1, "{:?}", seen.1);
    assert_eq!(seen.1[0].0, "b");
    assert!(seen.1[0].1.contains(&dead.to_string()), "{}", seen.1[0].1);
    let h = |d: &[u8]| ChunkHash::of(d).0.to_vec();
    let of = |node: &str| {
        let mut v: Vec<Vec<u8>> = seen
            .0
            .iter()
            .filter(|(n, _)| n == node)
            .map(|(_, h)| h.clone())
            .collect();
        v.sort();
        v
    };
    let mut all = vec![h(&w), h(&x), h(&y)];
    all.sort();
    assert_eq!(of("a"), all, "a keeps every chunk");
    // c joined after w; it gets y, and x only if it joined at x's first
    // part: never a part of x without its head (no error, no bad chunk).
    let c_got = of("c");
    assert!(c_got.contains(&h(&y)), "c got y");
    assert!(!c_got.contains(&h(&w)), "c joined after w");
    assert!(c_got.len() <= 2, "{c_got:?}");
}

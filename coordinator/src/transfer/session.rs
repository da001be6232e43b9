//! One node's transfer: Plan (stream the manifest in batches), Push (the
//! missing chunks, at most `WINDOW` unacknowledged), Commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferry_proto::transfer_pb as pb;
use ferry_proto::transfer_pb::transfer_client::TransferClient;
use ferry_shared::transfer::ChunkHash;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::TransferError;
use super::convert;
use super::source::{Loads, Source};

/// Chunks in flight (sent, not yet acknowledged) per node.
pub const WINDOW: usize = 8;
// Every started load holds a credit until sent: keep one free for acks.
const _: () = assert!(super::source::MAX_LOADS < WINDOW);
/// Manifest entries per Plan message.
const BATCH: usize = 512;
/// How long Plan, an ack or Commit may take before the node is declared gone.
pub(crate) const PLAN_TIMEOUT: Duration = Duration::from_secs(600);
pub(crate) const ACK_IDLE: Duration = Duration::from_secs(60);
const COMMIT_TIMEOUT: Duration = Duration::from_secs(1800);
const MAX_MESSAGE: usize = 8 << 20;

/// Counters reported while a node is being fed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub files_total: u64,
    pub files_unchanged: u64,
    /// Bytes of chunks the node lacks (what must cross the network).
    pub content_total: u64,
    pub content_sent: u64,
    pub wire_sent: u64,
    pub reused: u64,
    pub to_delete: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct NodeStats {
    pub progress: Progress,
    pub files_written: u64,
    pub deleted: u64,
    pub metadata_fixed: u64,
    pub duration: Duration,
}

pub(crate) fn rpc(endpoint: &str, rpc: &'static str) -> impl Fn(tonic::Status) -> TransferError {
    let endpoint = endpoint.to_string();
    move |s| TransferError::Rpc {
        endpoint: endpoint.clone(),
        rpc,
        status: format!("{:?}: {}", s.code(), s.message()),
    }
}

pub(crate) fn idle(endpoint: &str, rpc: &'static str, d: Duration) -> TransferError {
    TransferError::Idle {
        endpoint: endpoint.to_string(),
        rpc,
        secs: d.as_secs(),
    }
}

/// A node planned: what it lacks.
#[derive(Debug, Clone)]
pub struct Planned {
    pub missing: Vec<ChunkHash>,
    pub progress: Progress,
}

pub fn client(channel: Channel) -> TransferClient<Channel> {
    TransferClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

/// Plan: streams the manifest; the node answers with the chunks it lacks.
pub async fn plan(
    client: &mut TransferClient<Channel>,
    endpoint: &str,
    src: &Arc<Source>,
    transfer_id: &str,
    op: &str,
) -> Result<Planned, TransferError> {
    let (tx, rx) = mpsc::channel(4);
    let header = pb::PlanHeader {
        transfer_id: transfer_id.to_string(),
        destination: src.dest.to_string(),
        chunk_size: src.manifest.chunk_size(),
        prune: src.prune,
        operation_id: op.to_string(),
        entry_count: src.manifest.entries().len() as u64,
        exclude: src.exclude.iter().map(|x| x.to_string()).collect(),
    };
    let feeder = {
        let src = src.clone();
        tokio::spawn(async move {
            use pb::plan_request::Msg;
            if tx
                .send(pb::PlanRequest {
                    msg: Some(Msg::Header(header)),
                })
                .await
                .is_err()
            {
                return;
            }
            for batch in src.manifest.entries().chunks(BATCH) {
                let entries = batch.iter().map(convert::entry).collect();
                let msg = Msg::Entries(pb::EntryBatch { entries });
                if tx.send(pb::PlanRequest { msg: Some(msg) }).await.is_err() {
                    return;
                }
            }
        })
    };
    let plan = tokio::time::timeout(PLAN_TIMEOUT, client.plan(ReceiverStream::new(rx)))
        .await
        .map_err(|_| idle(endpoint, "Plan", PLAN_TIMEOUT))?
        .map_err(rpc(endpoint, "Plan"))?
        .into_inner();
    feeder.abort();
    let missing = plan
        .missing
        .iter()
        .map(|h| ChunkHash::from_slice(h))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TransferError::Protocol {
            endpoint: endpoint.to_string(),
            detail: e.to_string(),
        })?;
    Ok(Planned {
        missing,
        progress: Progress {
            files_total: plan.files_total,
            files_unchanged: plan.files_unchanged,
            content_total: plan.missing_bytes,
            reused: plan.reused_bytes,
            to_delete: plan.to_delete,
            ..Progress::default()
        },
    })
}

/// Commit: the node applies the manifest.
pub async fn commit(
    client: &mut TransferClient<Channel>,
    endpoint: &str,
    transfer_id: &str,
    progress: Progress,
    started: Instant,
) -> Result<NodeStats, TransferError> {
    let done = tokio::time::timeout(
        COMMIT_TIMEOUT,
        client.commit(pb::CommitRequest {
            transfer_id: transfer_id.to_string(),
        }),
    )
    .await
    .map_err(|_| idle(endpoint, "Commit", COMMIT_TIMEOUT))?
    .map_err(rpc(endpoint, "Commit"))?
    .into_inner();
    Ok(NodeStats {
        progress,
        files_written: done.files_written,
        deleted: done.deleted,
        metadata_fixed: done.metadata_fixed,
        duration: started.elapsed(),
    })
}

/// Star: Plan, Push and Commit for one node, fed by this process.
pub async fn transfer_to(
    channel: Channel,
    endpoint: &str,
    src: Arc<Source>,
    transfer_id: String,
    op: String,
    on_progress: impl Fn(&Progress),
) -> Result<NodeStats, TransferError> {
    let started = Instant::now();
    let mut client = client(channel);
    let planned = plan(&mut client, endpoint, &src, &transfer_id, &op).await?;
    let mut p = planned.progress;
    on_progress(&p);
    if !planned.missing.is_empty() {
        push(
            &mut client,
            endpoint,
            &src,
            &transfer_id,
            planned.missing,
            &mut p,
            &on_progress,
        )
        .await?;
    }
    commit(&mut client, endpoint, &transfer_id, p, started).await
}

async fn push(
    client: &mut TransferClient<Channel>,
    endpoint: &str,
    src: &Arc<Source>,
    transfer_id: &str,
    missing: Vec<ChunkHash>,
    p: &mut Progress,
    on_progress: &impl Fn(&Progress),
) -> Result<(), TransferError> {
    let proto = |detail: String| TransferError::Protocol {
        endpoint: endpoint.to_string(),
        detail,
    };
    let mut wanted = Vec::with_capacity(missing.len());
    for h in missing {
        let loc =
            src.chunks.get(&h).cloned().ok_or_else(|| {
                proto(format!("asked for chunk {h}, which is not in the manifest"))
            })?;
        wanted.push((h, loc));
    }
    let credits = Arc::new(Semaphore::new(WINDOW));
    let wire = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::channel::<pb::PushFrame>(2);
    let total = wanted.len();
    let producer = {
        let (credits, wire, id) = (credits.clone(), wire.clone(), transfer_id.to_string());
        tokio::spawn(async move {
            use pb::push_frame::Frame;
            if tx
                .send(pb::PushFrame {
                    frame: Some(Frame::TransferId(id)),
                })
                .await
                .is_err()
            {
                return Ok(());
            }
            // Reads + compression run in parallel (bounded by `Loads`,
            // fewer than WINDOW, so a sent chunk always holds a credit).
            let mut wanted = wanted.into_iter();
            let mut loads = Loads::new();
            loop {
                while loads.has_room() {
                    let Some((h, loc)) = wanted.next() else { break };
                    // Closed only when the receiver is gone.
                    let Ok(permit) = credits.acquire().await else {
                        return Ok(());
                    };
                    permit.forget();
                    loads.start(h, loc);
                }
                let Some(loaded) = loads.next().await else {
                    break;
                };
                let l = loaded?;
                wire.fetch_add(l.data.len() as u64, Ordering::Relaxed);
                let encoding = if l.zstd {
                    pb::ChunkEncoding::Zstd
                } else {
                    pb::ChunkEncoding::Raw
                };
                let chunk = pb::Chunk {
                    hash: l.hash.0.to_vec(),
                    raw_len: l.raw_len,
                    encoding: encoding as i32,
                    data: l.data,
                    ..Default::default()
                };
                if tx
                    .send(pb::PushFrame {
                        frame: Some(Frame::Chunk(chunk)),
                    })
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            Ok::<(), TransferError>(())
        })
    };
    let result = async {
        let mut acks = client
            .push(ReceiverStream::new(rx))
            .await
            .map_err(rpc(endpoint, "Push"))?
            .into_inner();
        let mut acked = 0;
        while acked < total {
            let ack = tokio::time::timeout(ACK_IDLE, acks.message())
                .await
                .map_err(|_| idle(endpoint, "Push", ACK_IDLE))?
                .map_err(rpc(endpoint, "Push"))?
                .ok_or_else(|| proto(format!("Push ended after {acked} of {total} chunks")))?;
            acked += 1;
            credits.add_permits(1);
            p.content_sent += u64::from(ack.raw_len);
            p.wire_sent = wire.load(Ordering::Relaxed);
            on_progress(p);
        }
        Ok(())
    }
    .await;
    credits.close();
    match producer.await {
        Ok(Err(e)) => return Err(e),
        Err(e) => return Err(proto(format!("chunk reader failed: {e}"))),
        Ok(Ok(())) => {}
    }
    result
}

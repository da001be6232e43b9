//! Relay fan-out: plan every node, then stream the union of the missing
//! chunks once into the root of a chain or bounded-degree tree of agents;
//! every agent stores what it needs and forwards to its children while
//! still receiving. Acknowledgements come back up the tree tagged with the
//! node that handled each chunk, so progress is per node.
//!
//! A node that fails is spliced out by its predecessor; chunks lost in
//! flight are sent again in a repair round (a new tree of the nodes that
//! still lack something). The failure is reported for that node only.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ferry_proto::transfer_pb as pb;
use ferry_shared::transfer::{ChunkHash, Needs, Topology, TreeNode, depth, layout};
use futures::StreamExt;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::TransferError;
use super::parts::{part_size, split};
use super::session::{ACK_IDLE, NodeStats, Progress, WINDOW, client, commit, idle, plan, rpc};
use super::source::{Loads, Source};

/// Repair rounds after the first relay round.
const MAX_ROUNDS: usize = 4;
/// Nodes planned / committed at once.
const PARALLEL: usize = 32;

/// One node of a relay transfer.
#[derive(Clone)]
pub struct Target {
    pub channel: Channel,
    /// `ip:port` of its agent (dialed by its predecessor).
    pub endpoint: String,
    pub transfer_id: String,
}

/// What the sender itself put on the wire.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SenderStats {
    pub chunks_sent: u64,
    pub content_bytes_sent: u64,
    pub wire_bytes_sent: u64,
    pub rounds: u64,
}

pub struct Outcome {
    pub nodes: Vec<Result<NodeStats, TransferError>>,
    pub sender: SenderStats,
}

struct NodeState {
    remaining: HashSet<ChunkHash>,
    /// In the order the node asked for them.
    missing: Vec<ChunkHash>,
    progress: Progress,
    failed: Option<TransferError>,
}

/// Brings every target to `src` through a relay tree of `topology`
/// (chain or tree; a star degenerates to a chain). `on_progress` gets the
/// target index and its counters after every acknowledged chunk.
pub async fn relay(
    targets: Vec<Target>,
    src: Arc<Source>,
    topology: Topology,
    op: &str,
    on_progress: &(dyn Fn(usize, &Progress) + Sync),
) -> Outcome {
    let started = Instant::now();
    let planned: Vec<_> = futures::stream::iter(targets.iter().map(|t| {
        let src = src.clone();
        async move {
            let mut c = client(t.channel.clone());
            plan(&mut c, &t.endpoint, &src, &t.transfer_id, op).await
        }
    }))
    .buffered(PARALLEL)
    .collect()
    .await;
    let mut nodes: Vec<NodeState> = planned
        .into_iter()
        .map(|p| match p {
            Ok(p) => NodeState {
                remaining: p.missing.iter().copied().collect(),
                missing: p.missing,
                progress: p.progress,
                failed: None,
            },
            Err(e) => NodeState {
                remaining: HashSet::new(),
                missing: Vec::new(),
                progress: Progress::default(),
                failed: Some(e),
            },
        })
        .collect();
    for (i, n) in nodes.iter().enumerate() {
        if n.failed.is_none() {
            on_progress(i, &n.progress);
        }
    }
    let mut sender = SenderStats::default();
    let degree = topology.degree().max(1);
    for _ in 0..=MAX_ROUNDS {
        let members: Vec<usize> = (0..nodes.len())
            .filter(|i| nodes[*i].failed.is_none() && !nodes[*i].remaining.is_empty())
            .collect();
        if members.is_empty() {
            break;
        }
        sender.rounds += 1;
        round(
            &targets,
            &mut nodes,
            &members,
            degree,
            &src,
            &mut sender,
            on_progress,
        )
        .await;
    }
    let results: Vec<_> =
        futures::stream::iter(targets.iter().zip(nodes).map(|(t, n)| async move {
            if let Some(e) = n.failed {
                return Err(e);
            }
            if !n.remaining.is_empty() {
                return Err(TransferError::Protocol {
                    endpoint: t.endpoint.clone(),
                    detail: format!(
                        "{} chunks still missing after {} relay rounds; re-run the copy",
                        n.remaining.len(),
                        MAX_ROUNDS + 1
                    ),
                });
            }
            let mut c = client(t.channel.clone());
            commit(&mut c, &t.endpoint, &t.transfer_id, n.progress, started).await
        }))
        .buffered(PARALLEL)
        .collect()
        .await;
    Outcome {
        nodes: results,
        sender,
    }
}

fn hop(tree: &[TreeNode], targets: &[Target], members: &[usize], p: u32) -> pb::RelayHop {
    let t = &targets[members[p as usize]];
    pb::RelayHop {
        endpoint: t.endpoint.clone(),
        transfer_id: t.transfer_id.clone(),
        position: p,
        children: tree[p as usize]
            .children
            .iter()
            .map(|c| hop(tree, targets, members, *c))
            .collect(),
    }
}

/// One relay round over `members` (indices into `targets`), tree position
/// p = members[p].
async fn round(
    targets: &[Target],
    nodes: &mut [NodeState],
    members: &[usize],
    degree: u32,
    src: &Arc<Source>,
    sender: &mut SenderStats,
    on_progress: &(dyn Fn(usize, &Progress) + Sync),
) {
    let tree = layout(members.len() as u32, degree);
    // The union of what the members lack, in first-asked order.
    let mut order: Vec<ChunkHash> = Vec::new();
    let mut needs: HashMap<ChunkHash, Needs> = HashMap::new();
    for (p, m) in members.iter().enumerate() {
        let n = &nodes[*m];
        for h in n.missing.iter().filter(|h| n.remaining.contains(h)) {
            needs
                .entry(*h)
                .or_insert_with(|| {
                    order.push(*h);
                    Needs::with_capacity(members.len() as u32)
                })
                .set(p as u32);
        }
    }
    let root = &targets[members[0]];
    let by_id: HashMap<&str, usize> = members
        .iter()
        .map(|m| (targets[*m].transfer_id.as_str(), *m))
        .collect();
    let wire: Arc<Mutex<HashMap<ChunkHash, u32>>> = Arc::default();
    let raw_bytes: u64 = order
        .iter()
        .filter_map(|h| src.chunks.get(h))
        .map(|l| u64::from(l.len))
        .sum();
    let part_size = part_size(raw_bytes, depth(&tree));
    let credits = Arc::new(Semaphore::new(WINDOW));
    let (tx, rx) = mpsc::channel::<pb::PushFrame>(2);
    let plan = pb::RelayPlan {
        position: 0,
        children: tree[0]
            .children
            .iter()
            .map(|c| hop(&tree, targets, members, *c))
            .collect(),
    };
    let producer = {
        let (credits, wire, src) = (credits.clone(), wire.clone(), src.clone());
        let id = root.transfer_id.clone();
        tokio::spawn(async move {
            use pb::push_frame::Frame;
            let mut stats = SenderStats::default();
            for f in [Frame::TransferId(id), Frame::Relay(plan)] {
                if tx.send(pb::PushFrame { frame: Some(f) }).await.is_err() {
                    return Ok(stats);
                }
            }
            // Reads + compression run in parallel (bounded by `Loads`,
            // fewer than WINDOW, so a sent chunk always holds a credit).
            let mut order = order.into_iter();
            let mut loads = Loads::new();
            loop {
                while loads.has_room() {
                    let Some(h) = order.next() else { break };
                    let Ok(permit) = credits.acquire().await else {
                        return Ok(stats);
                    };
                    permit.forget();
                    let loc =
                        src.chunks
                            .get(&h)
                            .cloned()
                            .ok_or_else(|| TransferError::Protocol {
                                endpoint: String::new(),
                                detail: format!("chunk {h} is not in the manifest"),
                            })?;
                    loads.start(h, loc);
                }
                let Some(loaded) = loads.next().await else {
                    break;
                };
                let l = loaded?;
                let (h, raw_len) = (l.hash, l.raw_len);
                let wire_len = l.data.len() as u32;
                wire.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(h, wire_len);
                let encoding = if l.zstd {
                    pb::ChunkEncoding::Zstd
                } else {
                    pb::ChunkEncoding::Raw
                };
                let chunk = pb::Chunk {
                    hash: h.0.to_vec(),
                    raw_len,
                    encoding: encoding as i32,
                    data: l.data,
                    needed_by: needs.get(&h).map(|n| n.0.clone()).unwrap_or_default(),
                    ..Default::default()
                };
                for part in split(chunk, part_size) {
                    let frame = pb::PushFrame {
                        frame: Some(Frame::Chunk(part)),
                    };
                    if tx.send(frame).await.is_err() {
                        return Ok(stats);
                    }
                }
                stats.chunks_sent += 1;
                stats.content_bytes_sent += u64::from(raw_len);
                stats.wire_bytes_sent += u64::from(wire_len);
            }
            Ok::<_, TransferError>(stats)
        })
    };
    let root_idx = members[0];
    let res: Result<(), TransferError> = async {
        let mut c = client(root.channel.clone());
        let mut acks = c
            .push(ReceiverStream::new(rx))
            .await
            .map_err(rpc(&root.endpoint, "Push"))?
            .into_inner();
        loop {
            let ack = tokio::time::timeout(ACK_IDLE, acks.message())
                .await
                .map_err(|_| idle(&root.endpoint, "Push", ACK_IDLE))?
                .map_err(rpc(&root.endpoint, "Push"))?;
            let Some(ack) = ack else {
                return Ok(());
            };
            if !ack.failed_node.is_empty() {
                if let Some(&i) = by_id.get(ack.failed_node.as_str())
                    && nodes[i].failed.is_none()
                {
                    nodes[i].failed = Some(TransferError::Protocol {
                        endpoint: targets[i].endpoint.clone(),
                        detail: ack.error,
                    });
                }
                continue;
            }
            let Some(&i) = by_id.get(ack.node.as_str()) else {
                continue;
            };
            if i == root_idx {
                credits.add_permits(1);
            }
            if ack.passed {
                continue;
            }
            let Ok(h) = ChunkHash::from_slice(&ack.hash) else {
                continue;
            };
            let n = &mut nodes[i];
            if n.remaining.remove(&h) {
                n.progress.content_sent += u64::from(ack.raw_len);
                let w = wire
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&h)
                    .copied();
                n.progress.wire_sent += u64::from(w.unwrap_or(ack.raw_len));
                on_progress(i, &n.progress);
            }
        }
    }
    .await;
    credits.close();
    match producer.await {
        Ok(Ok(s)) => {
            sender.chunks_sent += s.chunks_sent;
            sender.content_bytes_sent += s.content_bytes_sent;
            sender.wire_bytes_sent += s.wire_bytes_sent;
        }
        Ok(Err(e)) => {
            // The source changed or could not be read: nobody can finish.
            let msg = e.to_string();
            for m in members {
                nodes[*m]
                    .failed
                    .get_or_insert_with(|| TransferError::Protocol {
                        endpoint: targets[*m].endpoint.clone(),
                        detail: msg.clone(),
                    });
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "relay chunk reader task failed");
        }
    }
    if let Err(e) = res {
        nodes[root_idx].failed.get_or_insert(e);
    }
}

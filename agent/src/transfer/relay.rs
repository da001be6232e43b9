//! Relay: while a node receives a Push stream it forwards each chunk to
//! the children of its relay tree whose subtree needs it, and relays their
//! acknowledgements upstream. A child that fails is spliced out: reported
//! upstream once (`PushAck.failed_node`) and replaced by links to its own
//! children. Queues are bounded, so a slow child slows this node's intake
//! (HTTP/2 backpressure up to the sender) instead of growing memory.
//!
//! Invariant: the agent dials only the successors named in the RelayPlan
//! it received from an mTLS client of the cluster CA.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferry_proto::transfer_pb as pb;
use ferry_proto::transfer_pb::transfer_client::TransferClient;
use ferry_shared::transfer::Needs;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tonic::transport::Endpoint;

use super::parts::{Kind, starts_chunk};
use crate::tls::TlsMaterial;

/// Frames (whole chunks or parts, see `parts.rs`) queued per child link.
/// At least 2: a fresh link's channel takes the transfer id and the relay
/// plan without waiting (`attach`).
const LINK_BUFFER: usize = 4;
const _: () = assert!(LINK_BUFFER >= 2);
/// How long a child may refuse chunks or leave them unacknowledged.
const LINK_IDLE: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a finished stream waits for a child's last acks.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
/// Bounds of a relay plan.
const MAX_HOPS: usize = 4096;
const MAX_DEPTH: usize = 1024;
const MAX_MESSAGE: usize = super::service::MAX_MESSAGE;

pub type AckTx = mpsc::Sender<Result<pb::PushAck, Status>>;

/// A successor and the successors it forwards to, positions in pre-order.
#[derive(Debug, Clone)]
pub struct Hop {
    pub endpoint: String,
    pub transfer_id: String,
    pub position: u32,
    pub subtree_end: u32,
    pub children: Vec<Hop>,
}

/// Validates a relay plan: bounded size and depth, positions of each
/// child subtree contiguous after its parent.
pub fn hops(plan: pb::RelayPlan) -> Result<(u32, Vec<Hop>), Status> {
    let mut count = 0;
    let mut next = after(plan.position)?;
    let mut out = Vec::new();
    for c in plan.children {
        let h = hop(c, 0, &mut count, next)?;
        next = h.subtree_end;
        out.push(h);
    }
    Ok((plan.position, out))
}

/// The position after `p`: positions count nodes, so the last one
/// (`u32::MAX`) has none (a plan claiming it overflowed; found by the
/// transfer_push fuzz target).
fn after(p: u32) -> Result<u32, Status> {
    p.checked_add(1).ok_or_else(|| {
        Status::invalid_argument(format!(
            "relay plan: position {p} leaves no room for a successor"
        ))
    })
}

fn hop(h: pb::RelayHop, depth: usize, count: &mut usize, want: u32) -> Result<Hop, Status> {
    *count += 1;
    if *count > MAX_HOPS || depth > MAX_DEPTH {
        return Err(Status::invalid_argument("relay plan too large"));
    }
    if h.position != want {
        return Err(Status::invalid_argument(format!(
            "relay plan: hop {} at position {}, expected {want} (pre-order)",
            h.endpoint, h.position
        )));
    }
    if h.endpoint.parse::<std::net::SocketAddr>().is_err() {
        return Err(Status::invalid_argument(format!(
            "relay plan: endpoint `{}` is not IP:port",
            h.endpoint
        )));
    }
    let mut next = after(h.position)?;
    let mut children = Vec::new();
    for c in h.children {
        let c = hop(c, depth + 1, count, next)?;
        next = c.subtree_end;
        children.push(c);
    }
    Ok(Hop {
        endpoint: h.endpoint,
        transfer_id: h.transfer_id,
        position: h.position,
        subtree_end: next,
        children,
    })
}

impl Hop {
    fn subtree(&self) -> std::ops::Range<u32> {
        self.position..self.subtree_end
    }
}

/// Whether a link may carry `chunk`: a link attached mid-chunk (`joining`)
/// waits for the next chunk's first frame.
fn admit(joining: &mut bool, chunk: &pb::Chunk) -> bool {
    if *joining && starts_chunk(chunk) {
        *joining = false;
    }
    !*joining
}

fn to_pb(h: &Hop) -> pb::RelayHop {
    pb::RelayHop {
        endpoint: h.endpoint.clone(),
        transfer_id: h.transfer_id.clone(),
        position: h.position,
        children: h.children.iter().map(to_pb).collect(),
    }
}

struct Link {
    hop: Hop,
    tx: mpsc::Sender<pb::PushFrame>,
    /// Attached in the middle of a chunk's parts: holds back frames until
    /// the next chunk starts, so the child never sees a headless chunk.
    joining: bool,
    /// Chunks sent to and acknowledged by the child itself.
    sent: Arc<AtomicU64>,
    task: JoinHandle<Result<(), String>>,
}

/// The children this node forwards to.
pub struct Downstream {
    links: Vec<Link>,
    tls: TlsMaterial,
    acks: AckTx,
}

impl Downstream {
    pub fn new(children: Vec<Hop>, tls: TlsMaterial, acks: AckTx) -> Self {
        let mut d = Self {
            links: Vec::new(),
            tls,
            acks,
        };
        for h in children {
            d.attach(h);
        }
        d
    }

    fn attach(&mut self, hop: Hop) {
        let (tx, rx) = mpsc::channel(LINK_BUFFER);
        let sent = Arc::new(AtomicU64::new(0));
        use pb::push_frame::Frame;
        let first = [
            Frame::TransferId(hop.transfer_id.clone()),
            Frame::Relay(pb::RelayPlan {
                position: hop.position,
                children: hop.children.iter().map(to_pb).collect(),
            }),
        ];
        for f in first {
            // Fresh channel with room for both frames.
            let _ = tx.try_send(pb::PushFrame { frame: Some(f) });
        }
        let task = tokio::spawn(run_link(
            hop.clone(),
            self.tls.clone(),
            rx,
            sent.clone(),
            self.acks.clone(),
        ));
        self.links.push(Link {
            hop,
            tx,
            joining: true,
            sent,
            task,
        });
    }

    /// Forwards `chunk` (a whole chunk or one part of it, `kind`) to every
    /// child whose subtree needs it, splicing out children that failed.
    pub async fn forward(&mut self, chunk: &pb::Chunk, needs: &Needs, kind: Kind) {
        let mut i = 0;
        while i < self.links.len() {
            let l = &mut self.links[i];
            if l.task.is_finished() {
                self.splice(i, "its stream ended early".into()).await;
                continue;
            }
            let wanted = admit(&mut l.joining, chunk) && needs.any_in(l.hop.subtree());
            if wanted {
                let frame = pb::PushFrame {
                    frame: Some(pb::push_frame::Frame::Chunk(chunk.clone())),
                };
                match tokio::time::timeout(LINK_IDLE, l.tx.send(frame)).await {
                    Ok(Ok(())) => {
                        if kind.completes() {
                            l.sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(Err(_)) => {
                        self.splice(i, "its stream closed".into()).await;
                        continue;
                    }
                    Err(_) => {
                        let why = format!("it accepted no chunk for {}s", LINK_IDLE.as_secs());
                        self.splice(i, why).await;
                        continue;
                    }
                }
            }
            i += 1;
        }
    }

    /// Removes link `i`, reports its node failed, and attaches its children.
    async fn splice(&mut self, i: usize, fallback: String) {
        let l = self.links.remove(i);
        let why = finish_link(l.task, fallback).await;
        self.report(&l.hop, why).await;
        for c in l.hop.children {
            self.attach(c);
        }
    }

    async fn report(&self, hop: &Hop, why: String) {
        tracing::warn!(node = %hop.endpoint, error = %why, "relay successor failed; spliced out");
        let ack = pb::PushAck {
            failed_node: hop.transfer_id.clone(),
            error: format!("relay from its predecessor to {}: {why}", hop.endpoint),
            ..Default::default()
        };
        let _ = self.acks.send(Ok(ack)).await;
    }

    /// The upstream stream ended: close every link and wait for the
    /// children's last acknowledgements.
    pub async fn finish(self) {
        let Self { links, acks, .. } = self;
        for l in links {
            drop(l.tx);
            match tokio::time::timeout(DRAIN_TIMEOUT, l.task).await {
                Ok(Ok(Ok(()))) => {}
                res => {
                    let why = match res {
                        Ok(Ok(Err(e))) => e,
                        Ok(Err(e)) => format!("relay task failed: {e}"),
                        _ => format!("no final acknowledgement within {DRAIN_TIMEOUT:?}"),
                    };
                    let ack = pb::PushAck {
                        failed_node: l.hop.transfer_id.clone(),
                        error: format!("relay to {}: {why}", l.hop.endpoint),
                        ..Default::default()
                    };
                    let _ = acks.send(Ok(ack)).await;
                }
            }
        }
    }
}

async fn finish_link(task: JoinHandle<Result<(), String>>, fallback: String) -> String {
    let handle = task.abort_handle();
    match tokio::time::timeout(Duration::from_secs(5), task).await {
        Ok(Ok(Err(e))) => e,
        Ok(_) => fallback,
        Err(_) => {
            handle.abort();
            fallback
        }
    }
}

/// One child: connect, stream the frames, relay every ack upstream.
async fn run_link(
    hop: Hop,
    tls: TlsMaterial,
    rx: mpsc::Receiver<pb::PushFrame>,
    sent: Arc<AtomicU64>,
    acks: AckTx,
) -> Result<(), String> {
    let addr: std::net::SocketAddr = hop
        .endpoint
        .parse()
        .map_err(|e| format!("bad endpoint: {e}"))?;
    let ep = Endpoint::from_shared(format!("https://{}", hop.endpoint))
        .and_then(|e| e.tls_config(tls.client_config(&addr.ip().to_string())))
        .map_err(|e| format!("endpoint: {e}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(20));
    let channel = tokio::time::timeout(CONNECT_TIMEOUT, ep.connect())
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {}", chain(&e)))?;
    let mut client = TransferClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let mut stream = client
        .push(ReceiverStream::new(rx))
        .await
        .map_err(|s| format!("Push: {}", s.message()))?
        .into_inner();
    let mut acked = 0u64;
    loop {
        let next = tokio::time::timeout(LINK_IDLE, stream.message()).await;
        let ack = match next {
            Err(_) if sent.load(Ordering::Relaxed) > acked => {
                return Err(format!(
                    "went silent for {}s with chunks unacknowledged",
                    LINK_IDLE.as_secs()
                ));
            }
            Err(_) => continue,
            Ok(Err(s)) => return Err(format!("{:?}: {}", s.code(), s.message())),
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(a))) => a,
        };
        if ack.node == hop.transfer_id && ack.failed_node.is_empty() {
            acked += 1;
        }
        if acks.send(Ok(ack)).await.is_err() {
            return Ok(());
        }
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(offset: u32, wire_len: u32) -> pb::Chunk {
        pb::Chunk {
            data: vec![0; 4],
            wire_len,
            offset,
            ..Default::default()
        }
    }

    #[test]
    fn a_link_attached_mid_chunk_waits_for_the_next_chunk() {
        let mut joining = true;
        assert!(!admit(&mut joining, &part(4, 12)));
        assert!(!admit(&mut joining, &part(8, 12)));
        assert!(admit(&mut joining, &part(0, 8)), "next chunk's head");
        assert!(admit(&mut joining, &part(4, 8)), "and its other parts");
        let mut joining = true;
        assert!(admit(&mut joining, &part(0, 0)), "a whole chunk starts one");
    }

    /// fuzz/regressions/transfer_push/crash-relay-position-overflow: a plan
    /// at the last position (or a hop there) panicked adding 1.
    #[test]
    fn a_plan_at_the_last_position_is_refused() {
        let hop = |position| pb::RelayHop {
            endpoint: "127.0.0.1:7443".into(),
            position,
            ..Default::default()
        };
        let at_end = pb::RelayPlan {
            position: u32::MAX,
            children: vec![],
        };
        let err = hops(at_end).err().map(|s| s.message().to_owned());
        assert!(err.is_some_and(|m| m.contains("no room")));
        let mut last = hop(u32::MAX - 1);
        last.children.push(hop(u32::MAX));
        let deep = pb::RelayPlan {
            position: u32::MAX - 2,
            children: vec![last],
        };
        let err = hops(deep).err().map(|s| s.message().to_owned());
        assert!(
            err.as_ref().is_some_and(|m| m.contains("no room")),
            "{err:?}"
        );
        let ok = pb::RelayPlan {
            position: 0,
            children: vec![hop(1), hop(2)],
        };
        assert_eq!(hops(ok).map(|(p, h)| (p, h.len())).ok(), Some((0, 2)));
    }
}

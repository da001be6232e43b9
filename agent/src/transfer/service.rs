//! The `ferry.transfer.v1.Transfer` gRPC service: protocol glue around
//! plan / cache / apply. Blocking filesystem work runs on the blocking
//! pool; every stream is bounded.

use std::pin::Pin;
use std::sync::Arc;

use ferry_proto::transfer_pb as pb;
use ferry_shared::transfer::{ChunkHash, EntryKind, MAX_CHUNK_SIZE, Needs};
use ferry_shared::{EventKind, Phase};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::apply::apply;
use super::decode::{DecodedPlan, PlanDecoder};
use super::parts::{Assembler, Kind};
use super::plan::{plan, still_missing};
use super::relay::{self, AckTx, Downstream};
use super::stat_index::StatIndex;
use super::{Budget, ChunkCache, Session, Sessions, TransferConfig, TransferError, convert};
use crate::accept::TlsState;
use crate::authz::Caller;
use crate::events::EventBus;

/// Acks buffered per Push stream.
const ACK_BUFFER: usize = 64;
/// Largest message accepted (a chunk of MAX_CHUNK_SIZE plus framing).
pub const MAX_MESSAGE: usize = MAX_CHUNK_SIZE as usize + (64 << 10);

#[derive(Clone)]
pub struct TransferService {
    cache: ChunkCache,
    sessions: Sessions,
    budget: Budget,
    events: EventBus,
    commit_lock: Arc<tokio::sync::Mutex<()>>,
    /// Plans hold it shared while they decide what the cache has and open
    /// their session; post-commit eviction holds it exclusively, so it never
    /// removes a chunk a concurrent plan just counted as present.
    cache_gate: Arc<tokio::sync::RwLock<()>>,
    relay_tls: Option<TlsState>,
}

impl TransferService {
    pub fn new(config: &TransferConfig, events: EventBus) -> Self {
        Self {
            cache: ChunkCache::new(config.cache_dir.clone(), config.cache_max_bytes),
            sessions: Sessions::default(),
            budget: Budget::new(config.budget),
            events,
            commit_lock: Arc::new(tokio::sync::Mutex::new(())),
            cache_gate: Arc::new(tokio::sync::RwLock::new(())),
            relay_tls: None,
        }
    }

    /// After a commit the landed tree holds every chunk of `session`: their
    /// cache copies only double the node's disk use (and, on tmpfs-backed
    /// test nodes, memory), and the next plan reads them from the tree. Done
    /// only when no other transfer is open, under the exclusive cache gate.
    async fn evict_landed(&self, session: &Session) {
        let _gate = self.cache_gate.write().await;
        if !self.sessions.is_idle() {
            return;
        }
        let cache = self.cache.clone();
        let hashes: Vec<ChunkHash> = session
            .manifest
            .entries()
            .iter()
            .filter_map(|e| match &e.kind {
                EntryKind::File { chunks, .. } => Some(chunks.iter().copied()),
                _ => None,
            })
            .flatten()
            .collect();
        let res = blocking(move || Ok(cache.evict(hashes.iter()))).await;
        if let Err(e) = res {
            tracing::warn!(error = %e, "evicting landed chunks from the cache failed");
        }
    }

    /// The agent's own TLS identity, used to forward chunks to relay
    /// successors. Without it, relay plans are refused.
    pub fn with_relay_tls(mut self, tls: TlsState) -> Self {
        self.relay_tls = Some(tls);
        self
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TransferError> + Send + 'static,
) -> Result<T, TransferError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| TransferError::Task(e.to_string()))?
}

/// Checks a complete chunk from a Push stream (hash, claimed size,
/// encoding), decompresses it and stores it in `cache`: what the agent does
/// with every chunk it keeps. Public for the fuzz target
/// (`fuzz/fuzz_targets/transfer_push.rs`).
pub fn store_chunk(cache: &ChunkCache, c: pb::Chunk) -> Result<(ChunkHash, u32), TransferError> {
    let bad = |s: String| TransferError::BadChunk(s);
    let h = ChunkHash::from_slice(&c.hash).map_err(|e| bad(e.to_string()))?;
    if c.raw_len > MAX_CHUNK_SIZE {
        return Err(bad(format!("chunk {h} claims {} bytes", c.raw_len)));
    }
    match pb::ChunkEncoding::try_from(c.encoding) {
        Ok(pb::ChunkEncoding::Raw) => verify_and_put(cache, &h, c.raw_len, &c.data)?,
        Ok(pb::ChunkEncoding::Zstd) => DECOMPRESS.with_borrow_mut(|(dctx, raw)| {
            // One context and one buffer per blocking thread, reused: fresh
            // ones per chunk would be mapped and unmapped by musl's
            // allocator (page faults and TLB shootdowns per megabyte).
            let zerr = |e: std::io::Error| bad(format!("chunk {h}: zstd: {e}"));
            let d = match dctx {
                Some(d) => d,
                None => dctx.insert(zstd::bulk::Decompressor::new().map_err(zerr)?),
            };
            raw.clear();
            raw.reserve(c.raw_len as usize);
            d.decompress_to_buffer(&c.data, raw).map_err(zerr)?;
            verify_and_put(cache, &h, c.raw_len, raw)
        })?,
        Err(_) => return Err(bad(format!("chunk {h}: unknown encoding {}", c.encoding))),
    }
    Ok((h, c.raw_len))
}

type Decompress = (Option<zstd::bulk::Decompressor<'static>>, Vec<u8>);

thread_local! {
    static DECOMPRESS: std::cell::RefCell<Decompress> =
        const { std::cell::RefCell::new((None, Vec::new())) };
}

fn verify_and_put(
    cache: &ChunkCache,
    h: &ChunkHash,
    raw_len: u32,
    raw: &[u8],
) -> Result<(), TransferError> {
    if raw.len() != raw_len as usize || ChunkHash::of(raw) != *h {
        return Err(TransferError::BadChunk(format!(
            "chunk {h}: content does not match its sha256"
        )));
    }
    cache.put(h, raw)
}

/// Whether `caller` may push into session `id` on this node: the
/// coordinator always; another agent (a relay predecessor) only into a
/// transfer the coordinator planned here (Plan is the coordinator's only,
/// `authz.rs`), so a node's certificate never writes into its peers'
/// caches on its own.
fn may_push(caller: &Caller, id: &str, sessions: &Sessions) -> Result<(), Status> {
    match caller {
        Caller::Coordinator { .. } => Ok(()),
        Caller::Agent { name, serial } if id.is_empty() || sessions.get(id).is_none() => {
            Err(Status::permission_denied(format!(
                "relay push from `{name}` (serial {serial}): no transfer `{id}` was planned on this node by the coordinator"
            )))
        }
        Caller::Agent { .. } => Ok(()),
    }
}

/// Where a Push stream goes: the relay identity, the sessions and who calls.
struct Intake {
    cache: ChunkCache,
    tls: Option<TlsState>,
    sessions: Sessions,
    caller: Caller,
}

/// One Push stream: its session id, an optional relay plan, then chunks,
/// whole or in parts (`parts.rs`). Each frame is forwarded at once to the
/// children that need its chunk; a complete chunk is then stored if this
/// node needs it, and acknowledged (tagged with the session id). A relay
/// predecessor's stream is checked against the sessions first ([`may_push`]).
async fn receive(mut inbound: Streaming<pb::PushFrame>, intake: Intake, tx: AckTx) {
    let Intake {
        cache,
        tls,
        sessions,
        caller,
    } = intake;
    use pb::push_frame::Frame;
    let mut me = String::new();
    let mut position = None;
    let mut down: Option<Downstream> = None;
    let mut parts = Assembler::default();
    while let Some(frame) = inbound.next().await {
        let chunk = match frame.map(|f| f.frame) {
            Ok(Some(Frame::Chunk(c))) => c,
            Ok(Some(Frame::TransferId(id))) => {
                if let Err(s) = may_push(&caller, &id, &sessions) {
                    let _ = tx.send(Err(s)).await;
                    break;
                }
                me = id;
                continue;
            }
            Ok(Some(Frame::Relay(plan))) => {
                let res = relay::hops(plan).and_then(|(pos, hops)| {
                    may_push(&caller, &me, &sessions)?;
                    let tls = tls.as_ref().map(TlsState::material).ok_or_else(|| {
                        Status::failed_precondition("this agent has no TLS identity to relay with")
                    })?;
                    Ok((pos, Downstream::new(hops, tls, tx.clone())))
                });
                match res {
                    Ok((pos, d)) => {
                        position = Some(pos);
                        down = Some(d);
                        continue;
                    }
                    Err(s) => {
                        let _ = tx.send(Err(s)).await;
                        break;
                    }
                }
            }
            Ok(None) => continue,
            Err(s) => {
                // The upstream is gone; children keep what they got.
                tracing::debug!(status = %s, "push stream ended with an error");
                break;
            }
        };
        if let Err(s) = may_push(&caller, &me, &sessions) {
            let _ = tx.send(Err(s)).await;
            break;
        }
        let kind = match parts.check(&chunk) {
            Ok(Kind::Orphan) => continue,
            Ok(k) => k,
            Err(e) => {
                let _ = tx.send(Err(convert::error(&e))).await;
                break;
            }
        };
        let needs = Needs(chunk.needed_by.clone());
        if let Some(d) = down.as_mut() {
            d.forward(&chunk, &needs, kind).await;
        }
        let mine = match position {
            Some(p) => needs.get(p),
            None => true,
        };
        let Some(chunk) = parts.take(chunk, kind, mine) else {
            continue;
        };
        let ack = if mine {
            let cache = cache.clone();
            match blocking(move || store_chunk(&cache, chunk)).await {
                Ok((h, raw_len)) => Ok(pb::PushAck {
                    hash: h.0.to_vec(),
                    raw_len,
                    node: me.clone(),
                    ..Default::default()
                }),
                Err(e) => Err(convert::error(&e)),
            }
        } else {
            Ok(pb::PushAck {
                hash: chunk.hash,
                raw_len: chunk.raw_len,
                node: me.clone(),
                passed: true,
                ..Default::default()
            })
        };
        let failed = ack.is_err();
        if tx.send(ack).await.is_err() || failed {
            break;
        }
    }
    if let Some(d) = down {
        d.finish().await;
    }
}

type AckStream = Pin<Box<dyn Stream<Item = Result<pb::PushAck, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl pb::transfer_server::Transfer for TransferService {
    async fn plan(
        &self,
        req: Request<Streaming<pb::PlanRequest>>,
    ) -> Result<Response<pb::PlanReply>, Status> {
        let mut stream = req.into_inner();
        let first = match stream.next().await {
            Some(msg) => Some(msg?),
            None => None,
        };
        let mut decoder = PlanDecoder::start(first)?;
        // A re-plan of the same transfer replaces it; expired ones leave.
        self.sessions.remove(decoder.transfer_id());
        self.sessions.expire();
        let mut held = self.budget.reserve_entries(decoder.entry_count())?;
        while let Some(msg) = stream.next().await {
            decoder.add(msg?)?;
        }
        let DecodedPlan {
            transfer_id,
            operation_id: op,
            dest,
            prune,
            manifest,
            exclude,
        } = decoder.finish()?;
        let ev = self.events.event(&op, Phase::Transfer, EventKind::Started);
        self.events
            .publish(ev.message(format!("planning transfer to {dest}")));
        let cache = self.cache.clone();
        let gate = self.cache_gate.clone().read_owned().await;
        let op_id = op.clone();
        let planned = blocking(move || plan(op_id, dest, manifest, prune, &exclude, &cache)).await;
        let failed = |s: Status| {
            let ev = self.events.event(&op, Phase::Transfer, EventKind::Failed);
            self.events.publish(ev.message(s.message().to_owned()));
            s
        };
        let (session, out) = planned.map_err(|e| failed(convert::error(&e)))?;
        held.add_bytes(out.missing_bytes, &self.budget)
            .map_err(failed)?;
        self.sessions.insert(transfer_id, session, held);
        drop(gate);
        Ok(Response::new(pb::PlanReply {
            missing: out.missing.iter().map(|h| h.0.to_vec()).collect(),
            missing_bytes: out.missing_bytes,
            files_total: out.files_total,
            files_unchanged: out.files_unchanged,
            reused_bytes: out.reused_bytes,
            to_delete: out.to_delete,
        }))
    }

    type PushStream = AckStream;

    async fn push(
        &self,
        req: Request<Streaming<pb::PushFrame>>,
    ) -> Result<Response<Self::PushStream>, Status> {
        let caller = req
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Status::permission_denied("unauthenticated Push"))?;
        let intake = Intake {
            cache: self.cache.clone(),
            tls: self.relay_tls.clone(),
            sessions: self.sessions.clone(),
            caller,
        };
        let inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(ACK_BUFFER);
        tokio::spawn(receive(inbound, intake, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn commit(
        &self,
        req: Request<pb::CommitRequest>,
    ) -> Result<Response<pb::CommitReply>, Status> {
        let id = req.into_inner().transfer_id;
        let session = self
            .sessions
            .get(&id)
            .ok_or_else(|| convert::error(&TransferError::NoSession(id.clone())))?;
        let _guard = self.commit_lock.lock().await;
        let cache = self.cache.clone();
        let s = session.clone();
        let sid = id.clone();
        let res = blocking(move || {
            let missing = still_missing(&s, &cache);
            if missing > 0 {
                return Err(TransferError::MissingChunks { id: sid, missing });
            }
            let root = std::path::PathBuf::from(s.dest.as_str());
            let applied = apply(&root, &s.manifest, &s.diff, &cache)?;
            if let Err(e) = StatIndex::record(cache.dir(), &root, &s.manifest) {
                tracing::warn!(error = %e, "recording the stat index failed");
            }
            if let Err(e) = cache.trim() {
                tracing::warn!(error = %e, "trimming the chunk cache failed");
            }
            Ok(applied)
        })
        .await;
        let ev = |k| self.events.event(&session.op, Phase::Transfer, k);
        match res {
            Ok(a) => {
                self.sessions.remove(&id);
                self.evict_landed(&session).await;
                self.events.publish(
                    ev(EventKind::Finished)
                        .counter("files_written", a.files_written)
                        .counter("bytes_written", a.bytes_written)
                        .counter("deleted", a.deleted)
                        .message(format!("committed {}", session.dest)),
                );
                Ok(Response::new(convert::commit_reply(a)))
            }
            Err(e) => {
                self.events
                    .publish(ev(EventKind::Failed).message(e.to_string()));
                Err(convert::error(&e))
            }
        }
    }
}

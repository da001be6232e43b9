//! The agent's Push edge: a stream of `PushFrame`s as the agent's receive
//! loop handles them: relay plans validated, chunk parts checked and
//! reassembled, complete chunks verified, decompressed and stored in a
//! fresh chunk cache. Input: length-delimited messages.
#![no_main]

use ferry_agent::transfer::ChunkCache;
use ferry_agent::transfer::parts::{Assembler, Kind};
use ferry_agent::transfer::relay;
use ferry_agent::transfer::service::store_chunk;
use ferry_proto::transfer_pb as pb;
use ferry_shared::transfer::Needs;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    let mut frames = Vec::new();
    while !buf.is_empty() {
        match pb::PushFrame::decode_length_delimited(&mut buf) {
            Ok(pb::PushFrame { frame: Some(f) }) => frames.push(f),
            Ok(_) => {}
            Err(_) => return,
        }
    }
    let Some(dir) = ferry_fuzz::scratch_dir() else {
        return;
    };
    let cache = ChunkCache::new(dir.path().join("cache"), 64 << 20);
    let mut position = None;
    let mut parts = Assembler::default();
    for frame in frames {
        let chunk = match frame {
            pb::push_frame::Frame::Chunk(c) => c,
            pb::push_frame::Frame::TransferId(_) => continue,
            pb::push_frame::Frame::Relay(plan) => match relay::hops(plan) {
                Ok((pos, _hops)) => {
                    position = Some(pos);
                    continue;
                }
                Err(_) => return,
            },
        };
        let kind = match parts.check(&chunk) {
            Ok(Kind::Orphan) => continue,
            Ok(k) => k,
            Err(_) => return,
        };
        let mine = position.is_none_or(|p| Needs(chunk.needed_by.clone()).get(p));
        let Some(chunk) = parts.take(chunk, kind, mine) else {
            continue;
        };
        if mine && store_chunk(&cache, chunk).is_err() {
            return;
        }
    }
});

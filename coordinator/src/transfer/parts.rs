//! Cut-through parts, sending side: a relayed chunk goes out in parts so
//! every hop forwards a part as soon as it has it (`agent/src/transfer/
//! parts.rs` reassembles). A hop then adds the time of one part on the
//! link to the chain, not that of a whole compressed chunk (up to 1 MiB:
//! 0.8 s at 10 Mbit/s, 12 s over a 16-node chain).
//!
//! Parts cost CPU per frame on every hop, so they are only as small as
//! they need to be: what the parts add over the whole chain (depth × part
//! time) stays a fixed share of the transfer's own time, whatever the link
//! rate. Sizing by a measured rate instead would feed back on itself where
//! nodes are CPU-bound (slower → smaller parts → more CPU → slower).

use ferry_proto::transfer_pb as pb;

/// Smallest part.
pub const MIN_PART: usize = 64 << 10;
/// Largest part: a part this big carries any chunk whole.
pub const MAX_PART: usize = 2 << 20;
/// Bytes of the transfer per byte of part per hop: the chain's added
/// store-and-forward time is at most 1/SHARE of the time of the raw bytes
/// (a few % of the compressed transfer time).
const SHARE: u64 = 100;

/// The part size for sending `raw_bytes` down a tree `depth` hops deep:
/// within [`MIN_PART`, `MAX_PART`], a multiple of 16 KiB.
pub fn part_size(raw_bytes: u64, depth: usize) -> usize {
    let per_hop = raw_bytes / (SHARE * depth.max(1) as u64);
    let size = usize::try_from(per_hop).unwrap_or(MAX_PART);
    (size.clamp(MIN_PART, MAX_PART) >> 14) << 14
}

/// Splits a chunk into parts of at most `part_size` bytes of `data`
/// (`wire_len` = the whole length, `offset` = where each part starts); a
/// chunk that fits one part goes whole.
pub fn split(chunk: pb::Chunk, part_size: usize) -> Vec<pb::Chunk> {
    let part_size = part_size.max(1);
    if chunk.data.len() <= part_size {
        return vec![chunk];
    }
    let wire_len = chunk.data.len() as u32;
    chunk
        .data
        .chunks(part_size)
        .enumerate()
        .map(|(i, d)| pb::Chunk {
            hash: chunk.hash.clone(),
            raw_len: chunk.raw_len,
            encoding: chunk.encoding,
            data: d.to_vec(),
            needed_by: chunk.needed_by.clone(),
            wire_len,
            offset: (i * part_size) as u32,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_chunk_in_order() {
        let data: Vec<u8> = (0..MIN_PART * 2 + 5).map(|i| (i % 251) as u8).collect();
        let c = pb::Chunk {
            hash: vec![7; 32],
            raw_len: 1 << 20,
            encoding: pb::ChunkEncoding::Zstd as i32,
            data: data.clone(),
            needed_by: vec![0b101],
            ..Default::default()
        };
        let ps = split(c, MIN_PART);
        assert_eq!(ps.len(), 3);
        let mut joined = Vec::new();
        for p in &ps {
            assert_eq!(p.offset as usize, joined.len());
            assert_eq!(p.wire_len as usize, data.len());
            assert_eq!(
                (p.hash.clone(), p.needed_by.clone()),
                (vec![7; 32], vec![0b101])
            );
            assert!(p.data.len() <= MIN_PART);
            joined.extend_from_slice(&p.data);
        }
        assert_eq!(joined, data);
        // A chunk that fits one part goes whole.
        let small = pb::Chunk {
            data: vec![1; MIN_PART],
            ..Default::default()
        };
        let ps = split(small, MIN_PART);
        assert_eq!((ps.len(), ps[0].wire_len, ps[0].offset), (1, 0, 0));
    }

    #[test]
    fn parts_shrink_with_depth_and_grow_with_the_transfer() {
        const MB: u64 = 1 << 20;
        // 100 MB down a 16-node chain: the smallest parts.
        assert_eq!(part_size(100 * MB, 16), MIN_PART);
        // 400 MB: 16 × 256 KiB ≈ 1 % of the bytes.
        assert_eq!(part_size(400 * MB, 16), 256 << 10);
        // Shallow trees or big transfers: whole chunks.
        assert_eq!(part_size(400 * MB, 2), MAX_PART);
        assert_eq!(part_size(4096 * MB, 16), MAX_PART);
        // Tiny transfers and empty trees stay in bounds.
        assert_eq!(part_size(0, 0), MIN_PART);
        assert_eq!(part_size(u64::MAX, 1), MAX_PART);
        assert_eq!(part_size(300 * MB, 7) % (16 << 10), 0);
    }
}

//! Cut-through reassembly: a relayed chunk may arrive as parts (`Chunk`
//! frames with `wire_len` > 0), so each hop forwards a part as soon as it
//! has it instead of holding a whole compressed chunk first (at 10 Mbit/s a
//! 1 MiB chunk is 0.8 s of store-and-forward per hop). This module checks a
//! part against the chunk in progress and puts the chunk back together.
//!
//! Invariant: parts of one chunk are contiguous on a stream and in order;
//! anything else is a protocol error, except parts that begin mid-chunk on
//! a freshly (re)attached stream ("orphans"), which are dropped: the chunk
//! is then missing on that node and a repair round sends it again.

use ferry_proto::transfer_pb as pb;
use ferry_shared::transfer::MAX_CHUNK_SIZE;

use super::TransferError;

/// Largest `wire_len`: a chunk's raw bytes plus zstd's worst-case framing.
pub const MAX_WIRE_LEN: u32 = MAX_CHUNK_SIZE + (64 << 10);

/// What one frame is, relative to the chunk in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole chunk in one frame.
    Whole,
    /// A part, not the last of its chunk.
    Part,
    /// The last part: the chunk is complete.
    Last,
    /// A part of a chunk whose beginning this stream never carried.
    Orphan,
}

impl Kind {
    /// Whether this frame completes a chunk.
    pub fn completes(self) -> bool {
        matches!(self, Kind::Whole | Kind::Last)
    }
}

/// Whether `c` begins a chunk (a whole chunk or its first part): what a
/// freshly attached relay link waits for.
pub fn starts_chunk(c: &pb::Chunk) -> bool {
    c.wire_len == 0 || c.offset == 0
}

#[derive(Debug)]
struct InProgress {
    hash: Vec<u8>,
    raw_len: u32,
    encoding: i32,
    wire_len: u32,
    next: u32,
    /// Whether this node keeps the chunk (buffers its data).
    keep: bool,
    data: Vec<u8>,
}

/// The chunk being reassembled on one Push stream.
#[derive(Debug, Default)]
pub struct Assembler {
    cur: Option<InProgress>,
}

fn bad(s: String) -> TransferError {
    TransferError::BadChunk(s)
}

impl Assembler {
    /// Classifies `c` against the chunk in progress, refusing frames that
    /// break the part protocol. Changes nothing.
    pub fn check(&self, c: &pb::Chunk) -> Result<Kind, TransferError> {
        if c.wire_len == 0 {
            if self.cur.is_some() {
                return Err(bad(
                    "a whole chunk arrived in the middle of a chunk's parts".into(),
                ));
            }
            return Ok(Kind::Whole);
        }
        if c.wire_len > MAX_WIRE_LEN {
            return Err(bad(format!("chunk part claims {} wire bytes", c.wire_len)));
        }
        let end = u64::from(c.offset) + c.data.len() as u64;
        if c.data.is_empty() || end > u64::from(c.wire_len) {
            return Err(bad(format!(
                "chunk part {}+{} does not fit its {} wire bytes",
                c.offset,
                c.data.len(),
                c.wire_len
            )));
        }
        let last = end == u64::from(c.wire_len);
        match &self.cur {
            None if c.offset > 0 => Ok(Kind::Orphan),
            None => Ok(if last { Kind::Last } else { Kind::Part }),
            Some(p) => {
                if p.hash != c.hash
                    || p.raw_len != c.raw_len
                    || p.encoding != c.encoding
                    || p.wire_len != c.wire_len
                    || p.next != c.offset
                {
                    return Err(bad(format!(
                        "chunk part at offset {} does not continue the chunk in progress (next offset {})",
                        c.offset, p.next
                    )));
                }
                Ok(if last { Kind::Last } else { Kind::Part })
            }
        }
    }

    /// Takes a frame `check` classified as `kind`. Returns the complete
    /// chunk (its data reassembled when `keep`, else empty) when `kind`
    /// completes one.
    pub fn take(&mut self, mut c: pb::Chunk, kind: Kind, keep: bool) -> Option<pb::Chunk> {
        match kind {
            Kind::Orphan => None,
            Kind::Whole => Some(c),
            Kind::Part | Kind::Last => {
                let p = self.cur.get_or_insert_with(|| InProgress {
                    hash: c.hash.clone(),
                    raw_len: c.raw_len,
                    encoding: c.encoding,
                    wire_len: c.wire_len,
                    next: 0,
                    keep,
                    data: if keep {
                        Vec::with_capacity(c.wire_len as usize)
                    } else {
                        Vec::new()
                    },
                });
                p.next += c.data.len() as u32;
                if p.keep {
                    p.data.extend_from_slice(&c.data);
                }
                if kind != Kind::Last {
                    return None;
                }
                let p = self.cur.take()?;
                c.data = p.data;
                c.offset = 0;
                c.wire_len = 0;
                Some(c)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(hash: u8, data: &[u8], offset: u32, wire_len: u32) -> pb::Chunk {
        pb::Chunk {
            hash: vec![hash; 32],
            raw_len: 100,
            encoding: 1,
            data: data.to_vec(),
            needed_by: vec![],
            wire_len,
            offset,
        }
    }

    fn feed(
        a: &mut Assembler,
        c: pb::Chunk,
        keep: bool,
    ) -> Result<Option<pb::Chunk>, TransferError> {
        let k = a.check(&c)?;
        Ok(a.take(c, k, keep))
    }

    #[test]
    fn parts_reassemble_in_order() {
        let mut a = Assembler::default();
        assert!(feed(&mut a, part(1, b"abc", 0, 8), true).unwrap().is_none());
        assert!(feed(&mut a, part(1, b"de", 3, 8), true).unwrap().is_none());
        let c = feed(&mut a, part(1, b"fgh", 5, 8), true).unwrap().unwrap();
        assert_eq!(c.data, b"abcdefgh");
        assert_eq!((c.offset, c.wire_len), (0, 0));
        // The next chunk starts fresh.
        let c = feed(&mut a, part(2, b"xy", 0, 2), true).unwrap().unwrap();
        assert_eq!(c.data, b"xy");
    }

    #[test]
    fn a_pass_through_node_buffers_nothing() {
        let mut a = Assembler::default();
        assert!(
            feed(&mut a, part(1, b"abc", 0, 5), false)
                .unwrap()
                .is_none()
        );
        let c = feed(&mut a, part(1, b"de", 3, 5), false).unwrap().unwrap();
        assert!(c.data.is_empty());
        assert_eq!(c.hash, vec![1; 32]);
    }

    #[test]
    fn whole_chunks_pass_unchanged() {
        let mut a = Assembler::default();
        let c = feed(&mut a, part(1, b"whole", 0, 0), true)
            .unwrap()
            .unwrap();
        assert_eq!(c.data, b"whole");
    }

    #[test]
    fn mid_chunk_start_is_an_orphan_until_the_next_chunk() {
        let mut a = Assembler::default();
        let c = part(1, b"de", 3, 5);
        assert_eq!(a.check(&c).unwrap(), Kind::Orphan);
        assert!(a.take(c, Kind::Orphan, true).is_none());
        assert!(feed(&mut a, part(2, b"ok", 0, 2), true).unwrap().is_some());
    }

    #[test]
    fn broken_sequences_are_refused() {
        let mut a = Assembler::default();
        feed(&mut a, part(1, b"abc", 0, 8), true).unwrap();
        // Gap, other chunk, other length, whole chunk mid-way.
        assert!(a.check(&part(1, b"x", 4, 8)).is_err());
        assert!(a.check(&part(2, b"de", 3, 8)).is_err());
        assert!(a.check(&part(1, b"de", 3, 9)).is_err());
        assert!(a.check(&part(1, b"de", 0, 0)).is_err());
        assert!(a.check(&part(2, b"new", 0, 3)).is_err());
        // Overrun, empty, oversized.
        let b = Assembler::default();
        assert!(b.check(&part(1, b"abcd", 2, 5)).is_err());
        assert!(b.check(&part(1, b"", 0, 5)).is_err());
        assert!(b.check(&part(1, b"a", 0, MAX_WIRE_LEN + 1)).is_err());
    }
}

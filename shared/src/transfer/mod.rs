//! The distribution engine's domain: manifests of trees (paths, modes,
//! symlinks, chunk hashes), path validation and the tree diff. No IO: the
//! coordinator walks and hashes, agents scan and apply.

pub mod diff;
pub mod manifest;
pub mod path;
pub mod topology;

pub use diff::{Observed, ObservedKind, TreeDiff, diff};
pub use manifest::{
    ChunkHash, DEFAULT_CHUNK_SIZE, Entry, EntryKind, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, MIN_MTIME_NS,
    Manifest, ManifestError, Meta, chunk_count, chunk_len, mtime_ns,
};
pub use path::{DestRoot, PathError, RelPath};
pub use topology::{Needs, Topology, TreeNode, depth, layout};

/// Counter names of `transfer` events (docs/events.md).
pub mod counters {
    pub const FILES_TOTAL: &str = "files_total";
    pub const FILES_SENT: &str = "files_sent";
    pub const FILES_SKIPPED: &str = "files_skipped";
    pub const BYTES_TOTAL: &str = "bytes_total";
    pub const CONTENT_BYTES_TOTAL: &str = "content_bytes_total";
    pub const CONTENT_BYTES_SENT: &str = "content_bytes_sent";
    pub const WIRE_BYTES_SENT: &str = "wire_bytes_sent";
    pub const REUSED_BYTES: &str = "reused_bytes";
    pub const DELETED: &str = "deleted";
    pub const RATE_BPS: &str = "rate_bps";
    pub const DURATION_MS: &str = "duration_ms";
    pub const ETA_MS: &str = "eta_ms";
    /// What the coordinator itself put on the wire (relay topologies).
    pub const SENDER_CHUNKS_SENT: &str = "sender_chunks_sent";
    pub const SENDER_CONTENT_BYTES_SENT: &str = "sender_content_bytes_sent";
    pub const SENDER_WIRE_BYTES_SENT: &str = "sender_wire_bytes_sent";
    pub const RELAY_ROUNDS: &str = "relay_rounds";
}

//! The manifest: the tree a destination must become. Entries are sorted by
//! path, every parent appears earlier as a directory, and file content is
//! described by the sha256 of each fixed-size chunk.

use std::collections::HashSet;
use std::fmt;

use super::path::RelPath;

/// Default bytes per chunk: small enough that a small change in a large
/// file moves little, large enough that per-chunk overhead is negligible.
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 20;
pub const MIN_CHUNK_SIZE: u32 = 4 << 10;
pub const MAX_CHUNK_SIZE: u32 = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("chunk size {0} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}")]
    ChunkSize(u32),
    #[error("entry `{path}`: {reason}")]
    Entry { path: String, reason: String },
    #[error("a chunk hash must be 32 bytes, got {0}")]
    HashLen(usize),
}

/// sha256 of one chunk's raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkHash(pub [u8; 32]);

impl ChunkHash {
    pub fn from_slice(b: &[u8]) -> Result<Self, ManifestError> {
        <[u8; 32]>::try_from(b)
            .map(Self)
            .map_err(|_| ManifestError::HashLen(b.len()))
    }

    pub fn of(data: &[u8]) -> Self {
        use sha2::Digest;
        Self(sha2::Sha256::digest(data).into())
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for ChunkHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for ChunkHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkHash({})", &self.hex()[..12])
    }
}

/// Mode bits and numeric ownership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits (07777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File {
        size: u64,
        chunks: Vec<ChunkHash>,
        mtime_ns: i64,
    },
    Symlink {
        target: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: RelPath,
    pub meta: Meta,
    pub kind: EntryKind,
}

/// The oldest file mtime a manifest may carry: 1901-12-13T20:45:52Z
/// (-2^31 s), the oldest time ext4 and XFS store; an older one would be
/// clamped on the node and never match again.
pub const MIN_MTIME_NS: i64 = -(1 << 31) * 1_000_000_000;

/// A file time (`stat`'s seconds and nanoseconds) in nanoseconds since the
/// epoch, saturating where it does not fit an `i64` (before 1677 or after
/// 2262) instead of wrapping.
pub fn mtime_ns(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// Number of chunks of a file of `size` bytes.
pub fn chunk_count(size: u64, chunk_size: u32) -> u64 {
    size.div_ceil(u64::from(chunk_size.max(1)))
}

/// Length of chunk `index` of a file of `size` bytes.
pub fn chunk_len(size: u64, chunk_size: u32, index: u64) -> u64 {
    let cs = u64::from(chunk_size.max(1));
    size.saturating_sub(index * cs).min(cs)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    chunk_size: u32,
    entries: Vec<Entry>,
}

impl Manifest {
    /// Sorts `entries` by path and validates the tree.
    pub fn new(chunk_size: u32, mut entries: Vec<Entry>) -> Result<Self, ManifestError> {
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(ManifestError::ChunkSize(chunk_size));
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let mut dirs: HashSet<&str> = HashSet::new();
        let mut prev: Option<&str> = None;
        for e in &entries {
            let path = e.path.as_str();
            let bad = |reason: String| ManifestError::Entry {
                path: path.to_string(),
                reason,
            };
            if prev == Some(path) {
                return Err(bad("appears twice".into()));
            }
            prev = Some(path);
            if let Some(parent) = e.path.parent()
                && !dirs.contains(parent)
            {
                return Err(bad(format!(
                    "parent `{parent}` is not a directory of the manifest"
                )));
            }
            if e.meta.mode > 0o7777 {
                return Err(bad(format!(
                    "mode {:o} has non-permission bits",
                    e.meta.mode
                )));
            }
            match &e.kind {
                EntryKind::Dir => {
                    dirs.insert(path);
                }
                EntryKind::File { size, chunks, .. } => {
                    let want = chunk_count(*size, chunk_size);
                    if chunks.len() as u64 != want {
                        return Err(bad(format!(
                            "{} chunk hashes for {size} bytes (want {want})",
                            chunks.len()
                        )));
                    }
                }
                EntryKind::Symlink { target } => {
                    if target.is_empty() || target.contains('\0') {
                        return Err(bad("symlink target is empty or has a NUL byte".into()));
                    }
                }
            }
        }
        Ok(Self {
            chunk_size,
            entries,
        })
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }

    pub fn file_count(&self) -> u64 {
        self.entries
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::File { .. }))
            .count() as u64
    }

    /// Sum of file sizes.
    pub fn total_bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match e.kind {
                EntryKind::File { size, .. } => size,
                _ => 0,
            })
            .sum()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn file_times_saturate_instead_of_wrapping() {
        assert_eq!(mtime_ns(1_700_000_000, 5), 1_700_000_000_000_000_005);
        assert_eq!(mtime_ns(-1, 999_999_999), -1);
        assert_eq!(mtime_ns(i64::MAX, 999_999_999), i64::MAX);
        assert_eq!(mtime_ns(15_032_385_535, 0), i64::MAX); // ext4's last second, 2446
        assert_eq!(mtime_ns(i64::MIN, 0), i64::MIN);
        assert_eq!(MIN_MTIME_NS, -2_147_483_648_000_000_000);
    }

    pub fn meta() -> Meta {
        Meta {
            mode: 0o755,
            uid: 0,
            gid: 0,
        }
    }

    pub fn dir(p: &str) -> Entry {
        Entry {
            path: RelPath::new(p).unwrap(),
            meta: meta(),
            kind: EntryKind::Dir,
        }
    }

    pub fn file(p: &str, content: &[u8], cs: u32) -> Entry {
        let chunks = content.chunks(cs as usize).map(ChunkHash::of).collect();
        Entry {
            path: RelPath::new(p).unwrap(),
            meta: meta(),
            kind: EntryKind::File {
                size: content.len() as u64,
                chunks,
                mtime_ns: 0,
            },
        }
    }

    #[test]
    fn validates_tree_shape() {
        let cs = MIN_CHUNK_SIZE;
        let m = Manifest::new(cs, vec![file("a/f", b"x", cs), dir("a")]).unwrap();
        assert_eq!(m.entries()[0].path.as_str(), "a");
        assert_eq!(m.file_count(), 1);
        assert_eq!(m.total_bytes(), 1);
        let e = Manifest::new(cs, vec![file("a/f", b"x", cs)]).unwrap_err();
        assert!(e.to_string().contains("parent `a`"), "{e}");
        let e = Manifest::new(cs, vec![file("a", b"x", cs), file("a/f", b"", cs)]).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        let e = Manifest::new(cs, vec![dir("a"), dir("a")]).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        let mut f = file("f", &[0; 10], cs);
        if let EntryKind::File { size, .. } = &mut f.kind {
            *size = u64::from(cs) + 1;
        }
        assert!(Manifest::new(cs, vec![f]).is_err());
        assert!(Manifest::new(1, vec![]).is_err());
    }

    #[test]
    fn chunk_arithmetic() {
        assert_eq!(chunk_count(0, 4096), 0);
        assert_eq!(chunk_count(4096, 4096), 1);
        assert_eq!(chunk_count(4097, 4096), 2);
        assert_eq!(chunk_len(4097, 4096, 1), 1);
        assert_eq!(chunk_len(4097, 4096, 0), 4096);
    }
}

//! Errors of layer unpacking: which layer, which entry, which rule.

use std::fmt;
use std::io;

/// Identifies a layer in messages: its position in the stack and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerId {
    pub index: usize,
    pub digest: String,
}

impl fmt::Display for LayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} ({})", self.index, self.digest)
    }
}

/// The rule a hostile or unsupported entry broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rule {
    #[error("absolute path")]
    AbsolutePath,
    #[error("`..` path component")]
    ParentDir,
    #[error("NUL byte in path")]
    NulByte,
    #[error("path of {len} bytes exceeds the limit of {max}")]
    PathTooLong { len: usize, max: usize },
    #[error("path goes through the symlink {at:?}; symlinks are never followed")]
    ThroughSymlink { at: String },
    #[error("parent {at:?} exists and is not a directory")]
    ParentNotDir { at: String },
    #[error("{kind} nodes are not allowed in cluster images")]
    SpecialFile { kind: &'static str },
    #[error("mode {mode:o} has setuid/setgid bits (allow_setuid is off)")]
    Setuid { mode: u32 },
    #[error("entry of {size} bytes exceeds the per-entry limit of {max}")]
    EntryTooLarge { size: u64, max: u64 },
    #[error("layer content exceeds the total limit of {max} bytes")]
    TotalTooLarge { max: u64 },
    #[error("more than {max} entries in the layer")]
    TooManyEntries { max: u64 },
    #[error(
        "{kind} header of {size} bytes exceeds the limit of {max}: refused before reading it (a hostile or broken image; rebuild or re-pull it)"
    )]
    HeaderTooLarge {
        kind: &'static str,
        size: u64,
        max: u64,
    },
    #[error("hardlink target {target:?}: {reason}")]
    HardlinkTarget {
        target: String,
        reason: &'static str,
    },
    #[error("symlink target {target:?} climbs above the image root")]
    SymlinkEscape { target: String },
    #[error("whiteout {0}")]
    Whiteout(&'static str),
    #[error("unsupported entry type {0}")]
    UnsupportedType(String),
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer {layer}: entry {path:?} rejected: {rule}")]
    Rejected {
        layer: LayerId,
        path: String,
        rule: Rule,
    },
    #[error("layer {layer}: entry {path:?}: {op}: {source}")]
    Io {
        layer: LayerId,
        path: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("layer {layer}: reading the tar stream: {source}")]
    Read {
        layer: LayerId,
        #[source]
        source: io::Error,
    },
    #[error("unpack target {0:?} is not an existing directory")]
    Target(std::path::PathBuf),
}

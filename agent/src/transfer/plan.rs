//! Plan: scan the destination, diff it against the manifest, and work out
//! which chunks must come over the network. Chunks of changed files that
//! exist elsewhere on the node (renamed files, unchanged parts of changed
//! files) are copied into the cache now, so that Commit may overwrite or
//! delete their source.

use std::path::Path;
use std::time::Instant;

use ferry_shared::transfer::{ChunkHash, DestRoot, Manifest, ObservedKind, RelPath, diff};

use super::cache::ChunkCache;
use super::scan::{read_local, scan};
use super::stat_index::StatIndex;
use super::{Session, TransferError};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PlanOutcome {
    pub missing: Vec<ChunkHash>,
    pub missing_bytes: u64,
    pub files_total: u64,
    pub files_unchanged: u64,
    pub reused_bytes: u64,
    pub to_delete: u64,
    pub hashed_bytes: u64,
}

pub fn plan(
    op: String,
    dest: DestRoot,
    manifest: Manifest,
    prune: bool,
    exclude: &[RelPath],
    cache: &ChunkCache,
) -> Result<(Session, PlanOutcome), TransferError> {
    let root = Path::new(dest.as_str());
    let idx = StatIndex::load(cache.dir(), root, manifest.chunk_size());
    let s = scan(root, &manifest, prune, exclude, &idx)?;
    let d = diff(&manifest, &s.observed, prune);
    if !prune {
        // Without prune (a single-file copy) a directory in the way is an
        // operator mistake, never something to remove.
        let dirs: std::collections::HashSet<&str> = s
            .observed
            .iter()
            .filter(|o| matches!(o.kind, ObservedKind::Dir))
            .map(|o| o.path.as_str())
            .collect();
        if let Some(p) = d.delete.iter().find(|p| dirs.contains(p.as_str())) {
            return Err(TransferError::DirectoryInTheWay(root.join(p)));
        }
    }
    let mut out = PlanOutcome {
        files_total: manifest.file_count(),
        files_unchanged: d.unchanged_files.len() as u64,
        to_delete: d.delete.len() as u64,
        hashed_bytes: s.hashed_bytes,
        ..PlanOutcome::default()
    };
    for (h, len) in d.needed_chunks(&manifest) {
        if cache.has(&h, len) {
            out.reused_bytes += len;
            continue;
        }
        if let Some(loc) = s.local.get(&h)
            && let Some(data) = read_local(loc, &h)?
        {
            cache.put(&h, &data)?;
            out.reused_bytes += len;
            continue;
        }
        out.missing.push(h);
        out.missing_bytes += len;
    }
    let session = Session {
        op,
        dest,
        manifest,
        diff: d,
        created: Instant::now(),
    };
    Ok((session, out))
}

/// The chunks of `session` not (or no longer) in the cache.
pub fn still_missing(session: &Session, cache: &ChunkCache) -> usize {
    session
        .diff
        .needed_chunks(&session.manifest)
        .iter()
        .filter(|(h, len)| !cache.has(h, *len))
        .count()
}

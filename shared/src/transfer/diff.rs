//! Tree diff: what a destination must do to become the manifest, given
//! what a node observed there. Pure: the agent scans, this decides.

use std::collections::{HashMap, HashSet};

use super::manifest::{ChunkHash, EntryKind, Manifest, Meta};

/// What a node found at one path under the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObservedKind {
    Dir,
    File {
        size: u64,
        chunks: Vec<ChunkHash>,
        mtime_ns: i64,
    },
    Symlink {
        target: String,
    },
    /// Sockets, fifos, devices: always replaced or removed.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Relative to the destination.
    pub path: String,
    pub meta: Meta,
    pub kind: ObservedKind,
}

/// The work to do, as indexes into the manifest's entries (in manifest
/// order, so parents come before children) and observed paths to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeDiff {
    /// Remove these (recursively); only the top-most of a removed subtree
    /// is listed. Includes entries whose type differs from the manifest.
    pub delete: Vec<String>,
    /// Directories to create.
    pub create_dirs: Vec<usize>,
    /// Files whose content must be written (missing or different).
    pub write_files: Vec<usize>,
    /// Symlinks to (re)create.
    pub write_symlinks: Vec<usize>,
    /// Present with the right content, but mode/owner/mtime differ.
    pub fix_meta: Vec<usize>,
    /// Files already exactly right.
    pub unchanged_files: Vec<usize>,
}

fn same_type(want: &EntryKind, have: &ObservedKind) -> bool {
    matches!(
        (want, have),
        (EntryKind::Dir, ObservedKind::Dir)
            | (EntryKind::File { .. }, ObservedKind::File { .. })
            | (EntryKind::Symlink { .. }, ObservedKind::Symlink { .. })
    )
}

/// The proper ancestors of a '/'-separated path, nearest first.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut cur = path;
    std::iter::from_fn(move || {
        let (parent, _) = cur.rsplit_once('/')?;
        cur = parent;
        Some(parent)
    })
}

/// Computes the diff. With `prune`, observed entries absent from the
/// manifest are deleted; without it they are left alone.
pub fn diff(manifest: &Manifest, observed: &[Observed], prune: bool) -> TreeDiff {
    let wanted: HashMap<&str, usize> = manifest
        .entries()
        .iter()
        .enumerate()
        .map(|(i, e)| (e.path.as_str(), i))
        .collect();
    let mut sorted: Vec<&Observed> = observed.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut out = TreeDiff::default();
    let mut present: HashMap<usize, &Observed> = HashMap::new();
    let mut deleted_roots: HashSet<&str> = HashSet::new();
    for o in sorted {
        if ancestors(&o.path).any(|a| deleted_roots.contains(a)) {
            continue;
        }
        let keep = match wanted.get(o.path.as_str()) {
            Some(&i) if same_type(&manifest.entries()[i].kind, &o.kind) => {
                present.insert(i, o);
                true
            }
            Some(_) => false,
            None => !prune,
        };
        if !keep {
            out.delete.push(o.path.clone());
            deleted_roots.insert(&o.path);
        }
    }
    for (i, e) in manifest.entries().iter().enumerate() {
        let Some(o) = present.get(&i) else {
            match e.kind {
                EntryKind::Dir => out.create_dirs.push(i),
                EntryKind::File { .. } => out.write_files.push(i),
                EntryKind::Symlink { .. } => out.write_symlinks.push(i),
            }
            continue;
        };
        match (&e.kind, &o.kind) {
            (EntryKind::Dir, _) => {
                if o.meta != e.meta {
                    out.fix_meta.push(i);
                }
            }
            (
                EntryKind::File {
                    size,
                    chunks,
                    mtime_ns,
                },
                ObservedKind::File {
                    size: hs,
                    chunks: hc,
                    mtime_ns: hm,
                },
            ) => {
                if size != hs || chunks != hc {
                    out.write_files.push(i);
                } else if o.meta != e.meta || mtime_ns != hm {
                    out.fix_meta.push(i);
                    out.unchanged_files.push(i);
                } else {
                    out.unchanged_files.push(i);
                }
            }
            (EntryKind::Symlink { target }, ObservedKind::Symlink { target: ht }) => {
                if target != ht {
                    out.write_symlinks.push(i);
                } else if (o.meta.uid, o.meta.gid) != (e.meta.uid, e.meta.gid) {
                    out.fix_meta.push(i);
                }
            }
            // same_type() guarantees the pairs above.
            _ => out.write_files.push(i),
        }
    }
    out
}

impl TreeDiff {
    /// The distinct chunks of the files to write, in first-use order.
    pub fn needed_chunks(&self, manifest: &Manifest) -> Vec<(ChunkHash, u64)> {
        let cs = manifest.chunk_size();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for &i in &self.write_files {
            if let Some(EntryKind::File { size, chunks, .. }) =
                manifest.entries().get(i).map(|e| &e.kind)
            {
                for (n, h) in chunks.iter().enumerate() {
                    if seen.insert(*h) {
                        out.push((*h, super::manifest::chunk_len(*size, cs, n as u64)));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;

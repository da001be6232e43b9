//! What a destination holds: every entry under it (or only the manifest's
//! paths), file content hashed chunk by chunk, and an index of where each
//! chunk can be read locally (content reuse across renames and changes).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ferry_shared::transfer::{ChunkHash, Manifest, Meta, Observed, ObservedKind, RelPath};

use super::TransferError;
use super::stat_index::StatIndex;

/// Where a chunk's bytes can be read on this node.
#[derive(Debug, Clone)]
pub struct LocalChunk {
    pub path: PathBuf,
    pub offset: u64,
    pub len: u64,
}

#[derive(Debug, Default)]
pub struct Scan {
    pub observed: Vec<Observed>,
    pub local: HashMap<ChunkHash, LocalChunk>,
    pub hashed_bytes: u64,
    /// Bytes of files trusted from the stat index (not read).
    pub trusted_bytes: u64,
}

fn io(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> TransferError {
    let path = path.to_path_buf();
    move |source| TransferError::Io { what, path, source }
}

/// Scans `root`. `full`: walk everything under it except the `exclude`d
/// paths (and what is under them); otherwise only the manifest's own paths
/// are looked at.
pub fn scan(
    root: &Path,
    manifest: &Manifest,
    full: bool,
    exclude: &[RelPath],
    idx: &StatIndex,
) -> Result<Scan, TransferError> {
    let mut s = Scan::default();
    let cs = manifest.chunk_size() as usize;
    let mut buf = vec![0u8; cs];
    match std::fs::symlink_metadata(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(s),
        Err(e) => return Err(io(root, "inspect destination")(e)),
        Ok(m) if m.file_type().is_symlink() => {
            super::beneath::refuse_symlink_root(root)?;
        }
        Ok(m) if !m.is_dir() => {
            return Err(TransferError::NotADirectory(root.to_path_buf()));
        }
        Ok(_) => {}
    }
    if full {
        let mut stack = vec![(root.to_path_buf(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            let rd = std::fs::read_dir(&dir).map_err(io(&dir, "list destination dir"))?;
            for ent in rd {
                let ent = ent.map_err(io(&dir, "list destination dir"))?;
                let name = ent.file_name().to_string_lossy().into_owned();
                let child_rel = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                if exclude.iter().any(|x| x.as_str() == child_rel) {
                    continue;
                }
                let path = ent.path();
                let is_dir = observe(&mut s, &path, child_rel.clone(), &mut buf, idx)?;
                if is_dir {
                    stack.push((path, child_rel));
                }
            }
        }
    } else {
        // Parents come first in a manifest: below a path that is missing
        // or not a real directory (a symlink) nothing is looked at, so
        // nothing is ever observed through a symlink.
        let mut blocked: HashSet<&str> = HashSet::new();
        for e in manifest.entries() {
            let rel = e.path.as_str();
            if e.path.parent().is_some_and(|p| blocked.contains(p)) {
                blocked.insert(rel);
                continue;
            }
            let path = root.join(rel);
            let is_dir = match std::fs::symlink_metadata(&path) {
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => false,
                _ => observe(&mut s, &path, e.path.to_string(), &mut buf, idx)?,
            };
            if !is_dir {
                blocked.insert(rel);
            }
        }
    }
    Ok(s)
}

/// Records one path; returns whether it is a directory to descend into.
fn observe(
    s: &mut Scan,
    path: &Path,
    rel: String,
    buf: &mut [u8],
    idx: &StatIndex,
) -> Result<bool, TransferError> {
    let m = std::fs::symlink_metadata(path).map_err(io(path, "inspect"))?;
    let ft = m.file_type();
    let meta = Meta {
        mode: m.permissions().mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
    };
    let kind = if ft.is_dir() {
        ObservedKind::Dir
    } else if ft.is_symlink() {
        let t = std::fs::read_link(path).map_err(io(path, "read symlink"))?;
        ObservedKind::Symlink {
            target: t.to_string_lossy().into_owned(),
        }
    } else if ft.is_file() {
        let chunks = match idx.lookup(&rel, &m) {
            Some(known) => {
                let cs = buf.len() as u64;
                for (i, h) in known.iter().enumerate() {
                    let offset = i as u64 * cs;
                    s.local.entry(*h).or_insert_with(|| LocalChunk {
                        path: path.to_path_buf(),
                        offset,
                        len: m.len().saturating_sub(offset).min(cs),
                    });
                }
                s.trusted_bytes += m.len();
                known.to_vec()
            }
            None => hash_file(s, path, buf)?,
        };
        ObservedKind::File {
            size: m.len(),
            chunks,
            mtime_ns: ferry_shared::transfer::mtime_ns(m.mtime(), m.mtime_nsec()),
        }
    } else {
        ObservedKind::Other
    };
    let meta = if matches!(kind, ObservedKind::Symlink { .. }) {
        Meta {
            mode: 0o777,
            ..meta
        }
    } else {
        meta
    };
    let is_dir = matches!(kind, ObservedKind::Dir);
    s.observed.push(Observed {
        path: rel,
        meta,
        kind,
    });
    Ok(is_dir)
}

fn hash_file(s: &mut Scan, path: &Path, buf: &mut [u8]) -> Result<Vec<ChunkHash>, TransferError> {
    let mut f = std::fs::File::open(path).map_err(io(path, "open"))?;
    let mut chunks = Vec::new();
    let mut offset = 0u64;
    loop {
        let n = read_full(&mut f, buf).map_err(io(path, "read"))?;
        if n == 0 {
            break;
        }
        let h = ChunkHash::of(&buf[..n]);
        s.local.entry(h).or_insert_with(|| LocalChunk {
            path: path.to_path_buf(),
            offset,
            len: n as u64,
        });
        chunks.push(h);
        offset += n as u64;
        s.hashed_bytes += n as u64;
        if n < buf.len() {
            break;
        }
    }
    Ok(chunks)
}

/// Reads until `buf` is full or EOF.
pub fn read_full(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads one chunk from where the scan saw it and checks its hash.
pub fn read_local(c: &LocalChunk, want: &ChunkHash) -> Result<Option<Vec<u8>>, TransferError> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::open(&c.path).map_err(io(&c.path, "open"))?;
    f.seek(SeekFrom::Start(c.offset))
        .map_err(io(&c.path, "seek"))?;
    let mut buf = vec![0u8; usize::try_from(c.len).unwrap_or(0)];
    let n = read_full(&mut f, &mut buf).map_err(io(&c.path, "read"))?;
    buf.truncate(n);
    Ok((ChunkHash::of(&buf) == *want).then_some(buf))
}

//! The sending side's view of a tree: walk SRC (never following symlinks),
//! hash every file chunk by chunk (streaming, one chunk in memory), and
//! remember where each chunk can be read back.
//!
//! Invariant (hash once): a chunk is hashed by the walk; [`load_chunk`]
//! hashes it again only when its file's stamp (device, inode, size, mtime,
//! ctime), taken from the descriptor before and after the walk's read and
//! again before and after the load's read, is not the same throughout —
//! then a mismatch is reported as a source change. Agents verify every
//! chunk on arrival regardless, so a change this misses (a same-size
//! rewrite within one timestamp tick) is refused there, never stored.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ferry_shared::transfer::{ChunkHash, DestRoot, Entry, EntryKind, Manifest, Meta, RelPath};

use super::TransferError;

/// Where a chunk's bytes are on the sending machine.
#[derive(Debug, Clone)]
pub struct ChunkLoc {
    pub path: PathBuf,
    pub offset: u64,
    pub len: u32,
    /// The file's stamp while the walk hashed it, if it held still.
    pub stamp: Option<FileStamp>,
}

/// What identifies one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    fn of(f: &std::fs::File) -> Option<Self> {
        let m = f.metadata().ok()?;
        Some(Self {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

#[derive(Debug)]
pub struct Source {
    pub manifest: Manifest,
    pub dest: DestRoot,
    /// Remove what is not in the manifest (directory sources only).
    pub prune: bool,
    pub chunks: HashMap<ChunkHash, ChunkLoc>,
    /// Special files (sockets, fifos, devices) left out.
    pub skipped_special: u64,
    /// Paths under the destination the transfer leaves alone (not sent,
    /// not pruned).
    pub exclude: Vec<RelPath>,
}

/// What of a directory SRC is sent, and how.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub chunk_size: u32,
    /// Mirror: remove what is not in SRC (directory sources). Off by
    /// default: only trees ferry owns (the pipeline's rootfs, `scp
    /// --delete`) are pruned.
    pub prune: bool,
    /// Send the source files' uid/gid; off by default, every entry is sent
    /// as 0:0 (root on the nodes), whoever runs the coordinator.
    pub preserve_owner: bool,
    /// Relative paths left out of the manifest and protected from pruning.
    pub exclude: Vec<RelPath>,
    /// Only these relative subtrees (and their parent directories); empty
    /// means everything.
    pub only: Vec<RelPath>,
    /// Files whose whole content must hash to a sha256 their relative path
    /// names (registry blobs): `Some(digest)` for such a path. Checked in
    /// the walk's single read; a mismatch refuses the whole source.
    pub expect_sha256: Option<ExpectSha256>,
}

/// The whole-file sha256 a relative path promises, if it promises one.
pub type ExpectSha256 = fn(&str) -> Option<[u8; 32]>;

impl BuildOptions {
    pub fn new(chunk_size: u32) -> Self {
        Self {
            chunk_size,
            prune: false,
            preserve_owner: false,
            exclude: Vec::new(),
            only: Vec::new(),
            expect_sha256: None,
        }
    }

    /// Whether `rel` is walked into / sent.
    fn wanted(&self, rel: &str) -> bool {
        let under = |p: &RelPath| {
            let p = p.as_str();
            rel == p || rel.starts_with(p) && rel.as_bytes().get(p.len()) == Some(&b'/')
        };
        let above = |p: &RelPath| {
            let p = p.as_str();
            p.starts_with(rel) && p.as_bytes().get(rel.len()) == Some(&b'/')
        };
        if self.exclude.iter().any(under) {
            return false;
        }
        self.only.is_empty() || self.only.iter().any(|p| under(p) || above(p))
    }
}

fn io(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> TransferError {
    let path = path.to_path_buf();
    move |source| TransferError::Io { what, path, source }
}

struct Walk {
    chunk_size: u32,
    buf: Vec<u8>,
    entries: Vec<Entry>,
    chunks: HashMap<ChunkHash, ChunkLoc>,
    skipped_special: u64,
    expect_sha256: Option<ExpectSha256>,
    preserve_owner: bool,
    /// Files whose content does not hash to the digest their path names:
    /// (path, expected, actual).
    bad_digests: Vec<(PathBuf, [u8; 32], [u8; 32])>,
}

/// Builds the manifest of `src` for destination `dst`. A directory `src`
/// is copied into `dst` (nothing removed: see [`BuildOptions::prune`]); a
/// file `src` becomes the file `dst` (nothing else at its destination is
/// touched). Entries are owned by 0:0.
pub fn build(src: &Path, dst: &str, chunk_size: u32) -> Result<Source, TransferError> {
    build_with(src, dst, &BuildOptions::new(chunk_size))
}

/// [`build`] with exclusions, a subtree selection, and prune on or off.
pub fn build_with(src: &Path, dst: &str, opts: &BuildOptions) -> Result<Source, TransferError> {
    let chunk_size = opts.chunk_size;
    let md = std::fs::metadata(src).map_err(io(src, "read source"))?;
    let dest = DestRoot::new(dst).map_err(TransferError::Path)?;
    let mut w = Walk {
        chunk_size,
        buf: vec![0; chunk_size as usize],
        entries: Vec::new(),
        chunks: HashMap::new(),
        skipped_special: 0,
        expect_sha256: opts.expect_sha256,
        preserve_owner: opts.preserve_owner,
        bad_digests: Vec::new(),
    };
    let (dest, prune) = if md.is_dir() {
        let mut stack = vec![(src.to_path_buf(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            for ent in std::fs::read_dir(&dir).map_err(io(&dir, "list"))? {
                let ent = ent.map_err(io(&dir, "list"))?;
                let name = ent
                    .file_name()
                    .into_string()
                    .map_err(|n| TransferError::NotUtf8(dir.join(n)))?;
                let child = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                if !opts.wanted(&child) {
                    continue;
                }
                if w.add(&ent.path(), &child)? {
                    stack.push((ent.path(), child));
                }
            }
        }
        (dest, opts.prune)
    } else {
        let (parent, name) = dest
            .as_str()
            .rsplit_once('/')
            .unwrap_or(("", dest.as_str()));
        let parent = if parent.is_empty() { "/" } else { parent };
        let parent = DestRoot::new(parent).map_err(TransferError::Path)?;
        w.add(src, name)?;
        (parent, false)
    };
    if let Some((path, expected, actual)) = w.bad_digests.first() {
        return Err(TransferError::DigestMismatch {
            path: path.clone(),
            expected: hex::encode(expected),
            actual: hex::encode(actual),
            others: w.bad_digests.len() - 1,
        });
    }
    let manifest = Manifest::new(chunk_size, w.entries)?;
    Ok(Source {
        manifest,
        dest,
        prune,
        chunks: w.chunks,
        skipped_special: w.skipped_special,
        exclude: if md.is_dir() {
            opts.exclude.clone()
        } else {
            Vec::new()
        },
    })
}

impl Walk {
    /// Adds one path (following `src` itself if it is the top-level file);
    /// returns whether it is a directory to descend into.
    fn add(&mut self, path: &Path, rel: &str) -> Result<bool, TransferError> {
        let m = std::fs::symlink_metadata(path).map_err(io(path, "inspect"))?;
        let rel = RelPath::new(rel).map_err(TransferError::Path)?;
        let (uid, gid) = if self.preserve_owner {
            (m.uid(), m.gid())
        } else {
            (0, 0)
        };
        let meta = Meta {
            mode: m.permissions().mode() & 0o7777,
            uid,
            gid,
        };
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_symlink() {
            let t = std::fs::read_link(path).map_err(io(path, "read symlink"))?;
            let target = t
                .into_os_string()
                .into_string()
                .map_err(|_| TransferError::NotUtf8(path.to_path_buf()))?;
            EntryKind::Symlink { target }
        } else if ft.is_file() {
            let expected = self.expect_sha256.and_then(|f| f(rel.as_str()));
            let (chunks, actual) = self.hash(path, expected.is_some())?;
            if let (Some(e), Some(a)) = (expected, actual)
                && e != a
            {
                self.bad_digests.push((path.to_path_buf(), e, a));
            }
            EntryKind::File {
                size: m.len(),
                chunks,
                mtime_ns: ferry_shared::transfer::mtime_ns(m.mtime(), m.mtime_nsec()),
            }
        } else {
            self.skipped_special += 1;
            return Ok(false);
        };
        let is_dir = matches!(kind, EntryKind::Dir);
        self.entries.push(Entry {
            path: rel,
            meta,
            kind,
        });
        Ok(is_dir)
    }

    /// Chunk hashes of `path`, and with `whole` its whole-file sha256,
    /// computed from the same read.
    fn hash(
        &mut self,
        path: &Path,
        whole: bool,
    ) -> Result<(Vec<ChunkHash>, Option<[u8; 32]>), TransferError> {
        use sha2::Digest;
        let mut f = std::fs::File::open(path).map_err(io(path, "open"))?;
        let before = FileStamp::of(&f);
        let mut file_hash = whole.then(sha2::Sha256::new);
        let mut out = Vec::new();
        let mut fresh = Vec::new();
        let mut offset = 0u64;
        loop {
            let n = read_full(&mut f, &mut self.buf).map_err(io(path, "read"))?;
            if n == 0 {
                break;
            }
            let h = ChunkHash::of(&self.buf[..n]);
            if let Some(w) = file_hash.as_mut() {
                w.update(&self.buf[..n]);
            }
            self.chunks.entry(h).or_insert_with(|| {
                fresh.push(h);
                ChunkLoc {
                    path: path.to_path_buf(),
                    offset,
                    len: n as u32,
                    stamp: None,
                }
            });
            out.push(h);
            offset += n as u64;
            if n < self.chunk_size as usize {
                break;
            }
        }
        let after = FileStamp::of(&f);
        if before.is_some() && before == after {
            for h in fresh {
                if let Some(loc) = self.chunks.get_mut(&h) {
                    loc.stamp = after;
                }
            }
        }
        Ok((out, file_hash.map(|w| w.finalize().into())))
    }
}

fn read_full(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
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

/// Reads a chunk back, verifies it (by stamp, else by hash: see the
/// module's invariant) and compresses it with zstd (raw when compression
/// does not help). Returns (encoding is zstd, bytes).
pub fn load_chunk(loc: &ChunkLoc, want: &ChunkHash) -> Result<(bool, Vec<u8>), TransferError> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::open(&loc.path).map_err(io(&loc.path, "open"))?;
    let before = FileStamp::of(&f);
    f.seek(SeekFrom::Start(loc.offset))
        .map_err(io(&loc.path, "seek"))?;
    let mut buf = vec![0u8; loc.len as usize];
    let n = read_full(&mut f, &mut buf).map_err(io(&loc.path, "read"))?;
    let unchanged = loc.stamp.is_some() && before == loc.stamp && FileStamp::of(&f) == loc.stamp;
    if n != buf.len() || (!unchanged && ChunkHash::of(&buf) != *want) {
        return Err(TransferError::SourceChanged(loc.path.clone()));
    }
    let z = zstd::bulk::compress(&buf, 3).map_err(io(&loc.path, "compress"))?;
    Ok(if z.len() < buf.len() {
        (true, z)
    } else {
        (false, buf)
    })
}

/// Loads running at once per stream, whatever the core count.
pub const MAX_LOADS: usize = 4;

/// A chunk read back, verified and encoded for the wire.
#[derive(Debug)]
pub struct Loaded {
    pub hash: ChunkHash,
    pub raw_len: u32,
    pub zstd: bool,
    pub data: Vec<u8>,
}

/// Ordered, bounded parallel [`load_chunk`]s on the blocking pool: at most
/// [`Loads::width`] run (and are held in memory) at once, and results come
/// out in the order they were started.
#[derive(Debug)]
pub struct Loads {
    width: usize,
    running: std::collections::VecDeque<tokio::task::JoinHandle<Result<Loaded, TransferError>>>,
}

impl Default for Loads {
    fn default() -> Self {
        Self::new()
    }
}

impl Loads {
    /// As wide as the machine's cores, at most [`MAX_LOADS`].
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            width: cores.clamp(1, MAX_LOADS),
            running: std::collections::VecDeque::new(),
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    /// Whether another load may start.
    pub fn has_room(&self) -> bool {
        self.running.len() < self.width
    }

    pub fn start(&mut self, hash: ChunkHash, loc: ChunkLoc) {
        self.running.push_back(tokio::task::spawn_blocking(move || {
            let (zstd, data) = load_chunk(&loc, &hash)?;
            Ok(Loaded {
                hash,
                raw_len: loc.len,
                zstd,
                data,
            })
        }));
    }

    /// The oldest load's result; `None` when nothing runs.
    pub async fn next(&mut self) -> Option<Result<Loaded, TransferError>> {
        let h = self.running.pop_front()?;
        Some(h.await.unwrap_or_else(|e| {
            Err(TransferError::Protocol {
                endpoint: String::new(),
                detail: format!("chunk reader failed: {e}"),
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_shared::transfer::MIN_CHUNK_SIZE;

    #[test]
    fn builds_a_directory_manifest_and_reads_chunks_back() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("a/empty")).unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 7) as u8).collect();
        std::fs::write(root.join("a/f"), &data).unwrap();
        std::os::unix::fs::symlink("a/f", root.join("l")).unwrap();
        let s = build(root, "/opt/x/", MIN_CHUNK_SIZE).unwrap();
        assert_eq!(s.dest.as_str(), "/opt/x");
        assert!(!s.prune, "a copy never prunes unless asked");
        let paths: Vec<&str> = s
            .manifest
            .entries()
            .iter()
            .map(|e| e.path.as_str())
            .collect();
        assert_eq!(paths, ["a", "a/empty", "a/f", "l"]);
        assert_eq!(s.manifest.total_bytes(), 10_000);
        let EntryKind::File { chunks, .. } = &s.manifest.entries()[2].kind else {
            panic!()
        };
        assert_eq!(chunks.len(), 3);
        let (_, bytes) = load_chunk(&s.chunks[&chunks[2]], &chunks[2]).unwrap();
        assert!(
            bytes.len() < 10_000 - 2 * MIN_CHUNK_SIZE as usize,
            "compressed"
        );
        assert!(s.chunks[&chunks[0]].stamp.is_some(), "walked a still file");
        // Same size, other bytes, a tick later: the stamp catches it.
        std::thread::sleep(std::time::Duration::from_millis(30));
        let mut other = data.clone();
        other[0] ^= 1;
        std::fs::write(root.join("a/f"), &other).unwrap();
        let e = load_chunk(&s.chunks[&chunks[0]], &chunks[0]).unwrap_err();
        assert!(e.to_string().contains("changed while"), "{e}");
        std::fs::write(root.join("a/f"), b"changed").unwrap();
        let e = load_chunk(&s.chunks[&chunks[0]], &chunks[0]).unwrap_err();
        assert!(e.to_string().contains("changed while"), "{e}");
    }

    #[test]
    fn entries_are_root_owned_unless_owners_are_preserved() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("t");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/f"), b"x").unwrap();
        std::fs::set_permissions(root.join("sub/f"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        // Whoever runs this (a uid-1000 bastion user or root), the files are
        // owned by someone; the manifest must not carry that owner.
        let owner = |p: &Path| {
            let m = std::fs::metadata(p).unwrap();
            (m.uid(), m.gid())
        };
        if rustix::process::geteuid().is_root() {
            for p in [root.join("sub"), root.join("sub/f")] {
                std::os::unix::fs::chown(&p, Some(1000), Some(1000)).unwrap();
            }
        }
        let src_owner = owner(&root.join("sub/f"));
        let s = build(&root, "/opt/x", MIN_CHUNK_SIZE).unwrap();
        for e in s.manifest.entries() {
            assert_eq!((e.meta.uid, e.meta.gid), (0, 0), "{}", e.path);
        }
        assert_eq!(s.manifest.entries()[1].meta.mode, 0o600, "modes are kept");
        let opts = BuildOptions {
            preserve_owner: true,
            ..BuildOptions::new(MIN_CHUNK_SIZE)
        };
        let s = build_with(&root, "/opt/x", &opts).unwrap();
        let f = &s.manifest.entries()[1];
        assert_eq!((f.meta.uid, f.meta.gid), src_owner, "{}", f.path);
    }

    #[test]
    fn a_file_source_targets_its_destination_path_only() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("src.txt");
        std::fs::write(&f, b"x").unwrap();
        let s = build(&f, "/etc/app/conf.txt", MIN_CHUNK_SIZE).unwrap();
        assert_eq!(s.dest.as_str(), "/etc/app");
        assert!(!s.prune);
        assert_eq!(s.manifest.entries()[0].path.as_str(), "conf.txt");
        assert!(build(&f, "/", MIN_CHUNK_SIZE).is_err());
        assert!(build(&f, "rel", MIN_CHUNK_SIZE).is_err());
        assert!(build(&d.path().join("missing"), "/x", MIN_CHUNK_SIZE).is_err());
    }
}

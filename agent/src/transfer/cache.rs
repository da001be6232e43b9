//! The node's chunk cache: raw chunk bytes keyed by sha256 under
//! `<dir>/chunks/<h[..2]>/<h>`, written through a temp file + rename.
//! Bounded: [`ChunkCache::trim`] evicts the oldest entries beyond the limit,
//! and after a commit the service evicts the chunks that landed
//! ([`ChunkCache::evict`]): the cache stages transfers, it does not mirror
//! the trees.
//!
//! Invariant (verify once): every chunk is hashed exactly once on its way
//! in — on arrival (`store_chunk`) or when read from the local tree
//! (`read_local`) — before [`ChunkCache::put`] stores it. `put` records the
//! stored file's stamp (device, inode, size, mtime, ctime, taken from the
//! written descriptor after the rename). [`ChunkCache::get`] skips the hash
//! only when this process stored/verified that entry and the file's stamp,
//! taken from the open descriptor before *and* after the read, still equals
//! the recorded one. Anything else — entries from a previous run or another
//! process, files rewritten, replaced, touched or chmod-ed since (any write
//! changes ctime, which user space cannot set back) — is hashed on read,
//! and a corrupt entry is removed. The stamp set is per process and bounded
//! ([`MAX_TRUSTED`]); past the bound, reads simply verify again.
//! Limit: file times have the kernel's timestamp granularity (a tick on
//! older kernels), so a same-size in-place rewrite by another root process
//! within that tick of the stamp would go unnoticed; the cache directory is
//! private to the agent, which alone writes it.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ferry_shared::transfer::ChunkHash;

use super::TransferError;

/// Entries whose verification is remembered (about 80 bytes each).
pub const MAX_TRUSTED: usize = 1 << 18;

/// What identifies one version of a cache file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &Metadata) -> Self {
        Self {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ChunkCache {
    dir: PathBuf,
    max_bytes: u64,
    /// Entries verified by this process, by the stamp they had then.
    trusted: Arc<Mutex<HashMap<ChunkHash, Stamp>>>,
}

fn io(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> TransferError {
    let path = path.to_path_buf();
    move |source| TransferError::Io { what, path, source }
}

/// Creates `dir` (0700) if missing; parents get the default mode.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// Creates `path` (0600) for writing; it must not exist.
pub fn private_file(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

impl ChunkCache {
    /// The cache in `dir`, made private (0700) now: staged chunks of 0600
    /// files are never readable by other users, even after an interrupted
    /// transfer. Failing that is reported on the first write.
    pub fn new(dir: PathBuf, max_bytes: u64) -> Self {
        let private = private_dir(&dir)
            .and_then(|()| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)));
        if let Err(e) = private {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot make the chunk cache private (0700)");
        }
        Self {
            dir,
            max_bytes,
            trusted: Arc::default(),
        }
    }

    fn trusted(&self) -> std::sync::MutexGuard<'_, HashMap<ChunkHash, Stamp>> {
        self.trusted.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn trust(&self, h: &ChunkHash, s: Stamp) {
        let mut t = self.trusted();
        if t.len() < MAX_TRUSTED || t.contains_key(h) {
            t.insert(*h, s);
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, h: &ChunkHash) -> PathBuf {
        let hex = h.hex();
        self.dir.join("chunks").join(&hex[..2]).join(hex)
    }

    /// Whether an entry of `len` bytes exists (content checked on read).
    pub fn has(&self, h: &ChunkHash, len: u64) -> bool {
        std::fs::metadata(self.path(h)).is_ok_and(|m| m.is_file() && m.len() == len)
    }

    /// Stores `data`, which the caller has verified hashes to `h`.
    pub fn put(&self, h: &ChunkHash, data: &[u8]) -> Result<(), TransferError> {
        let dst = self.path(h);
        let tmp_dir = self.dir.join("tmp");
        for d in [
            self.dir.as_path(),
            &self.dir.join("chunks"),
            dst.parent().unwrap_or(&self.dir),
            tmp_dir.as_path(),
        ] {
            private_dir(d).map_err(io(d, "create cache dir"))?;
        }
        let tmp = tmp_dir.join(format!("{}.{}", h.hex(), super::unique_suffix()));
        let mut f = private_file(&tmp).map_err(io(&tmp, "create cache temp"))?;
        f.write_all(data).map_err(io(&tmp, "write cache temp"))?;
        std::fs::rename(&tmp, &dst).map_err(io(&dst, "store cache entry"))?;
        // Stamped after the rename (which may update ctime), from the
        // descriptor written: exactly the inode holding `data`.
        let md = f.metadata().map_err(io(&dst, "stat cache entry"))?;
        if md.len() == data.len() as u64 {
            self.trust(h, Stamp::of(&md));
        }
        Ok(())
    }

    /// Reads an entry, verifying its hash unless this process verified
    /// this very file version (see the module's invariant); a corrupt
    /// entry is removed.
    pub fn get(&self, h: &ChunkHash) -> Result<Vec<u8>, TransferError> {
        let mut data = Vec::new();
        self.get_into(h, &mut data)?;
        Ok(data)
    }

    /// [`Self::get`] into a caller's buffer (cleared first), so a writer
    /// assembling many chunks reuses one allocation instead of mapping and
    /// unmapping a fresh megabyte per chunk.
    pub fn get_into(&self, h: &ChunkHash, data: &mut Vec<u8>) -> Result<(), TransferError> {
        let p = self.path(h);
        let mut f = File::open(&p).map_err(io(&p, "read cache entry"))?;
        let before = Stamp::of(&f.metadata().map_err(io(&p, "stat cache entry"))?);
        data.clear();
        data.reserve(usize::try_from(before.len).unwrap_or(0));
        f.read_to_end(data).map_err(io(&p, "read cache entry"))?;
        let after = Stamp::of(&f.metadata().map_err(io(&p, "stat cache entry"))?);
        let stable = before == after && data.len() as u64 == after.len;
        if stable && self.trusted().get(h) == Some(&after) {
            return Ok(());
        }
        if ChunkHash::of(data) != *h {
            self.trusted().remove(h);
            let _ = std::fs::remove_file(&p);
            return Err(TransferError::Corrupt {
                path: p,
                hash: h.hex(),
            });
        }
        if stable {
            self.trust(h, after);
        }
        Ok(())
    }

    /// Removes the entries of `hashes` (absent ones are fine); returns how
    /// many files were removed. Used after a commit: the landed tree holds
    /// those chunks now, and the next plan reads them from there.
    pub fn evict<'a>(&self, hashes: impl IntoIterator<Item = &'a ChunkHash>) -> u64 {
        let mut removed = 0;
        for h in hashes {
            self.trusted().remove(h);
            if std::fs::remove_file(self.path(h)).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Whether a read of `h` would skip hashing (tests).
    #[cfg(test)]
    fn is_trusted(&self, h: &ChunkHash) -> bool {
        std::fs::metadata(self.path(h)).is_ok_and(|m| self.trusted().get(h) == Some(&Stamp::of(&m)))
    }

    /// Evicts the oldest entries until the cache holds at most its limit.
    /// Returns the bytes evicted.
    pub fn trim(&self) -> Result<u64, TransferError> {
        let root = self.dir.join("chunks");
        let mut entries = Vec::new();
        let mut total = 0u64;
        let Ok(dirs) = std::fs::read_dir(&root) else {
            return Ok(0);
        };
        for d in dirs.flatten() {
            let Ok(files) = std::fs::read_dir(d.path()) else {
                continue;
            };
            for f in files.flatten() {
                if let Ok(m) = f.metadata() {
                    total += m.len();
                    let t = m.modified().unwrap_or(std::time::UNIX_EPOCH);
                    entries.push((t, m.len(), f.path()));
                }
            }
        }
        if total <= self.max_bytes {
            return Ok(0);
        }
        entries.sort();
        let mut evicted = 0;
        for (_, len, p) in entries {
            if total <= self.max_bytes {
                break;
            }
            std::fs::remove_file(&p).map_err(io(&p, "evict cache entry"))?;
            total -= len;
            evicted += len;
        }
        Ok(evicted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Modes of everything under `dir` (itself included), by path.
    fn modes(dir: &Path) -> Vec<(PathBuf, u32)> {
        let mut out = vec![(
            dir.to_path_buf(),
            std::fs::metadata(dir).unwrap().permissions().mode() & 0o7777,
        )];
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.path().is_dir() {
                out.extend(modes(&e.path()));
            } else {
                out.push((
                    e.path(),
                    e.metadata().unwrap().permissions().mode() & 0o7777,
                ));
            }
        }
        out
    }

    #[test]
    fn the_cache_is_private_even_where_it_was_not() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("cache");
        // An older agent's cache: 0755 with a 0644 chunk.
        std::fs::create_dir_all(dir.join("chunks/ab")).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let c = ChunkCache::new(dir.clone(), 1 << 20);
        let h = ChunkHash::of(b"secret");
        c.put(&h, b"secret").unwrap();
        record_index(&dir);
        for (p, m) in modes(&dir) {
            let want = if p.is_dir() { 0o700 } else { 0o600 };
            if p == dir || p.starts_with(dir.join("tmp")) || p.starts_with(dir.join("index")) {
                assert_eq!(m, want, "{}", p.display());
            }
        }
        let chunk = c.path(&h);
        let m = std::fs::metadata(&chunk).unwrap().permissions().mode() & 0o7777;
        assert_eq!(m, 0o600, "{}", chunk.display());
        let m = std::fs::metadata(chunk.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(m, 0o700);
    }

    /// Writes a stat index into the cache dir the way a commit does.
    fn record_index(cache_dir: &Path) {
        let root = cache_dir.parent().unwrap().join("tree");
        std::fs::create_dir_all(&root).unwrap();
        let m = ferry_shared::transfer::Manifest::new(4096, Vec::new()).unwrap();
        super::super::stat_index::StatIndex::record(cache_dir, &root, &m).unwrap();
    }

    #[test]
    fn evict_removes_only_the_named_entries() {
        let dir = tempfile::tempdir().unwrap();
        let c = ChunkCache::new(dir.path().to_path_buf(), 1 << 20);
        let (a, b) = (ChunkHash::of(b"a"), ChunkHash::of(b"b"));
        c.put(&a, b"a").unwrap();
        c.put(&b, b"b").unwrap();
        let gone = ChunkHash::of(b"never stored");
        assert_eq!(c.evict([&a, &gone]), 1);
        assert!(!c.has(&a, 1));
        assert!(c.has(&b, 1));
        assert_eq!(c.get(&b).unwrap(), b"b");
    }

    #[test]
    fn put_get_verify_and_trim() {
        let dir = tempfile::tempdir().unwrap();
        let c = ChunkCache::new(dir.path().to_path_buf(), 10);
        let h = ChunkHash::of(b"hello");
        c.put(&h, b"hello").unwrap();
        assert!(c.has(&h, 5) && !c.has(&h, 4));
        assert_eq!(c.get(&h).unwrap(), b"hello");
        std::thread::sleep(std::time::Duration::from_millis(30)); // timestamp tick
        std::fs::write(c.path(&h), b"HELLO").unwrap();
        assert!(c.get(&h).unwrap_err().to_string().contains("corrupt"));
        assert!(!c.has(&h, 5), "corrupt entry removed");
        for s in [&b"aaaaaa"[..], b"bbbbbb", b"cccccc"] {
            c.put(&ChunkHash::of(s), s).unwrap();
        }
        assert_eq!(c.trim().unwrap(), 12);
    }

    #[test]
    fn verified_once_then_trusted_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let c = ChunkCache::new(dir.path().to_path_buf(), 1 << 20);
        let h = ChunkHash::of(b"payload");
        c.put(&h, b"payload").unwrap();
        assert!(c.is_trusted(&h), "stored by this process: trusted");
        assert_eq!(c.get(&h).unwrap(), b"payload");
        // Same length, different bytes, written behind the cache's back:
        // the ctime/mtime change, so the read hashes and catches it.
        std::thread::sleep(std::time::Duration::from_millis(30)); // timestamp tick
        std::fs::write(c.path(&h), b"PAYLOAD").unwrap();
        assert!(!c.is_trusted(&h));
        assert!(c.get(&h).unwrap_err().to_string().contains("corrupt"));
        assert!(!c.has(&h, 7));
        // An entry left by a previous run (another process) is verified on
        // first read, then trusted.
        let h2 = ChunkHash::of(b"old run");
        c.put(&h2, b"old run").unwrap();
        let fresh = ChunkCache::new(dir.path().to_path_buf(), 1 << 20);
        assert!(!fresh.is_trusted(&h2));
        assert_eq!(fresh.get(&h2).unwrap(), b"old run");
        assert!(fresh.is_trusted(&h2));
        // Replaced by another inode with the right content: verified again.
        let tmp = dir.path().join("x");
        std::fs::write(&tmp, b"old run").unwrap();
        std::fs::rename(&tmp, fresh.path(&h2)).unwrap();
        assert!(!fresh.is_trusted(&h2));
        assert_eq!(fresh.get(&h2).unwrap(), b"old run");
    }
}

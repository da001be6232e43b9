//! The node's chunk cache: raw chunk bytes keyed by sha256 under
//! `<dir>/chunks/<h[..2]>/<h>`, written through a temp file + rename.
//! Bounded: [`ChunkCache::trim`] evicts the oldest entries beyond the limit.
//! Every read verifies the hash; a corrupt entry is removed.

use std::io::Write;
use std::path::{Path, PathBuf};

use ferry_shared::transfer::ChunkHash;

use super::TransferError;

#[derive(Debug, Clone)]
pub struct ChunkCache {
    dir: PathBuf,
    max_bytes: u64,
}

fn io(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> TransferError {
    let path = path.to_path_buf();
    move |source| TransferError::Io { what, path, source }
}

impl ChunkCache {
    pub fn new(dir: PathBuf, max_bytes: u64) -> Self {
        Self { dir, max_bytes }
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

    pub fn put(&self, h: &ChunkHash, data: &[u8]) -> Result<(), TransferError> {
        let dst = self.path(h);
        let tmp_dir = self.dir.join("tmp");
        for d in [dst.parent().unwrap_or(&self.dir), tmp_dir.as_path()] {
            std::fs::create_dir_all(d).map_err(io(d, "create cache dir"))?;
        }
        let tmp = tmp_dir.join(format!("{}.{}", h.hex(), super::unique_suffix()));
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp, "create cache temp"))?;
        f.write_all(data).map_err(io(&tmp, "write cache temp"))?;
        drop(f);
        std::fs::rename(&tmp, &dst).map_err(io(&dst, "store cache entry"))
    }

    /// Reads and verifies an entry; a corrupt one is removed.
    pub fn get(&self, h: &ChunkHash) -> Result<Vec<u8>, TransferError> {
        let p = self.path(h);
        let data = std::fs::read(&p).map_err(io(&p, "read cache entry"))?;
        if ChunkHash::of(&data) != *h {
            let _ = std::fs::remove_file(&p);
            return Err(TransferError::Corrupt {
                path: p,
                hash: h.hex(),
            });
        }
        Ok(data)
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

    #[test]
    fn put_get_verify_and_trim() {
        let dir = tempfile::tempdir().unwrap();
        let c = ChunkCache::new(dir.path().to_path_buf(), 10);
        let h = ChunkHash::of(b"hello");
        c.put(&h, b"hello").unwrap();
        assert!(c.has(&h, 5) && !c.has(&h, 4));
        assert_eq!(c.get(&h).unwrap(), b"hello");
        std::fs::write(c.path(&h), b"HELLO").unwrap();
        assert!(c.get(&h).unwrap_err().to_string().contains("corrupt"));
        assert!(!c.has(&h, 5), "corrupt entry removed");
        for s in [&b"aaaaaa"[..], b"bbbbbb", b"cccccc"] {
            c.put(&ChunkHash::of(s), s).unwrap();
        }
        assert_eq!(c.trim().unwrap(), 12);
    }
}

//! Quick check for re-runs: after a commit, the chunk hashes of every file
//! of the manifest are recorded with the stat they had (size, mtime,
//! ctime, inode, device). A later scan trusts a file whose stat is still
//! identical instead of reading it again, so a no-op re-run does not hash
//! the whole tree. Any write or metadata change moves the ctime, which user
//! space cannot set back, so damage done through the filesystem is still
//! detected and repaired. Stored as JSON lines under
//! `<cache>/index/<sha256(destination)[..16]>`; unreadable means empty.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ferry_shared::transfer::{ChunkHash, EntryKind, Manifest, mtime_ns};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
    dev: u64,
}

impl Key {
    fn of(m: &std::fs::Metadata) -> Self {
        Self {
            size: m.len(),
            mtime_ns: mtime_ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: mtime_ns(m.ctime(), m.ctime_nsec()),
            ino: m.ino(),
            dev: m.dev(),
        }
    }
}

#[derive(Debug, Default)]
pub struct StatIndex {
    files: HashMap<String, (Key, Vec<ChunkHash>)>,
}

fn file(cache_dir: &Path, root: &Path) -> PathBuf {
    use sha2::Digest;
    let h = hex::encode(sha2::Sha256::digest(root.as_os_str().as_encoded_bytes()));
    cache_dir.join("index").join(&h[..16])
}

impl StatIndex {
    /// The index of `root`, or an empty one.
    pub fn load(cache_dir: &Path, root: &Path, chunk_size: u32) -> Self {
        let mut idx = Self {
            files: HashMap::new(),
        };
        let Ok(f) = std::fs::File::open(file(cache_dir, root)) else {
            return idx;
        };
        let mut lines = std::io::BufReader::new(f).lines();
        let header = lines.next().and_then(Result::ok);
        let cs = header
            .and_then(|l| serde_json::from_str::<Value>(&l).ok())
            .and_then(|v| v["chunk_size"].as_u64());
        if cs != Some(u64::from(chunk_size)) {
            return idx;
        }
        for line in lines.map_while(Result::ok) {
            if let Some((p, k, h)) = parse(&line) {
                idx.files.insert(p, (k, h));
            }
        }
        idx
    }

    /// The recorded chunk hashes of `rel` if its stat `m` is unchanged.
    pub fn lookup(&self, rel: &str, m: &std::fs::Metadata) -> Option<&[ChunkHash]> {
        let (k, h) = self.files.get(rel)?;
        (*k == Key::of(m)).then_some(h.as_slice())
    }

    /// Records every file of `manifest` as it is now under `root` (call
    /// right after a successful commit). Best effort.
    pub fn record(cache_dir: &Path, root: &Path, manifest: &Manifest) -> std::io::Result<()> {
        let path = file(cache_dir, root);
        let dir = cache_dir.join("index");
        super::cache::private_dir(cache_dir)?;
        super::cache::private_dir(&dir)?;
        let tmp = dir.join(format!(".tmp.{}", super::unique_suffix()));
        let mut out = std::io::BufWriter::new(super::cache::private_file(&tmp)?);
        writeln!(out, "{}", json!({ "chunk_size": manifest.chunk_size() }))?;
        for e in manifest.entries() {
            let EntryKind::File { chunks, .. } = &e.kind else {
                continue;
            };
            let Ok(m) = std::fs::symlink_metadata(root.join(e.path.as_str())) else {
                continue;
            };
            if !m.is_file() {
                continue;
            }
            let k = Key::of(&m);
            let h: String = chunks.iter().map(|c| c.hex()).collect();
            let v = json!({
                "p": e.path.as_str(), "s": k.size, "m": k.mtime_ns, "c": k.ctime_ns,
                "i": k.ino, "d": k.dev, "h": h,
            });
            writeln!(out, "{v}")?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, &path)
    }
}

fn parse(line: &str) -> Option<(String, Key, Vec<ChunkHash>)> {
    let v: Value = serde_json::from_str(line).ok()?;
    let k = Key {
        size: v["s"].as_u64()?,
        mtime_ns: v["m"].as_i64()?,
        ctime_ns: v["c"].as_i64()?,
        ino: v["i"].as_u64()?,
        dev: v["d"].as_u64()?,
    };
    let hex_all = v["h"].as_str()?;
    let bytes = hex::decode(hex_all).ok()?;
    let hashes = bytes
        .chunks(32)
        .map(ChunkHash::from_slice)
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    Some((v["p"].as_str()?.to_string(), k, hashes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_shared::transfer::{Entry, Meta, RelPath};

    #[test]
    fn trusts_unchanged_files_only() {
        let d = tempfile::tempdir().unwrap();
        let (cache, root) = (d.path().join("cache"), d.path().join("root"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("f"), b"hello").unwrap();
        let h = ChunkHash::of(b"hello");
        let entry = Entry {
            path: RelPath::new("f").unwrap(),
            meta: Meta {
                mode: 0o644,
                uid: 0,
                gid: 0,
            },
            kind: EntryKind::File {
                size: 5,
                chunks: vec![h],
                mtime_ns: 0,
            },
        };
        let m = Manifest::new(4096, vec![entry]).unwrap();
        StatIndex::record(&cache, &root, &m).unwrap();
        let idx = StatIndex::load(&cache, &root, 4096);
        let md = std::fs::metadata(root.join("f")).unwrap();
        assert_eq!(idx.lookup("f", &md), Some(&[h][..]));
        assert!(
            StatIndex::load(&cache, &root, 8192)
                .lookup("f", &md)
                .is_none()
        );
        // Same size and mtime, new inode (e.g. restored from a backup).
        let mtime = md.modified().unwrap();
        std::fs::write(root.join("g"), b"HELLO").unwrap();
        std::fs::rename(root.join("g"), root.join("f")).unwrap();
        let f = std::fs::File::options()
            .write(true)
            .open(root.join("f"))
            .unwrap();
        f.set_modified(mtime).unwrap();
        let md = std::fs::metadata(root.join("f")).unwrap();
        assert!(idx.lookup("f", &md).is_none());
    }
}

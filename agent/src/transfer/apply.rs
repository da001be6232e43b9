//! Commit: make the destination equal to the manifest. Deletions first
//! (entries not in the manifest with prune, and type mismatches), then
//! directories, then files (temp file in the same directory + fsync +
//! rename) and symlinks (temp link + rename), then modes, ownership and
//! mtimes (directories last, deepest first), then fsync of touched dirs.
//! Content comes only from the verified chunk cache.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_shared::transfer::{Entry, EntryKind, Manifest, TreeDiff};

use super::TransferError;
use super::cache::ChunkCache;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub files_written: u64,
    pub files_unchanged: u64,
    pub metadata_fixed: u64,
    pub symlinks_written: u64,
    pub dirs_created: u64,
    pub deleted: u64,
    pub bytes_written: u64,
}

fn io(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> TransferError {
    let path = path.to_path_buf();
    move |source| TransferError::Io { what, path, source }
}

fn tmp_name(p: &Path) -> PathBuf {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    p.with_file_name(format!(".ferry-tmp.{name}.{}", super::unique_suffix()))
}

pub fn apply(
    root: &Path,
    m: &Manifest,
    d: &TreeDiff,
    cache: &ChunkCache,
) -> Result<Applied, TransferError> {
    let mut out = Applied {
        files_unchanged: d.unchanged_files.len() as u64,
        ..Applied::default()
    };
    std::fs::create_dir_all(root).map_err(io(root, "create destination"))?;
    let mut touched: BTreeSet<PathBuf> = BTreeSet::new();
    for rel in &d.delete {
        let p = root.join(rel);
        let res = match std::fs::symlink_metadata(&p) {
            Ok(md) if md.is_dir() => std::fs::remove_dir_all(&p),
            Ok(_) => std::fs::remove_file(&p),
            Err(e) => Err(e),
        };
        match res {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(&p, "remove")(e));
            }
            _ => out.deleted += 1,
        }
        touched.insert(p.parent().unwrap_or(root).to_path_buf());
    }
    let entries = m.entries();
    for &i in &d.create_dirs {
        let p = root.join(entries[i].path.as_str());
        std::fs::create_dir(&p).map_err(io(&p, "create directory"))?;
        out.dirs_created += 1;
        touched.insert(p.parent().unwrap_or(root).to_path_buf());
    }
    for &i in &d.write_files {
        let e = &entries[i];
        let p = root.join(e.path.as_str());
        out.bytes_written += write_file(&p, e, cache)?;
        out.files_written += 1;
        touched.insert(p.parent().unwrap_or(root).to_path_buf());
    }
    for &i in &d.write_symlinks {
        let e = &entries[i];
        let p = root.join(e.path.as_str());
        if let EntryKind::Symlink { target } = &e.kind {
            let tmp = tmp_name(&p);
            std::os::unix::fs::symlink(target, &tmp).map_err(io(&tmp, "create symlink"))?;
            std::os::unix::fs::lchown(&tmp, Some(e.meta.uid), Some(e.meta.gid))
                .map_err(io(&tmp, "chown symlink"))?;
            std::fs::rename(&tmp, &p).map_err(io(&p, "rename symlink"))?;
            out.symlinks_written += 1;
            touched.insert(p.parent().unwrap_or(root).to_path_buf());
        }
    }
    for &i in &d.fix_meta {
        let e = &entries[i];
        if !matches!(e.kind, EntryKind::Dir) {
            set_meta(&root.join(e.path.as_str()), e)?;
            out.metadata_fixed += 1;
        }
    }
    // Directories last, deepest first, so restrictive modes never get in
    // the way of writing their children.
    let created: std::collections::HashSet<usize> = d.create_dirs.iter().copied().collect();
    let mut dirs: Vec<usize> = d.create_dirs.clone();
    dirs.extend(
        d.fix_meta
            .iter()
            .copied()
            .filter(|&i| matches!(entries[i].kind, EntryKind::Dir)),
    );
    dirs.sort_unstable();
    for &i in dirs.iter().rev() {
        set_meta(&root.join(entries[i].path.as_str()), &entries[i])?;
        if !created.contains(&i) {
            out.metadata_fixed += 1;
        }
    }
    for dir in touched {
        if let Ok(f) = File::open(&dir) {
            f.sync_all().map_err(io(&dir, "fsync directory"))?;
        }
    }
    Ok(out)
}

fn write_file(p: &Path, e: &Entry, cache: &ChunkCache) -> Result<u64, TransferError> {
    let EntryKind::File { chunks, .. } = &e.kind else {
        return Ok(0);
    };
    let tmp = tmp_name(p);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp, "create temp file"))?;
        let mut n = 0u64;
        let mut data = Vec::new();
        for h in chunks {
            cache.get_into(h, &mut data)?;
            f.write_all(&data).map_err(io(&tmp, "write"))?;
            n += data.len() as u64;
        }
        apply_meta_fd(&f, &tmp, e)?;
        f.sync_all().map_err(io(&tmp, "fsync"))?;
        drop(f);
        std::fs::rename(&tmp, p).map_err(io(p, "rename into place"))?;
        Ok(n)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn mtime(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

fn apply_meta_fd(f: &File, p: &Path, e: &Entry) -> Result<(), TransferError> {
    std::os::unix::fs::fchown(f, Some(e.meta.uid), Some(e.meta.gid)).map_err(io(p, "chown"))?;
    f.set_permissions(Permissions::from_mode(e.meta.mode))
        .map_err(io(p, "chmod"))?;
    if let EntryKind::File { mtime_ns, .. } = e.kind {
        f.set_modified(mtime(mtime_ns))
            .map_err(io(p, "set mtime"))?;
    }
    Ok(())
}

fn set_meta(p: &Path, e: &Entry) -> Result<(), TransferError> {
    match e.kind {
        EntryKind::Symlink { .. } => {
            std::os::unix::fs::lchown(p, Some(e.meta.uid), Some(e.meta.gid))
                .map_err(io(p, "chown symlink"))
        }
        EntryKind::Dir | EntryKind::File { .. } => {
            // Opened read-only: works on running executables (no ETXTBSY).
            let f = File::open(p).map_err(io(p, "open"))?;
            apply_meta_fd(&f, p, e)
        }
    }
}

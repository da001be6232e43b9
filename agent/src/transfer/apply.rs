//! Commit: make the destination equal to the manifest. Deletions first
//! (entries not in the manifest with prune, and type mismatches), then
//! directories, then files (temp file in the same directory + fsync +
//! rename) and symlinks (temp link + rename), then modes, ownership and
//! mtimes (directories last, deepest first), then fsync of touched dirs.
//! Content comes only from the verified chunk cache; every path is resolved
//! beneath the destination without following symlinks (`beneath.rs`).

use std::collections::{BTreeSet, HashSet};
use std::fs::{File, Permissions};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_shared::transfer::{Entry, EntryKind, Manifest, TreeDiff};
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Uid};

use super::TransferError;
use super::beneath::{Beneath, remove_at, sync_dir};
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

fn errno(path: &Path, what: &'static str) -> impl FnOnce(rustix::io::Errno) -> TransferError {
    let path = path.to_path_buf();
    move |e| TransferError::Io {
        what,
        path,
        source: e.into(),
    }
}

fn tmp_name(name: &str) -> String {
    format!(".ferry-tmp.{name}.{}", super::unique_suffix())
}

/// The parent (relative) of `rel`, `""` at the top.
fn parent_of(rel: &str) -> String {
    rel.rsplit_once('/')
        .map(|(p, _)| p)
        .unwrap_or("")
        .to_string()
}

/// Every path is resolved beneath `root` without following symlinks (see
/// [`Beneath`]); a symlinked root or a symlink swapped in since the plan
/// fails here before anything is written.
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
    let b = Beneath::open(root, true)?.ok_or_else(|| TransferError::NotADirectory(root.into()))?;
    let entries = m.entries();
    // Directories the plan saw must still be real directories beneath the
    // root: checked before the first change.
    let created: HashSet<usize> = d.create_dirs.iter().copied().collect();
    for (i, e) in entries.iter().enumerate() {
        if matches!(e.kind, EntryKind::Dir) && !created.contains(&i) {
            b.dir(e.path.as_str())?;
        }
    }
    let mut touched: BTreeSet<String> = BTreeSet::new();
    for rel in &d.delete {
        match b.parent(rel) {
            Ok((dir, name)) => {
                remove_at(&dir, name, &b.shown(rel))?;
            }
            // Gone with its parent already.
            Err(TransferError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        out.deleted += 1;
        touched.insert(parent_of(rel));
    }
    for &i in &d.create_dirs {
        let rel = entries[i].path.as_str();
        let (dir, name) = b.parent(rel)?;
        // Private until its own mode is applied, last.
        rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o700))
            .map_err(errno(&b.shown(rel), "create directory"))?;
        out.dirs_created += 1;
        touched.insert(parent_of(rel));
    }
    for &i in &d.write_files {
        let e = &entries[i];
        out.bytes_written += write_file(&b, e, cache)?;
        out.files_written += 1;
        touched.insert(parent_of(e.path.as_str()));
    }
    for &i in &d.write_symlinks {
        let e = &entries[i];
        if let EntryKind::Symlink { target } = &e.kind {
            write_symlink(&b, e, target)?;
            out.symlinks_written += 1;
            touched.insert(parent_of(e.path.as_str()));
        }
    }
    for &i in &d.fix_meta {
        let e = &entries[i];
        if !matches!(e.kind, EntryKind::Dir) {
            set_meta(&b, e)?;
            out.metadata_fixed += 1;
        }
    }
    // Directories last, deepest first, so restrictive modes never get in
    // the way of writing their children.
    let mut dirs: Vec<usize> = d.create_dirs.clone();
    dirs.extend(
        d.fix_meta
            .iter()
            .copied()
            .filter(|&i| matches!(entries[i].kind, EntryKind::Dir)),
    );
    dirs.sort_unstable();
    for &i in dirs.iter().rev() {
        set_meta(&b, &entries[i])?;
        if !created.contains(&i) {
            out.metadata_fixed += 1;
        }
    }
    for rel in touched {
        sync_dir(&b, &rel)?;
    }
    Ok(out)
}

fn write_file(b: &Beneath, e: &Entry, cache: &ChunkCache) -> Result<u64, TransferError> {
    let EntryKind::File { chunks, .. } = &e.kind else {
        return Ok(0);
    };
    let rel = e.path.as_str();
    let (dir, name) = b.parent(rel)?;
    let tmp = tmp_name(name);
    let shown = b.shown(rel).with_file_name(&tmp);
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(&dir, tmp.as_str(), flags, Mode::from_raw_mode(0o600))
        .map_err(errno(&shown, "create temp file"))?;
    let result = (|| {
        let mut f = File::from(fd);
        let mut n = 0u64;
        let mut data = Vec::new();
        for h in chunks {
            cache.get_into(h, &mut data)?;
            f.write_all(&data).map_err(io(&shown, "write"))?;
            n += data.len() as u64;
        }
        apply_meta_fd(&f, &shown, e)?;
        f.sync_all().map_err(io(&shown, "fsync"))?;
        drop(f);
        rustix::fs::renameat(&dir, tmp.as_str(), &dir, name)
            .map_err(errno(&b.shown(rel), "rename into place"))?;
        Ok(n)
    })();
    if result.is_err() {
        let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
    }
    result
}

fn write_symlink(b: &Beneath, e: &Entry, target: &str) -> Result<(), TransferError> {
    let rel = e.path.as_str();
    let (dir, name) = b.parent(rel)?;
    let tmp = tmp_name(name);
    let shown = b.shown(rel).with_file_name(&tmp);
    rustix::fs::symlinkat(target, &dir, tmp.as_str()).map_err(errno(&shown, "create symlink"))?;
    let res = chown_link(&dir, &tmp, e, &shown).and_then(|()| {
        rustix::fs::renameat(&dir, tmp.as_str(), &dir, name)
            .map_err(errno(&b.shown(rel), "rename symlink"))
    });
    if res.is_err() {
        let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
    }
    res
}

fn chown_link(dir: &OwnedFd, name: &str, e: &Entry, shown: &Path) -> Result<(), TransferError> {
    rustix::fs::chownat(
        dir,
        name,
        Some(Uid::from_raw_unchecked(e.meta.uid)),
        Some(Gid::from_raw_unchecked(e.meta.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(errno(shown, "chown symlink"))
}

fn mtime(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

pub(super) fn apply_meta_fd(f: &File, p: &Path, e: &Entry) -> Result<(), TransferError> {
    std::os::unix::fs::fchown(f, Some(e.meta.uid), Some(e.meta.gid)).map_err(io(p, "chown"))?;
    f.set_permissions(Permissions::from_mode(e.meta.mode))
        .map_err(io(p, "chmod"))?;
    if let EntryKind::File { mtime_ns, .. } = e.kind {
        f.set_modified(mtime(mtime_ns))
            .map_err(io(p, "set mtime"))?;
    }
    Ok(())
}

fn set_meta(b: &Beneath, e: &Entry) -> Result<(), TransferError> {
    let rel = e.path.as_str();
    let want = match e.kind {
        EntryKind::Symlink { .. } => {
            let (dir, name) = b.parent(rel)?;
            return chown_link(&dir, name, e, &b.shown(rel));
        }
        EntryKind::Dir => FileType::Directory,
        EntryKind::File { .. } => FileType::RegularFile,
    };
    // Opened read-only: works on running executables (no ETXTBSY).
    let f = b.open_entry(rel, want)?;
    apply_meta_fd(&f, &b.shown(rel), e)
}

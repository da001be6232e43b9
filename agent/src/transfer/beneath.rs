//! Paths beneath a transfer's destination, resolved without following
//! symlinks: the root is opened with `O_NOFOLLOW` (a root that is a symlink
//! is refused), and every path under it is walked one component at a time
//! with `openat(O_DIRECTORY | O_NOFOLLOW)` from the root's descriptor — the
//! semantics of `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, without
//! needing Linux 5.6. A symlink swapped in after the plan therefore fails
//! the commit instead of redirecting a write, chown or chmod.
//!
//! Invariant: Commit writes, removes and changes metadata only through
//! descriptors obtained here; the root's ancestors are the node's own
//! layout and are resolved normally.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::TransferError;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// An open destination root.
#[derive(Debug)]
pub struct Beneath {
    root: OwnedFd,
    path: PathBuf,
}

fn err(path: &Path, what: &'static str, e: Errno) -> TransferError {
    TransferError::Io {
        what,
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// Refuses a destination root that is a symlink, naming its target.
pub fn refuse_symlink_root(root: &Path) -> Result<(), TransferError> {
    match std::fs::symlink_metadata(root) {
        Ok(m) if m.file_type().is_symlink() => Err(TransferError::SymlinkRoot {
            path: root.to_path_buf(),
            target: std::fs::read_link(root).unwrap_or_default(),
        }),
        _ => Ok(()),
    }
}

impl Beneath {
    /// Opens `root`; with `create`, missing directories up to it are made
    /// first. `Ok(None)`: the root does not exist and `create` is off.
    pub fn open(root: &Path, create: bool) -> Result<Option<Self>, TransferError> {
        refuse_symlink_root(root)?;
        if create {
            std::fs::create_dir_all(root).map_err(|source| TransferError::Io {
                what: "create destination",
                path: root.to_path_buf(),
                source,
            })?;
        }
        match rustix::fs::open(root, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Some(Self {
                root: fd,
                path: root.to_path_buf(),
            })),
            Err(Errno::NOENT) if !create => Ok(None),
            Err(Errno::LOOP | Errno::NOTDIR) => {
                refuse_symlink_root(root)?;
                Err(TransferError::NotADirectory(root.to_path_buf()))
            }
            Err(e) => Err(err(root, "open destination", e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The node path of `rel` (for messages).
    pub fn shown(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.path.clone()
        } else {
            self.path.join(rel)
        }
    }

    /// Opens the directory `rel` (`""`: the root) beneath the root; any
    /// symlink or non-directory on the way is refused.
    pub fn dir(&self, rel: &str) -> Result<OwnedFd, TransferError> {
        let mut fd = rustix::io::dup(&self.root).map_err(|e| err(&self.path, "dup", e))?;
        let mut walked = String::new();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            if !walked.is_empty() {
                walked.push('/');
            }
            walked.push_str(part);
            fd = match rustix::fs::openat(&fd, part, DIR_FLAGS, Mode::empty()) {
                Ok(next) => next,
                // O_DIRECTORY | O_NOFOLLOW on a symlink: ENOTDIR or ELOOP.
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    let link = rustix::fs::statat(&fd, part, AtFlags::SYMLINK_NOFOLLOW)
                        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
                    let shown = self.shown(&walked);
                    return Err(if link {
                        TransferError::SymlinkInTheWay(shown)
                    } else {
                        TransferError::NotADirectory(shown)
                    });
                }
                Err(e) => return Err(err(&self.shown(&walked), "open directory", e)),
            };
        }
        Ok(fd)
    }

    /// The directory holding `rel`, and `rel`'s last component.
    pub fn parent<'r>(&self, rel: &'r str) -> Result<(OwnedFd, &'r str), TransferError> {
        let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        Ok((self.dir(dir)?, name))
    }

    /// Opens the existing file or directory `rel` without following a
    /// symlink (and without blocking on a FIFO); its type must be `want`.
    pub fn open_entry(&self, rel: &str, want: FileType) -> Result<File, TransferError> {
        let (dir, name) = self.parent(rel)?;
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(&dir, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::LOOP) => return Err(TransferError::SymlinkInTheWay(self.shown(rel))),
            Err(e) => return Err(err(&self.shown(rel), "open", e)),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| err(&self.shown(rel), "stat", e))?;
        if FileType::from_raw_mode(st.st_mode) != want {
            return Err(TransferError::TypeChanged(self.shown(rel)));
        }
        Ok(File::from(fd))
    }
}

/// Removes `name` in `dir` (a whole tree if it is a directory) without
/// following symlinks. `Ok(false)`: it was not there.
pub fn remove_at(dir: &impl AsFd, name: &str, shown: &Path) -> Result<bool, TransferError> {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(false),
        Err(e) => return Err(err(shown, "inspect", e)),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let sub = rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty())
            .map_err(|e| err(shown, "open directory", e))?;
        empty_dir(&sub, shown)?;
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
            .map_err(|e| err(shown, "remove directory", e))?;
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(|e| err(shown, "remove", e))?;
    }
    Ok(true)
}

/// Removes everything in the open directory `fd`.
fn empty_dir(fd: &OwnedFd, shown: &Path) -> Result<(), TransferError> {
    let names: Vec<String> = rustix::fs::Dir::read_from(fd)
        .map_err(|e| err(shown, "list", e))?
        .filter_map(|ent| ent.ok())
        .map(|ent| ent.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "." && n != "..")
        .collect();
    for n in names {
        remove_at(fd, &n, &shown.join(&n))?;
    }
    Ok(())
}

/// fsyncs the directory `rel` if it can still be opened beneath the root.
pub fn sync_dir(b: &Beneath, rel: &str) -> Result<(), TransferError> {
    match b.dir(rel) {
        Ok(fd) => rustix::fs::fsync(&fd).map_err(|e| err(&b.shown(rel), "fsync directory", e)),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_on_the_way_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("l")).unwrap();
        let b = Beneath::open(&root, false).unwrap().unwrap();
        assert!(b.dir("a/b").is_ok());
        let e = b.dir("l").unwrap_err();
        assert!(matches!(e, TransferError::SymlinkInTheWay(_)), "{e}");
        let e = b.parent("l/x").unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        let e = b.open_entry("l", FileType::Directory).unwrap_err();
        assert!(matches!(e, TransferError::SymlinkInTheWay(_)), "{e}");

        let link_root = d.path().join("link-root");
        std::os::unix::fs::symlink(&outside, &link_root).unwrap();
        for create in [false, true] {
            let e = Beneath::open(&link_root, create).unwrap_err();
            assert!(matches!(e, TransferError::SymlinkRoot { .. }), "{e}");
        }
        assert!(
            Beneath::open(&d.path().join("absent"), false)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn remove_at_never_leaves_the_tree() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(root.join("t/sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"k").unwrap();
        std::fs::write(root.join("t/sub/f"), b"f").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("t/sub/l")).unwrap();
        let b = Beneath::open(&root, false).unwrap().unwrap();
        let fd = b.dir("").unwrap();
        assert!(remove_at(&fd, "t", &root.join("t")).unwrap());
        assert!(!root.join("t").exists());
        assert!(outside.join("keep").is_file(), "the link's target is kept");
        assert!(!remove_at(&fd, "t", &root.join("t")).unwrap());
    }
}

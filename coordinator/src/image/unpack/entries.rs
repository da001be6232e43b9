//! Per-entry handling: checks, then creation without following symlinks.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tar::EntryType;

use super::error::{LayerId, Rule, UnpackError};
use super::paths::{
    DirError, EntryPath, LookupError, ensure_dir, lookup_no_follow, relative_target_escapes,
};
use super::{UnpackOptions, UnpackStats};

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

pub(super) struct LayerState {
    pub(super) root: PathBuf,
    pub(super) layer: LayerId,
    pub(super) opts: UnpackOptions,
    /// Paths written by this layer (kept by an opaque whiteout).
    pub(super) created: HashSet<Vec<Vec<u8>>>,
    /// Directory modes, applied at the end so read-only dirs can be filled.
    pub(super) dir_modes: Vec<(EntryPath, u32)>,
    pub(super) stats: UnpackStats,
}

impl LayerState {
    pub(super) fn reject(&self, path: &str, rule: Rule) -> UnpackError {
        UnpackError::Rejected {
            layer: self.layer.clone(),
            path: path.to_owned(),
            rule,
        }
    }

    fn io(&self, path: &str, op: &'static str) -> impl FnOnce(io::Error) -> UnpackError + use<> {
        let layer = self.layer.clone();
        let path = path.to_owned();
        move |source| UnpackError::Io {
            layer,
            path,
            op,
            source,
        }
    }

    pub(super) fn entry<R: Read>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
    ) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let path =
            EntryPath::parse(&raw, self.opts.max_path_len).map_err(|r| self.reject(&shown, r))?;
        let kind = entry.header().entry_type();
        let mode = entry
            .header()
            .mode()
            .map_err(self.io(&shown, "read mode"))?;
        match kind {
            EntryType::Char => {
                return Err(self.reject(
                    &shown,
                    Rule::SpecialFile {
                        kind: "character device",
                    },
                ));
            }
            EntryType::Block => {
                return Err(self.reject(
                    &shown,
                    Rule::SpecialFile {
                        kind: "block device",
                    },
                ));
            }
            EntryType::Fifo => return Err(self.reject(&shown, Rule::SpecialFile { kind: "FIFO" })),
            EntryType::XGlobalHeader => return Ok(()),
            _ => {}
        }
        if mode & 0o6000 != 0 && !self.opts.allow_setuid {
            return Err(self.reject(&shown, Rule::Setuid { mode }));
        }
        let Some(name) = path.file_name().map(<[u8]>::to_vec) else {
            return match kind {
                EntryType::Directory => Ok(()),
                other => Err(self.reject(
                    &shown,
                    Rule::UnsupportedType(format!("{other:?} at the root")),
                )),
            };
        };
        if name.starts_with(WHITEOUT_PREFIX) {
            self.stats.whiteouts += 1;
            return self.whiteout(&path, &name, &shown);
        }
        ensure_dir(&self.root, &path.parent()).map_err(|e| match e {
            DirError::Rule(rule) => self.reject(&shown, rule),
            DirError::Io(err) => self.io(&shown, "create parent directory")(err),
        })?;
        let full = path.under(&self.root);
        match kind {
            EntryType::Directory => {
                self.clear(&full, true, &shown)?;
                self.dir_modes.push((path.clone(), mode & 0o7777));
            }
            EntryType::Regular | EntryType::Continuous => {
                self.file(&full, mode, &mut entry, &shown)?
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                if relative_target_escapes(&path, &target) {
                    let target = String::from_utf8_lossy(&target).into_owned();
                    return Err(self.reject(&shown, Rule::SymlinkEscape { target }));
                }
                self.clear(&full, false, &shown)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &full)
                    .map_err(self.io(&shown, "create symlink"))?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let source = self.hardlink_source(&target, &path, &shown)?;
                self.clear(&full, false, &shown)?;
                fs::hard_link(&source, &full).map_err(self.io(&shown, "create hardlink"))?;
            }
            other => return Err(self.reject(&shown, Rule::UnsupportedType(format!("{other:?}")))),
        }
        self.created.insert(path.parts);
        Ok(())
    }

    /// Removes what is at `full` (never following a symlink); a directory is
    /// kept when `keep_dir`, and created when missing in that case.
    fn clear(&self, full: &Path, keep_dir: bool, shown: &str) -> Result<(), UnpackError> {
        match fs::symlink_metadata(full) {
            Ok(m) if m.is_dir() && keep_dir => return Ok(()),
            Ok(m) if m.is_dir() => {
                fs::remove_dir_all(full).map_err(self.io(shown, "replace directory"))?
            }
            Ok(_) => fs::remove_file(full).map_err(self.io(shown, "replace file"))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io(shown, "stat")(e)),
        }
        if keep_dir {
            fs::create_dir(full).map_err(self.io(shown, "create directory"))?;
        }
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        full: &Path,
        mode: u32,
        entry: &mut tar::Entry<'_, R>,
        shown: &str,
    ) -> Result<(), UnpackError> {
        let size = entry.size();
        if size > self.opts.max_entry_size {
            return Err(self.reject(
                shown,
                Rule::EntryTooLarge {
                    size,
                    max: self.opts.max_entry_size,
                },
            ));
        }
        if self.stats.bytes.saturating_add(size) > self.opts.max_total_size {
            return Err(self.reject(
                shown,
                Rule::TotalTooLarge {
                    max: self.opts.max_total_size,
                },
            ));
        }
        self.clear(full, false, shown)?;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(full)
            .map_err(self.io(shown, "create file"))?;
        let written =
            io::copy(&mut entry.take(size), &mut file).map_err(self.io(shown, "write file"))?;
        file.set_permissions(fs::Permissions::from_mode(mode & 0o7777))
            .map_err(self.io(shown, "set mode"))?;
        self.stats.bytes += written;
        Ok(())
    }

    fn hardlink_source(
        &self,
        target: &[u8],
        link: &EntryPath,
        shown: &str,
    ) -> Result<PathBuf, UnpackError> {
        let target_shown = String::from_utf8_lossy(target).into_owned();
        let bad = |reason| {
            self.reject(
                shown,
                Rule::HardlinkTarget {
                    target: target_shown.clone(),
                    reason,
                },
            )
        };
        let parsed = EntryPath::parse(target, self.opts.max_path_len)
            .map_err(|_| bad("must be a relative path inside the image"))?;
        if parsed == *link {
            return Err(bad("links to itself"));
        }
        match lookup_no_follow(&self.root, &parsed) {
            Ok(m) if m.is_file() => Ok(parsed.under(&self.root)),
            Ok(_) => Err(bad("is not a regular file")),
            Err(LookupError::Symlink) => Err(bad("goes through or is a symlink")),
            Err(LookupError::Root) => Err(bad("names the image root")),
            Err(LookupError::Missing) => Err(bad("does not exist in the image")),
        }
    }

    fn whiteout(&mut self, path: &EntryPath, name: &[u8], shown: &str) -> Result<(), UnpackError> {
        let parent = path.parent();
        let parent_full = match lookup_no_follow(&self.root, &parent) {
            Ok(m) if m.is_dir() => parent.under(&self.root),
            Err(LookupError::Root) => self.root.clone(),
            Ok(_) | Err(LookupError::Missing) => return Ok(()),
            Err(LookupError::Symlink) => {
                return Err(self.reject(
                    shown,
                    Rule::ThroughSymlink {
                        at: parent.display(),
                    },
                ));
            }
        };
        if name == OPAQUE {
            let children = fs::read_dir(&parent_full).map_err(self.io(shown, "read directory"))?;
            for child in children {
                let child = child.map_err(self.io(shown, "read directory"))?;
                let mut rel = parent.parts.clone();
                rel.push(child.file_name().as_bytes().to_vec());
                if !self.created.contains(&rel) {
                    self.clear(&child.path(), false, shown)?;
                }
            }
            return Ok(());
        }
        let hidden = &name[WHITEOUT_PREFIX.len()..];
        if hidden.is_empty()
            || hidden == b"."
            || hidden == b".."
            || hidden.starts_with(WHITEOUT_PREFIX)
        {
            return Err(self.reject(shown, Rule::Whiteout("names no valid entry")));
        }
        self.clear(&parent_full.join(OsStr::from_bytes(hidden)), false, shown)
    }

    /// Applies directory modes, deepest first, through `O_NOFOLLOW` handles
    /// after checking that no component became a symlink.
    pub(super) fn finish(&mut self) -> Result<(), UnpackError> {
        let mut modes = std::mem::take(&mut self.dir_modes);
        modes.sort_by_key(|(p, _)| std::cmp::Reverse(p.parts.len()));
        for (path, mode) in modes {
            let shown = path.display();
            match lookup_no_follow(&self.root, &path) {
                Ok(m) if m.is_dir() => {}
                _ => continue,
            }
            let dir = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY)
                .open(path.under(&self.root))
                .map_err(self.io(&shown, "open directory"))?;
            dir.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(self.io(&shown, "set directory mode"))?;
        }
        Ok(())
    }
}

//! Entry path validation and symlink-free walking inside the target.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::error::Rule;

/// A validated entry path: normal components only (may be empty = root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EntryPath {
    pub(super) parts: Vec<Vec<u8>>,
}

impl EntryPath {
    pub(super) fn parse(raw: &[u8], max_len: usize) -> Result<Self, Rule> {
        if raw.len() > max_len {
            return Err(Rule::PathTooLong {
                len: raw.len(),
                max: max_len,
            });
        }
        if raw.contains(&0) {
            return Err(Rule::NulByte);
        }
        if raw.first() == Some(&b'/') {
            return Err(Rule::AbsolutePath);
        }
        let mut parts = Vec::new();
        for part in raw.split(|b| *b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => return Err(Rule::ParentDir),
                p => parts.push(p.to_vec()),
            }
        }
        Ok(Self { parts })
    }

    pub(super) fn display(&self) -> String {
        let joined: Vec<String> = self
            .parts
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        joined.join("/")
    }

    pub(super) fn file_name(&self) -> Option<&[u8]> {
        self.parts.last().map(Vec::as_slice)
    }

    pub(super) fn parent(&self) -> EntryPath {
        let mut parts = self.parts.clone();
        parts.pop();
        EntryPath { parts }
    }

    pub(super) fn under(&self, root: &Path) -> PathBuf {
        let mut p = root.to_owned();
        for part in &self.parts {
            p.push(OsStr::from_bytes(part));
        }
        p
    }
}

/// Makes sure every component of `dir` under `root` is a real directory,
/// creating missing ones (0755). A symlink or non-directory anywhere is a
/// rule violation: nothing is ever created through a symlink.
pub(super) fn ensure_dir(root: &Path, dir: &EntryPath) -> Result<(), DirError> {
    let mut cur = root.to_owned();
    for part in &dir.parts {
        cur.push(OsStr::from_bytes(part));
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(DirError::Rule(Rule::ThroughSymlink {
                    at: rel(root, &cur),
                }));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(DirError::Rule(Rule::ParentNotDir {
                    at: rel(root, &cur),
                }));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&cur).map_err(DirError::Io)?;
            }
            Err(e) => return Err(DirError::Io(e)),
        }
    }
    Ok(())
}

/// Checks, without creating anything, that every component of `path` under
/// `root` exists and is not a symlink; returns the final metadata.
pub(super) fn lookup_no_follow(root: &Path, path: &EntryPath) -> Result<fs::Metadata, LookupError> {
    let mut cur = root.to_owned();
    let mut last = None;
    for part in &path.parts {
        cur.push(OsStr::from_bytes(part));
        let m = fs::symlink_metadata(&cur).map_err(|_| LookupError::Missing)?;
        if m.file_type().is_symlink() {
            return Err(LookupError::Symlink);
        }
        last = Some(m);
    }
    last.ok_or(LookupError::Root)
}

pub(super) enum DirError {
    Rule(Rule),
    Io(io::Error),
}

pub(super) enum LookupError {
    Symlink,
    Root,
    Missing,
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

/// Whether a relative symlink target placed at `link` climbs above the root.
pub(super) fn relative_target_escapes(link: &EntryPath, target: &[u8]) -> bool {
    if target.first() == Some(&b'/') {
        return false;
    }
    let mut depth = link.parts.len().saturating_sub(1) as i64;
    for part in target.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

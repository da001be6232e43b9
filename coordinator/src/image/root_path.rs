//! Resolving a relative path inside a root directory as if the root were
//! `/`: symlinks are followed by hand, absolute targets restart at the root
//! and `..` never climbs above it, so the result always lies under the root.

use std::io;
use std::path::{Component, Path, PathBuf};

/// How many symlinks one resolution may follow.
const MAX_HOPS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum RootPathError {
    #[error("{path}: more than {MAX_HOPS} symlinks while resolving inside {root}")]
    TooManyLinks { root: PathBuf, path: String },
    #[error("{path}: reading {at}: {source}")]
    Io {
        path: String,
        at: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Resolves `rel` (components) under `root`. Components that do not exist
/// yet are kept as they are.
pub fn resolve_in_root(root: &Path, rel: &[String]) -> Result<PathBuf, RootPathError> {
    let display = rel.join("/");
    let mut resolved: Vec<String> = Vec::new();
    let mut pending: Vec<String> = rel.iter().rev().cloned().collect();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let candidate = join(root, &resolved).join(&part);
        match std::fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(RootPathError::TooManyLinks {
                        root: root.to_owned(),
                        path: display,
                    });
                }
                let target =
                    std::fs::read_link(&candidate).map_err(|source| RootPathError::Io {
                        path: display.clone(),
                        at: candidate.clone(),
                        source,
                    })?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for comp in target.components().rev() {
                    match comp {
                        Component::Normal(s) => pending.push(s.to_string_lossy().into_owned()),
                        Component::ParentDir => pending.push("..".to_owned()),
                        Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
                    }
                }
            }
            Ok(_) => resolved.push(part),
            Err(e) if e.kind() == io::ErrorKind::NotFound => resolved.push(part),
            Err(source) => {
                return Err(RootPathError::Io {
                    path: display,
                    at: candidate,
                    source,
                });
            }
        }
    }
    Ok(join(root, &resolved))
}

fn join(root: &Path, parts: &[String]) -> PathBuf {
    let mut p = root.to_owned();
    p.extend(parts);
    p
}

//! Applying `Config` documents to a mounted image directory (before it is
//! distributed). Writes are atomic (temp file + rename in the same
//! directory) and never leave the image root: the target path is resolved
//! with [`resolve_in_root`], so symlinks inside the image are followed only
//! as if the root were `/`.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ferry_shared::config_doc::{ConfigDoc, ConfigDocError};

use super::atomic::write_atomic;
use super::root_path::{RootPathError, resolve_in_root};

#[derive(Debug, thiserror::Error)]
pub enum ConfigApplyError {
    #[error("Config {name:?} ({path}): {source}")]
    Resolve {
        name: String,
        path: String,
        #[source]
        source: RootPathError,
    },
    #[error("Config {name:?}: {source}")]
    Content {
        name: String,
        #[source]
        source: ConfigDocError,
    },
    #[error("Config {name:?}: {op} {at}: {source}")]
    Io {
        name: String,
        op: &'static str,
        at: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Config {name:?}: {at} is a directory, not a file")]
    IsDirectory { name: String, at: PathBuf },
}

/// One file a Config document changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedConfig {
    pub name: String,
    pub path: PathBuf,
}

/// Applies, in order, every document in `docs` that matches `image_name` to
/// the image mounted at `root`.
pub fn apply_configs(
    root: &Path,
    image_name: &str,
    docs: &[ConfigDoc],
) -> Result<Vec<AppliedConfig>, ConfigApplyError> {
    let mut applied = Vec::new();
    for doc in docs.iter().filter(|d| d.matches(image_name)) {
        let target = resolve_in_root(root, doc.path.components()).map_err(|source| {
            ConfigApplyError::Resolve {
                name: doc.name.clone(),
                path: doc.path.as_str().to_owned(),
                source,
            }
        })?;
        apply_one(doc, &target)?;
        applied.push(AppliedConfig {
            name: doc.name.clone(),
            path: target,
        });
    }
    Ok(applied)
}

fn apply_one(doc: &ConfigDoc, target: &Path) -> Result<(), ConfigApplyError> {
    let io_err = |op: &'static str, at: &Path| {
        let name = doc.name.clone();
        let at = at.to_owned();
        move |source| ConfigApplyError::Io {
            name,
            op,
            at,
            source,
        }
    };
    let (existing, mode) = match fs::symlink_metadata(target) {
        Ok(meta) if meta.is_dir() => {
            return Err(ConfigApplyError::IsDirectory {
                name: doc.name.clone(),
                at: target.to_owned(),
            });
        }
        Ok(meta) => (
            Some(fs::read_to_string(target).map_err(io_err("read", target))?),
            meta.permissions().mode() & 0o7777,
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => (None, 0o644),
        Err(e) => return Err(io_err("stat", target)(e)),
    };
    let content =
        doc.apply_to(existing.as_deref())
            .map_err(|source| ConfigApplyError::Content {
                name: doc.name.clone(),
                source,
            })?;
    let dir = target.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    write_atomic(target, content.as_bytes(), mode).map_err(io_err("write", target))
}

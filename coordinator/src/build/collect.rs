//! Registry collection before a build (what `sealos build` does): find the
//! images the context names — `images/shim/*` lists, `image:` values in
//! `manifests/**/*.yaml|yml`, `images/skopeo/tar.txt` archives — skipping
//! what the ignore rules exclude; then copy each image (once it is in the
//! local store) into `<context>/registry` in docker-distribution v2 layout
//! under its repository path without the registry host
//! (`docker.io/library/nginx:1` → `library/nginx`, tag `1`), which is how
//! `sealos.hub:5000/library/nginx:1` finds it on the cluster.
//!
//! Only regular files are read (symlinks are not followed), each at most
//! [`MAX_LIST_FILE`] bytes, directories at most [`MAX_DEPTH`] deep.

use std::fs;
use std::path::{Path, PathBuf};

use ferry_shared::kubefile::IgnoreRules;
use ferry_shared::kubefile::collect::{
    ArchiveSource, CollectError as ListError, archive_list, manifest_images, push_unique, shim_list,
};

use super::registry_dir::{RegistryDir, RegistryDirError};
use crate::oci::reference::{Reference, ReferenceError};
use crate::oci::types::Platform;
use crate::oci::{Store, StoreError};

pub const MAX_LIST_FILE: u64 = 16 << 20;
pub const MAX_DEPTH: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("{path}: {op}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: larger than {MAX_LIST_FILE} bytes; image lists and manifests must be small")]
    TooLarge { path: PathBuf },
    #[error(transparent)]
    List(#[from] ListError),
    #[error("{file}: image `{image}`: {source}")]
    Reference {
        file: String,
        image: String,
        #[source]
        source: ReferenceError,
    },
    #[error(
        "{file}: archive images (`{archive}`) are not supported by ferry build yet; pull the image from a registry and list it in images/shim/ instead"
    )]
    Archive { file: String, archive: String },
    #[error("collecting `{image}` into registry/: {source}")]
    Store {
        image: String,
        #[source]
        source: Box<StoreError>,
    },
    #[error("writing `{image}` into registry/: {source}")]
    Registry {
        image: String,
        #[source]
        source: Box<RegistryDirError>,
    },
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CollectError {
    let path = path.to_owned();
    move |source| CollectError::Io { op, path, source }
}

/// One image to carry, and the context file that named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub reference: Reference,
    pub file: String,
}

fn read_small(path: &Path) -> Result<Option<String>, CollectError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("lstat", path)(e)),
    };
    if !meta.is_file() {
        return Ok(None);
    }
    if meta.len() > MAX_LIST_FILE {
        return Err(CollectError::TooLarge {
            path: path.to_owned(),
        });
    }
    let bytes = fs::read(path).map_err(io("read", path))?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// Regular files under `dir` (context-relative `rel`), sorted, not
/// following symlinks, ignore rules applied.
fn files_under(
    context: &Path,
    rel: &str,
    ignore: &IgnoreRules,
    depth: usize,
    out: &mut Vec<String>,
) -> Result<(), CollectError> {
    let dir = context.join(rel);
    let Ok(meta) = fs::symlink_metadata(&dir) else {
        return Ok(());
    };
    if !meta.is_dir() || depth > MAX_DEPTH {
        return Ok(());
    }
    let mut names: Vec<String> = fs::read_dir(&dir)
        .map_err(io("read dir", &dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in names {
        let child = format!("{rel}/{n}");
        if ignore.is_excluded(&child) {
            continue;
        }
        let m = fs::symlink_metadata(context.join(&child)).map_err(io("lstat", &dir))?;
        if m.is_dir() {
            files_under(context, &child, ignore, depth + 1, out)?;
        } else if m.is_file() {
            out.push(child);
        }
    }
    Ok(())
}

/// The images the context asks for, in first-seen order.
pub fn scan(context: &Path, ignore: &IgnoreRules) -> Result<Vec<Wanted>, CollectError> {
    let mut names: Vec<(String, String)> = Vec::new();
    let mut add = |file: &str, images: Vec<String>| {
        for i in images {
            if !names.iter().any(|(n, _)| *n == i) {
                names.push((i, file.to_string()));
            }
        }
    };
    let mut shim = Vec::new();
    files_under(context, "images/shim", ignore, 0, &mut shim)?;
    for f in &shim {
        if let Some(text) = read_small(&context.join(f))? {
            add(f, shim_list(&text));
        }
    }
    let mut manifests = Vec::new();
    files_under(context, "manifests", ignore, 0, &mut manifests)?;
    for f in manifests
        .iter()
        .filter(|f| f.ends_with(".yaml") || f.ends_with(".yml"))
    {
        if let Some(text) = read_small(&context.join(f))? {
            let mut list = Vec::new();
            for i in manifest_images(f, &text)? {
                push_unique(&mut list, &i);
            }
            add(f, list);
        }
    }
    let tar_txt = "images/skopeo/tar.txt";
    if !ignore.is_excluded(tar_txt)
        && let Some(text) = read_small(&context.join(tar_txt))?
        && let Some(ArchiveSource { file, name, .. }) =
            archive_list(tar_txt, &text)?.into_iter().next()
    {
        return Err(CollectError::Archive {
            file: tar_txt.to_string(),
            archive: format!("{file}@{name}"),
        });
    }
    names
        .into_iter()
        .map(|(image, file)| {
            let reference = image.parse().map_err(|source| CollectError::Reference {
                file: file.clone(),
                image: image.clone(),
                source,
            })?;
            Ok(Wanted { reference, file })
        })
        .collect()
}

/// Copies every wanted image (already in `store`) into `registry`.
pub fn write_registry(
    store: &Store,
    registry: &RegistryDir,
    wanted: &[Wanted],
    platform: &Platform,
) -> Result<(), CollectError> {
    for w in wanted {
        let shown = w.reference.to_string();
        let image =
            store
                .resolve(&shown, Some(platform))
                .map_err(|source| CollectError::Store {
                    image: shown.clone(),
                    source: Box::new(source),
                })?;
        registry
            .add_image(
                store,
                &image,
                &w.reference.repository,
                w.reference.tag.as_deref(),
            )
            .map_err(|source| CollectError::Registry {
                image: shown.clone(),
                source: Box::new(source),
            })?;
    }
    Ok(())
}

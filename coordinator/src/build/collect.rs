//! Registry collection before a build (what `sealos build` does): find the
//! images the context names — `images/shim/*` lists, `image:` values in
//! `manifests/**/*.yaml|yml`, images in `charts/*/values.yaml` (no helm
//! rendering), `images/skopeo/tar.txt` archives — skipping
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
    ArchiveSource, CollectError as ListError, archive_list, chart_app_version, chart_values_images,
    manifest_images, push_unique, shim_list,
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
    #[error("{file}: archive `{archive}` is not a regular file inside the build context")]
    ArchiveOutside { file: String, archive: String },
    #[error(
        "{file}: archive {archive:?} holds {loaded:?}, none of them `{image}`; name one of those after `@`"
    )]
    ArchiveImage {
        file: String,
        archive: PathBuf,
        image: String,
        loaded: Vec<String>,
    },
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

/// One image to carry (under `reference`'s repository and tag), the
/// context file that named it, and the archive it comes from (else a
/// registry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub reference: Reference,
    pub file: String,
    pub archive: Option<PathBuf>,
}

/// The loaded image an archive line means: the one named like the line's
/// image, else the archive's only image.
pub fn pick_loaded(w: &Wanted, archive: &Path, loaded: &[String]) -> Result<String, CollectError> {
    let want = crate::oci::store::store_name(&w.reference);
    if loaded.contains(&want) {
        return Ok(want);
    }
    match loaded {
        [only] => Ok(only.clone()),
        _ => Err(CollectError::ArchiveImage {
            file: w.file.clone(),
            archive: archive.to_owned(),
            image: w.reference.to_string(),
            loaded: loaded.to_vec(),
        }),
    }
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

/// `charts/<name>` directories (not symlinks), sorted, not excluded.
fn chart_dirs(context: &Path, ignore: &IgnoreRules) -> Result<Vec<String>, CollectError> {
    let dir = context.join("charts");
    let Ok(rd) = fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(io("read dir", &dir))?;
        let rel = format!("charts/{}", e.file_name().to_string_lossy());
        let is_dir = e.file_type().map_err(io("lstat", &dir))?.is_dir();
        if is_dir && !ignore.is_excluded(&rel) {
            out.push(rel);
        }
    }
    out.sort();
    Ok(out)
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
    for chart in chart_dirs(context, ignore)? {
        let values = format!("{chart}/values.yaml");
        if ignore.is_excluded(&values) {
            continue;
        }
        let Some(text) = read_small(&context.join(&values))? else {
            continue;
        };
        let app_version = read_small(&context.join(format!("{chart}/Chart.yaml")))?
            .as_deref()
            .and_then(chart_app_version);
        add(
            &values,
            chart_values_images(&values, &text, app_version.as_deref())?,
        );
    }
    let mut out: Vec<Wanted> = names
        .into_iter()
        .map(|(image, file)| {
            let reference = parse_ref(&file, &image)?;
            Ok(Wanted {
                reference,
                file,
                archive: None,
            })
        })
        .collect::<Result<_, CollectError>>()?;
    let tar_txt = "images/skopeo/tar.txt";
    if !ignore.is_excluded(tar_txt)
        && let Some(text) = read_small(&context.join(tar_txt))?
    {
        for ArchiveSource { file, name, .. } in archive_list(tar_txt, &text)? {
            let path = archive_path(context, tar_txt, &file)?;
            out.push(Wanted {
                reference: parse_ref(tar_txt, &name)?,
                file: tar_txt.to_string(),
                archive: Some(path),
            });
        }
    }
    Ok(out)
}

fn parse_ref(file: &str, image: &str) -> Result<Reference, CollectError> {
    image.parse().map_err(|source| CollectError::Reference {
        file: file.to_string(),
        image: image.to_string(),
        source,
    })
}

/// An archive named by tar.txt: a regular file inside the context.
fn archive_path(context: &Path, list: &str, file: &str) -> Result<PathBuf, CollectError> {
    let outside = || CollectError::ArchiveOutside {
        file: list.to_string(),
        archive: file.to_string(),
    };
    let joined = context.join(file.trim_start_matches('/'));
    let real = fs::canonicalize(&joined).map_err(io("resolve", &joined))?;
    if !real.starts_with(context) || !real.is_file() {
        return Err(outside());
    }
    Ok(real)
}

/// Copies every wanted image into `registry`; `locals[i]` is the store
/// name of `wanted[i]` (pulled or loaded already).
pub fn write_registry(
    store: &Store,
    registry: &RegistryDir,
    wanted: &[Wanted],
    locals: &[String],
    platform: &Platform,
) -> Result<(), CollectError> {
    for (w, local) in wanted.iter().zip(locals) {
        let shown = w.reference.to_string();
        let image = store
            .resolve(local, Some(platform))
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

//! Rendering the templates of a mounted image on the bastion, as sealos
//! does before copying: every `*.tmpl` / `*.tpl` regular file under `etc/`,
//! `scripts/` and `manifests/` is rendered with the env and written beside
//! it without the suffix (atomically, keeping the template's mode).
//! Symlinks are never followed: linked files and directories are skipped,
//! and an output path that is a symlink is replaced, not written through.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ferry_shared::template::{TemplateData, TemplateError, output_name, render};

use super::atomic::write_atomic;

/// The image directories sealos renders.
pub const RENDER_DIRS: [&str; 3] = ["etc", "scripts", "manifests"];

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {source}")]
    Template {
        path: PathBuf,
        #[source]
        source: TemplateError,
    },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> RenderError + use<> {
    let path = path.to_owned();
    move |source| RenderError::Io { op, path, source }
}

/// One template of a mounted image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The template's path relative to the image root (`etc/a.conf.tmpl`).
    pub name: String,
    /// Where its output goes, relative to the image root (`etc/a.conf`).
    pub out: String,
    pub text: String,
    /// Permission bits (the output gets them too).
    pub mode: u32,
}

impl Template {
    pub fn render(&self, data: &TemplateData) -> Result<String, RenderError> {
        render(&self.name, &self.text, data).map_err(|source| RenderError::Template {
            path: PathBuf::from(&self.name),
            source,
        })
    }
}

/// The templates of the image at `root` (sorted by path).
pub fn find_templates(root: &Path) -> Result<Vec<Template>, RenderError> {
    let mut found = Vec::new();
    for dir in RENDER_DIRS {
        let path = root.join(dir);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => find_in(&path, root, &mut found)?,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("stat", &path)(e)),
        }
    }
    Ok(found)
}

/// Renders the templates of the image at `root`; returns the written
/// files (sorted).
pub fn render_image_templates(
    root: &Path,
    data: &TemplateData,
) -> Result<Vec<PathBuf>, RenderError> {
    let mut written = Vec::new();
    for t in find_templates(root)? {
        let rendered = t.render(data).map_err(|e| match e {
            RenderError::Template { source, .. } => RenderError::Template {
                path: root.join(&t.name),
                source,
            },
            other => other,
        })?;
        let out = root.join(&t.out);
        if fs::symlink_metadata(&out).is_ok_and(|m| m.is_dir()) {
            return Err(io_err("write", &out)(io::Error::other(
                "a directory is in the way",
            )));
        }
        write_atomic(&out, rendered.as_bytes(), t.mode).map_err(io_err("write", &out))?;
        written.push(out);
    }
    Ok(written)
}

fn find_in(dir: &Path, root: &Path, found: &mut Vec<Template>) -> Result<(), RenderError> {
    let mut entries = fs::read_dir(dir)
        .map_err(io_err("read directory", dir))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err("read directory", dir))?;
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type().map_err(io_err("stat", &path))?;
        if kind.is_dir() {
            find_in(&path, root, found)?;
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let name = entry.file_name();
        let Some(out_name) = name.to_str().and_then(output_name) else {
            continue;
        };
        let text = fs::read_to_string(&path).map_err(io_err("read", &path))?;
        let rel = |p: &Path| {
            p.strip_prefix(root)
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned()
        };
        let mode = entry
            .metadata()
            .map_err(io_err("stat", &path))?
            .permissions()
            .mode()
            & 0o7777;
        found.push(Template {
            name: rel(&path),
            out: rel(&dir.join(out_name)),
            text,
            mode,
        });
    }
    Ok(())
}

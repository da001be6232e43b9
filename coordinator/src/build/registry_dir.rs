//! A docker-distribution v2 filesystem storage tree (what `registry serve`
//! / the Debian `docker-registry` serve with `rootdirectory: <dir>`), the
//! `registry/` directory a cluster image carries:
//!
//! ```text
//! <dir>/docker/registry/v2/blobs/sha256/<2 hex>/<hex>/data
//! <dir>/docker/registry/v2/repositories/<repo>/_layers/sha256/<hex>/link
//! <dir>/docker/registry/v2/repositories/<repo>/_manifests/revisions/sha256/<hex>/link
//! <dir>/docker/registry/v2/repositories/<repo>/_manifests/tags/<tag>/current/link
//! <dir>/docker/registry/v2/repositories/<repo>/_manifests/tags/<tag>/index/sha256/<hex>/link
//! ```
//!
//! Link files hold `sha256:<hex>`. Blobs are written to a temp file,
//! verified and renamed, and copied from the local image store (hard links
//! where the filesystem allows, since both sides are immutable).
//!
//! Invariant: repository names and tags are validated (docker grammar)
//! before they become paths, so an image list cannot write outside `<dir>`.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::oci::store::ResolvedImage;
use crate::oci::types::Digest;
use crate::oci::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RegistryDirError {
    #[error("{path}: {op}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid repository name `{0}` for the registry directory")]
    BadRepository(String),
    #[error("invalid tag `{0}` for the registry directory")]
    BadTag(String),
    #[error("blob {expected}: content hashes to {actual}; the source is corrupt, pull it again")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> RegistryDirError {
    let path = path.to_owned();
    move |source| RegistryDirError::Io { op, path, source }
}

/// Docker's repository grammar: lowercase components `[a-z0-9]+` joined by
/// `.`, `_`, `__` or `-`s, separated by `/`.
pub fn valid_repository(repo: &str) -> bool {
    !repo.is_empty()
        && repo.len() <= 255
        && repo.split('/').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || b"._-".contains(x))
                && !c.contains("..")
        })
}

/// Docker's tag grammar `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|x| x.is_ascii_alphanumeric() || b"_.-".contains(x))
}

/// Streams `reader` into `tmp` (0444, synced), checking it hashes to
/// `expected`.
fn write_verified(
    tmp: &Path,
    expected: &Digest,
    reader: &mut impl Read,
) -> Result<(), RegistryDirError> {
    let mut file = fs::File::create(tmp).map_err(io_err("create", tmp))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(io_err("read", tmp))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(io_err("write", tmp))?;
    }
    // Read-only like the store's blobs, so hard-linked and copied blobs
    // look the same in a layer.
    file.set_permissions(fs::Permissions::from_mode(0o444))
        .map_err(io_err("chmod", tmp))?;
    file.sync_all().map_err(io_err("sync", tmp))?;
    let actual = Digest::from_hasher(hasher);
    if actual != *expected {
        return Err(RegistryDirError::DigestMismatch {
            expected: expected.clone(),
            actual,
        });
    }
    Ok(())
}

/// A registry storage tree rooted at `root` (the `registry/` directory).
#[derive(Debug, Clone)]
pub struct RegistryDir {
    root: PathBuf,
}

impl RegistryDir {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    fn v2(&self) -> PathBuf {
        self.root.join("docker/registry/v2")
    }

    /// `blobs/sha256/<2>/<hex>/data`.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.v2()
            .join("blobs/sha256")
            .join(&d.hex()[..2])
            .join(d.hex())
            .join("data")
    }

    fn repo_dir(&self, repo: &str) -> Result<PathBuf, RegistryDirError> {
        if !valid_repository(repo) {
            return Err(RegistryDirError::BadRepository(repo.to_string()));
        }
        Ok(self.v2().join("repositories").join(repo))
    }

    fn write_link(&self, dir: PathBuf, d: &Digest) -> Result<(), RegistryDirError> {
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let link = dir.join("link");
        crate::image::atomic::write_atomic(&link, d.as_str().as_bytes(), 0o644)
            .map_err(io_err("write", &link))
    }

    /// Stores a blob from `reader`, verifying it hashes to `expected`.
    pub fn put_blob(
        &self,
        expected: &Digest,
        mut reader: impl Read,
    ) -> Result<(), RegistryDirError> {
        let path = self.blob_path(expected);
        if path.is_file() {
            return Ok(());
        }
        let dir = path.parent().unwrap_or(&self.root).to_owned();
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let tmp = dir.join(format!("data.tmp-{}", std::process::id()));
        let written = write_verified(&tmp, expected, &mut reader);
        if written.is_err() {
            // Never leave a partial file: it would end up in the image.
            let _ = fs::remove_file(&tmp);
        }
        written?;
        fs::rename(&tmp, &path).map_err(io_err("rename", &path))
    }

    /// Copies blob `d` from the store, verified. Never a hard link: the
    /// registry dir lives in a build context the user edits, and a shared
    /// inode would let an edit there corrupt the store.
    fn blob_from_store(&self, store: &Store, d: &Digest) -> Result<(), RegistryDirError> {
        if self.blob_path(d).is_file() {
            return Ok(());
        }
        let file = store.open_blob(d)?;
        self.put_blob(d, file)
    }

    /// Records a layer (or config) blob as part of `repo`.
    pub fn link_layer(&self, repo: &str, d: &Digest) -> Result<(), RegistryDirError> {
        let dir = self.repo_dir(repo)?.join("_layers/sha256").join(d.hex());
        self.write_link(dir, d)
    }

    /// Stores manifest `bytes` (already hashed to `d`) in `repo`, and
    /// points `tag` at it when given.
    pub fn put_manifest(
        &self,
        repo: &str,
        tag: Option<&str>,
        d: &Digest,
        bytes: &[u8],
    ) -> Result<(), RegistryDirError> {
        let repo_dir = self.repo_dir(repo)?;
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(RegistryDirError::BadTag(t.to_string()));
        }
        self.put_blob(d, bytes)?;
        let manifests = repo_dir.join("_manifests");
        self.write_link(manifests.join("revisions/sha256").join(d.hex()), d)?;
        if let Some(t) = tag {
            let tag_dir = manifests.join("tags").join(t);
            self.write_link(tag_dir.join("index/sha256").join(d.hex()), d)?;
            self.write_link(tag_dir.join("current"), d)?;
        }
        Ok(())
    }

    /// Copies one resolved store image (config, layers, manifest bytes as
    /// stored) into `repo`, tagged `tag` when given.
    pub fn add_image(
        &self,
        store: &Store,
        image: &ResolvedImage,
        repo: &str,
        tag: Option<&str>,
    ) -> Result<(), RegistryDirError> {
        self.repo_dir(repo)?;
        let m = &image.manifest;
        for d in std::iter::once(&m.config.digest).chain(m.layers.iter().map(|l| &l.digest)) {
            self.blob_from_store(store, d)?;
            self.link_layer(repo, d)?;
        }
        let bytes = store.read_blob(&image.manifest_descriptor.digest)?;
        self.put_manifest(repo, tag, &image.manifest_descriptor.digest, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        for ok in ["library/nginx", "a", "labring/kube-rs_x.y", "a/b/c"] {
            assert!(valid_repository(ok), "{ok}");
        }
        for bad in ["", "../x", "a//b", "A/b", "a/..", "/abs", "a/.x", "a b"] {
            assert!(!valid_repository(bad), "{bad}");
        }
        assert!(valid_tag("v1.27.7") && valid_tag("_x") && !valid_tag(".x") && !valid_tag("a/b"));
    }

    #[test]
    fn layout_paths_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let r = RegistryDir::new(dir.path());
        let body = br#"{"schemaVersion":2}"#;
        let d = Digest::of(body);
        r.put_manifest("library/nginx", Some("1.25"), &d, body)
            .unwrap();
        let v2 = dir.path().join("docker/registry/v2");
        let hex = d.hex();
        assert_eq!(
            fs::read(v2.join(format!("blobs/sha256/{}/{hex}/data", &hex[..2]))).unwrap(),
            body
        );
        let m = v2.join("repositories/library/nginx/_manifests");
        for link in [
            format!("revisions/sha256/{hex}/link"),
            "tags/1.25/current/link".to_string(),
            format!("tags/1.25/index/sha256/{hex}/link"),
        ] {
            assert_eq!(fs::read_to_string(m.join(link)).unwrap(), d.as_str());
        }
        let wrong = Digest::of(b"other");
        assert!(matches!(
            r.put_blob(&wrong, &b"x"[..]),
            Err(RegistryDirError::DigestMismatch { .. })
        ));
        assert!(r.put_manifest("../evil", None, &d, body).is_err());
        assert!(r.put_manifest("ok", Some("../t"), &d, body).is_err());
    }
}

//! `ferry save`: images from the store into one tar (temp file, renamed
//! into place when complete). Blobs are re-verified while being written.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::{ArchiveError, ArchiveFormat};
use crate::oci::store::{ResolvedImage, Store, StoreError};
use crate::oci::types::{ANNOTATION_REF_NAME, Descriptor, Digest, Index};

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// Writes `images` (names or ids) to `out` in `format`; returns the bytes written.
pub fn save(
    store: &Store,
    images: &[String],
    out: &Path,
    format: ArchiveFormat,
) -> Result<u64, ArchiveError> {
    let resolved: Vec<ResolvedImage> = images
        .iter()
        .map(|i| store.resolve(i, None))
        .collect::<Result<_, _>>()?;
    let io_err = |source| ArchiveError::Io {
        path: out.to_owned(),
        source,
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = TempOut(out.with_file_name(format!(".{name}.ferry-tmp-{}", std::process::id())));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp.0)
        .map_err(io_err)?;
    let mut tar = tar::Builder::new(BufWriter::new(file));
    tar.mode(tar::HeaderMode::Deterministic);

    let mut index = Index::default();
    let mut docker = Vec::new();
    let mut blobs = BTreeSet::new();
    for img in &resolved {
        let mut d: Descriptor = img.manifest_descriptor.clone();
        d.platform = Some(img.config.platform());
        d.annotations
            .insert(ANNOTATION_REF_NAME.to_string(), img.name.clone());
        index.manifests.push(d);
        blobs.insert(img.manifest_descriptor.digest.clone());
        blobs.insert(img.manifest.config.digest.clone());
        blobs.extend(img.manifest.layers.iter().map(|l| l.digest.clone()));
        docker.push(DockerEntry {
            config: blob_name(&img.manifest.config.digest),
            repo_tags: vec![img.name.clone()],
            layers: img
                .manifest
                .layers
                .iter()
                .map(|l| blob_name(&l.digest))
                .collect(),
        });
    }
    append_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io_err)?;
    append_bytes(&mut tar, "index.json", &to_json(&index).map_err(io_err)?).map_err(io_err)?;
    if format == ArchiveFormat::DockerArchive {
        append_bytes(
            &mut tar,
            "manifest.json",
            &to_json(&docker).map_err(io_err)?,
        )
        .map_err(io_err)?;
    }
    for digest in &blobs {
        append_blob(store, &mut tar, digest).map_err(|e| match e {
            BlobErr::Io(source) => ArchiveError::Io {
                path: out.to_owned(),
                source,
            },
            BlobErr::Store(s) => ArchiveError::Store(s),
        })?;
    }
    let mut w = tar.into_inner().map_err(io_err)?;
    w.flush().map_err(io_err)?;
    let file = w.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.sync_all().map_err(io_err)?;
    let size = file.metadata().map_err(io_err)?.len();
    std::fs::rename(&tmp.0, out).map_err(io_err)?;
    Ok(size)
}

fn to_json<T: Serialize>(v: &T) -> io::Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(io::Error::other)
}

/// Removes the temp archive unless it was renamed into place.
struct TempOut(std::path::PathBuf);

impl Drop for TempOut {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mtime(0);
    h
}

fn append_bytes<W: Write>(tar: &mut tar::Builder<W>, path: &str, bytes: &[u8]) -> io::Result<()> {
    tar.append_data(&mut header(bytes.len() as u64), path, bytes)
}

enum BlobErr {
    Io(io::Error),
    Store(StoreError),
}

/// Reads through a hasher so the blob is verified as it is archived.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn append_blob<W: Write>(
    store: &Store,
    tar: &mut tar::Builder<W>,
    digest: &Digest,
) -> Result<(), BlobErr> {
    let file: File = store.open_blob(digest).map_err(BlobErr::Store)?;
    let size = file.metadata().map_err(BlobErr::Io)?.len();
    let mut reader = Hashing {
        inner: file,
        hasher: Sha256::new(),
    };
    tar.append_data(&mut header(size), blob_name(digest), &mut reader)
        .map_err(BlobErr::Io)?;
    let actual = Digest::from_hasher(reader.hasher);
    if actual != *digest {
        return Err(BlobErr::Store(StoreError::DigestMismatch {
            expected: digest.clone(),
            actual,
            size,
        }));
    }
    Ok(())
}

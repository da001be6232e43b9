//! Blob ingest and access: temp file in `tmp/`, sha256 while streaming,
//! fsync, verify, rename into `blobs/sha256/<hex>` (read-only, 0444).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::{MAX_JSON_BLOB, Store, StoreError};
use crate::oci::types::{Descriptor, Digest};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A blob being written. Bytes go to a temp file and a sha256 hasher;
/// [`BlobWriter::commit`] verifies and publishes it. Dropped without commit
/// (error, interruption), the temp file is removed and nothing is visible.
#[derive(Debug)]
pub struct BlobWriter {
    blobs: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
    hasher: Sha256,
    size: u64,
    expected: Option<Digest>,
    expected_size: Option<u64>,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.size
    }

    /// Checks the digest (and size, if given), syncs and publishes the blob.
    /// On a mismatch the temp file is removed and nothing is recorded.
    pub fn commit(mut self) -> Result<(Digest, u64), StoreError> {
        let actual = Digest::from_hasher(std::mem::take(&mut self.hasher));
        if let Some(expected) = self.expected_size.filter(|e| *e != self.size) {
            return Err(StoreError::SizeMismatch {
                digest: self.expected.clone().unwrap_or(actual),
                expected,
                actual: self.size,
            });
        }
        if let Some(expected) = self.expected.as_ref().filter(|e| **e != actual) {
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual,
                size: self.size,
            });
        }
        let final_path = self.blobs.join(actual.hex());
        if let Some(file) = self.file.take() {
            file.sync_all().map_err(StoreError::io("sync", &self.tmp))?;
            file.set_permissions(fs::Permissions::from_mode(0o444))
                .map_err(StoreError::io("chmod", &self.tmp))?;
        }
        if final_path.exists() {
            // Same content already there (another pull got it first).
            let _ = fs::remove_file(&self.tmp);
        } else {
            fs::rename(&self.tmp, &final_path).map_err(StoreError::io("rename", &final_path))?;
            if let Ok(dir) = File::open(&self.blobs) {
                let _ = dir.sync_all();
            }
        }
        Ok((actual, self.size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("blob writer already committed"))?;
        let n = file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), Write::flush)
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.is_some() || self.tmp.exists() {
            self.file = None;
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl Store {
    /// Where blob `digest` lives (it may not exist).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Whether the blob is present (present blobs are complete and verified).
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Size of a present blob.
    pub fn blob_size(&self, digest: &Digest) -> Option<u64> {
        fs::metadata(self.blob_path(digest)).ok().map(|m| m.len())
    }

    /// Starts writing a blob. With `expected`, commit fails unless the
    /// content hashes to it; with `expected_size`, unless it has that size.
    pub fn blob_writer(
        &self,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<BlobWriter, StoreError> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = self.tmp_dir().join(format!(
            "ingest-{}-{n}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(StoreError::io("create", &tmp))?;
        Ok(BlobWriter {
            blobs: self.root.join("blobs/sha256"),
            tmp,
            file: Some(file),
            hasher: Sha256::new(),
            size: 0,
            expected: expected.cloned(),
            expected_size,
        })
    }

    /// Streams `reader` into a verified blob and returns its descriptor.
    /// Never holds the whole content in memory.
    pub fn put_blob_from_reader(
        &self,
        media_type: &str,
        expected: Option<&Digest>,
        mut reader: impl Read,
    ) -> Result<Descriptor, StoreError> {
        let mut w = self.blob_writer(expected, None)?;
        let tmp = w.tmp.clone();
        io::copy(&mut reader, &mut w).map_err(StoreError::io("write", tmp))?;
        let (digest, size) = w.commit()?;
        Ok(Descriptor::new(media_type, digest, size))
    }

    /// Stores `bytes` as a blob.
    pub fn put_bytes(&self, media_type: &str, bytes: &[u8]) -> Result<Descriptor, StoreError> {
        self.put_blob_from_reader(media_type, None, bytes)
    }

    /// Serialises `value` as compact JSON and stores it. The returned
    /// descriptor's digest is over exactly the stored bytes.
    pub fn put_json_blob<T: Serialize>(
        &self,
        media_type: &str,
        value: &T,
    ) -> Result<Descriptor, StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Corrupt {
            what: "json value",
            digest: String::new(),
            reason: e.to_string(),
        })?;
        self.put_bytes(media_type, &bytes)
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        let p = self.blob_path(digest);
        File::open(&p).map_err(StoreError::io("open blob", p))
    }

    /// Reads a small blob (manifest, index, config) into memory, refusing
    /// anything over [`MAX_JSON_BLOB`].
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let p = self.blob_path(digest);
        let len = fs::metadata(&p)
            .map_err(StoreError::io("stat blob", &p))?
            .len();
        if len > MAX_JSON_BLOB {
            return Err(StoreError::TooLarge {
                digest: digest.clone(),
                max: MAX_JSON_BLOB,
            });
        }
        fs::read(&p).map_err(StoreError::io("read blob", p))
    }

    /// Re-hashes a present blob (e.g. before `save`); mismatch is an error.
    pub fn verify_blob(&self, digest: &Digest) -> Result<(), StoreError> {
        let p = self.blob_path(digest);
        let mut file = File::open(&p).map_err(StoreError::io("open blob", &p))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut size = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .map_err(StoreError::io("read blob", &p))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        let actual = Digest::from_hasher(hasher);
        if actual != *digest {
            return Err(StoreError::DigestMismatch {
                expected: digest.clone(),
                actual,
                size,
            });
        }
        Ok(())
    }

    pub(super) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }
}

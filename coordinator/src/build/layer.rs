//! Reproducible layer tars: a [`Tree`] written as a tar stream in path
//! order, every header with the same fixed mtime (0 or `SOURCE_DATE_EPOCH`),
//! uid/gid 0, no user/group names, the tree's modes; compressed with gzip
//! (default, like buildah) or zstd. The layer digest (compressed bytes) and
//! the diff_id (uncompressed tar) are computed while streaming; file
//! contents are streamed, never held in memory.
//!
//! Invariant: the same tree content gives byte-identical output, whatever
//! the source files' mtimes, owners or directory order.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

use super::tree::{EntryKind, Tree};

/// Layer compression (`--compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
}

impl Compression {
    /// The OCI media type of a layer compressed this way.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("{path}: {op} while writing the layer: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing the layer: {0}")]
    Write(#[source] io::Error),
    #[error("{path}: changed while the layer was written (size was {expected}); build again")]
    Changed { path: PathBuf, expected: u64 },
}

/// Digests and size of a written layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDigests {
    /// `sha256:<hex>` of the compressed blob.
    pub digest: String,
    pub size: u64,
    /// `sha256:<hex>` of the uncompressed tar.
    pub diff_id: String,
}

/// Passes bytes through while hashing and counting them.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    fn finish(self) -> (W, String, u64) {
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        (self.inner, digest, self.count)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Encoder<W: Write> {
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

impl<W: Write> Encoder<W> {
    fn new(inner: W, c: Compression) -> io::Result<Self> {
        Ok(match c {
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                inner,
                flate2::Compression::default(),
            )),
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(inner, 3)?),
        })
    }
    fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

/// Reads exactly `len` bytes, failing if the file is shorter.
struct Exact<R> {
    inner: io::Take<R>,
    path: PathBuf,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && self.inner.limit() > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} shrank while being read", self.path.display()),
            ));
        }
        Ok(n)
    }
}

fn header(kind: tar::EntryType, mode: u32, mtime: u64, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h.set_size(size);
    h
}

/// Writes `tree` as a compressed layer into `out`; returns `out` and the
/// digests. `mtime` goes into every header.
pub fn write_layer<W: Write>(
    tree: &Tree,
    out: W,
    compression: Compression,
    mtime: u64,
) -> Result<(W, LayerDigests), LayerError> {
    let compressed = Hashing::new(out);
    let encoder = Encoder::new(compressed, compression).map_err(LayerError::Write)?;
    let mut builder = tar::Builder::new(Hashing::new(encoder));
    for (path, entry) in &tree.entries {
        match &entry.kind {
            EntryKind::Dir => {
                let mut h = header(tar::EntryType::Directory, entry.mode, mtime, 0);
                builder
                    .append_data(&mut h, format!("{path}/"), io::empty())
                    .map_err(LayerError::Write)?;
            }
            EntryKind::Symlink { target } => {
                let mut h = header(tar::EntryType::Symlink, entry.mode, mtime, 0);
                builder
                    .append_link(&mut h, path, target)
                    .map_err(LayerError::Write)?;
            }
            EntryKind::File { source } => {
                // Opened without following a symlink swapped in since the
                // context was checked, and still a regular file.
                let file = OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(source)
                    .map_err(|e| LayerError::Io {
                        op: "open (no symlinks)",
                        path: source.clone(),
                        source: e,
                    })?;
                let meta = file.metadata().map_err(|e| LayerError::Io {
                    op: "stat",
                    path: source.clone(),
                    source: e,
                })?;
                if !meta.is_file() {
                    return Err(LayerError::Io {
                        op: "read (no longer a regular file)",
                        path: source.clone(),
                        source: io::Error::from(io::ErrorKind::InvalidInput),
                    });
                }
                let len = meta.len();
                let mut h = header(tar::EntryType::Regular, entry.mode, mtime, len);
                let reader = Exact {
                    inner: file.take(len),
                    path: source.clone(),
                };
                builder.append_data(&mut h, path, reader).map_err(|e| {
                    if e.kind() == io::ErrorKind::UnexpectedEof {
                        LayerError::Changed {
                            path: source.clone(),
                            expected: len,
                        }
                    } else {
                        LayerError::Write(e)
                    }
                })?;
            }
        }
    }
    let uncompressed = builder.into_inner().map_err(LayerError::Write)?;
    let (encoder, diff_id, _) = uncompressed.finish();
    let compressed = encoder.finish().map_err(LayerError::Write)?;
    let (out, digest, size) = compressed.finish();
    Ok((
        out,
        LayerDigests {
            digest,
            size,
            diff_id,
        },
    ))
}

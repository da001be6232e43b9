//! Safe unpacking of OCI layer tar streams (plain, gzip, zstd) into a target
//! directory, with OCI whiteouts so that a stack of layers merges.
//!
//! Hostile entries are rejected before anything is written for them, and
//! nothing is ever written outside the target:
//! - paths: absolute, `..`, NUL, longer than `max_path_len` are rejected;
//! - symlinks are created but never followed: every parent component is
//!   checked with `symlink_metadata` and must be a real directory, files are
//!   created with `O_EXCL` (after removing what was there), directory modes
//!   are applied through `O_NOFOLLOW` handles after re-checking the path;
//!   relative symlink targets that climb above the root are rejected
//!   (absolute targets are kept: they point into the node's root later);
//! - hardlinks must name an entry already unpacked (this layer or a lower
//!   one) that is a regular file reached without symlinks;
//! - character/block devices and FIFOs are rejected; setuid/setgid bits are
//!   rejected unless `allow_setuid`;
//! - limits: bytes per entry, bytes per layer, entries per layer, and bytes
//!   per GNU long-name / PAX header, checked at the header block before the
//!   `tar` crate reads that header into memory (`guard.rs`).
//!
//! Whiteouts: `.wh.NAME` removes `NAME` from lower layers;
//! `.wh..wh..opq` empties its directory of everything lower layers put
//! there (entries of the same layer are kept). Ownership, timestamps and
//! xattrs are not restored (the bastion copy is only a staging tree).

mod entries;
pub mod error;
pub mod guard;
mod paths;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

pub use error::{LayerId, Rule, UnpackError};

/// Limits and switches for unpacking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackOptions {
    pub allow_setuid: bool,
    pub max_entry_size: u64,
    pub max_total_size: u64,
    pub max_entries: u64,
    pub max_path_len: usize,
    /// Bytes of one GNU long-name/link or PAX extension header.
    pub max_header_size: u64,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        Self {
            allow_setuid: false,
            max_entry_size: 4 << 30,
            max_total_size: 32 << 30,
            max_entries: 1_000_000,
            max_path_len: 4096,
            max_header_size: guard::MAX_HEADER_SIZE,
        }
    }
}

/// Compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// From an OCI/Docker layer media type (`...tar+gzip`, `...tar.gzip`,
    /// `...tar+zstd`, plain `...tar`).
    pub fn from_media_type(media_type: &str) -> Self {
        if media_type.ends_with("gzip") {
            Self::Gzip
        } else if media_type.ends_with("zstd") {
            Self::Zstd
        } else {
            Self::None
        }
    }

    /// From the first bytes of the blob (magic numbers).
    pub fn sniff(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else {
            Self::None
        }
    }
}

/// What one layer contributed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackStats {
    pub entries: u64,
    pub bytes: u64,
    pub whiteouts: u64,
}

/// Unpacks one layer, detecting its compression from the stream itself.
pub fn unpack_layer<R: Read>(
    blob: R,
    target: &Path,
    layer: &LayerId,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let mut buffered = BufReader::new(blob);
    let head = buffered.fill_buf().map_err(|source| UnpackError::Read {
        layer: layer.clone(),
        source,
    })?;
    match Compression::sniff(head) {
        Compression::None => unpack_tar(buffered, target, layer, opts),
        Compression::Gzip => {
            unpack_tar(flate2::read::GzDecoder::new(buffered), target, layer, opts)
        }
        Compression::Zstd => {
            let decoder =
                zstd::Decoder::with_buffer(buffered).map_err(|source| UnpackError::Read {
                    layer: layer.clone(),
                    source,
                })?;
            unpack_tar(decoder, target, layer, opts)
        }
    }
}

/// Unpacks an uncompressed tar stream.
pub fn unpack_tar<R: Read>(
    tar_stream: R,
    target: &Path,
    layer: &LayerId,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    if !std::fs::symlink_metadata(target).is_ok_and(|m| m.is_dir()) {
        return Err(UnpackError::Target(target.to_owned()));
    }
    let mut state = entries::LayerState {
        root: target.to_owned(),
        layer: layer.clone(),
        opts: opts.clone(),
        created: HashSet::new(),
        dir_modes: Vec::new(),
        stats: UnpackStats::default(),
    };
    let guarded = guard::HeaderGuard::new(tar_stream, opts.max_header_size);
    let mut archive = tar::Archive::new(guarded);
    let read_err = |source: std::io::Error| match guard::too_large(&source) {
        Some(h) => UnpackError::Rejected {
            layer: layer.clone(),
            path: h.name.clone(),
            rule: Rule::HeaderTooLarge {
                kind: h.kind,
                size: h.size,
                max: h.max,
            },
        },
        None => UnpackError::Read {
            layer: layer.clone(),
            source,
        },
    };
    for entry in archive.entries().map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        state.stats.entries += 1;
        if state.stats.entries > opts.max_entries {
            return Err(state.reject(
                &String::from_utf8_lossy(&entry.path_bytes()),
                Rule::TooManyEntries {
                    max: opts.max_entries,
                },
            ));
        }
        state.entry(entry)?;
    }
    state.finish()?;
    Ok(state.stats)
}

/// Unpacks several layers in order (lowest first) into `target`.
pub fn unpack_stack<R: Read>(
    layers: impl IntoIterator<Item = (LayerId, R)>,
    target: &Path,
    opts: &UnpackOptions,
) -> Result<Vec<UnpackStats>, UnpackError> {
    layers
        .into_iter()
        .map(|(id, blob)| unpack_layer(blob, target, &id, opts))
        .collect()
}

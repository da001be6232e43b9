//! `index.json`: the names of the images in the store. Read without a lock
//! (it is only ever replaced atomically); changed under the exclusive
//! `locks/index.lock` (read, modify, write temp, fsync, rename).

use std::fs;

use super::{Store, StoreError, open_lock};
use crate::oci::reference::Reference;
use crate::oci::types::{ANNOTATION_REF_NAME, Descriptor, Digest, Index};

/// One named image: its full normalised name and what it points at (an
/// image manifest, or an index for multi-platform images).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    pub name: String,
    pub descriptor: Descriptor,
}

/// The name an image is recorded under: `registry/repo:tag`, or
/// `registry/repo@digest` when there is no tag.
pub fn store_name(reference: &Reference) -> String {
    match (&reference.tag, &reference.digest) {
        (Some(tag), _) => format!("{}:{tag}", reference.name()),
        (None, Some(d)) => format!("{}@{d}", reference.name()),
        (None, None) => format!("{}:latest", reference.name()),
    }
}

impl Store {
    /// The current `index.json` (empty if missing).
    pub fn read_index(&self) -> Result<Index, StoreError> {
        let path = self.index_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::CorruptIndex {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(StoreError::io("read", path)(e)),
        }
    }

    /// Read-modify-write of `index.json` under the exclusive index lock.
    pub(super) fn update_index<T>(
        &self,
        change: impl FnOnce(&mut Index) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let lock_path = self.root.join("locks/index.lock");
        let lock = open_lock(&lock_path)?;
        lock.lock().map_err(StoreError::io("lock", &lock_path))?;
        let mut index = self.read_index()?;
        let out = change(&mut index)?;
        let bytes = serde_json::to_vec_pretty(&index).map_err(|e| StoreError::CorruptIndex {
            path: self.index_path(),
            reason: e.to_string(),
        })?;
        let path = self.index_path();
        crate::image::atomic::write_atomic(&path, &bytes, 0o644)
            .map_err(StoreError::io("write", &path))?;
        drop(lock);
        Ok(out)
    }

    /// Names `descriptor` (a manifest or index already in the store) as
    /// `reference`, replacing what that name pointed at. Returns the
    /// previous descriptor of that name, if any.
    pub fn tag(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
    ) -> Result<Option<Descriptor>, StoreError> {
        if !self.has_blob(&descriptor.digest) {
            return Err(StoreError::BlobMissing {
                reference: reference.to_string(),
                digest: descriptor.digest.clone(),
                what: "manifest",
            });
        }
        let name = store_name(reference);
        self.update_index(|index| {
            let previous = take_named(index, &name);
            let mut d = descriptor.clone();
            d.annotations.insert(ANNOTATION_REF_NAME.to_string(), name);
            index.manifests.push(d);
            index.manifests.sort_by(|a, b| ref_name(a).cmp(ref_name(b)));
            Ok(previous)
        })
    }

    /// Removes the name `name` (a full store name). Blobs stay until
    /// [`Store::gc`].
    pub fn untag(&self, name: &str) -> Result<Descriptor, StoreError> {
        let root = self.root.clone();
        self.update_index(|index| {
            take_named(index, name).ok_or_else(|| StoreError::NotFound {
                reference: name.to_string(),
                root,
            })
        })
    }

    /// Every named image, sorted by name.
    pub fn list(&self) -> Result<Vec<ImageEntry>, StoreError> {
        let index = self.read_index()?;
        Ok(index
            .manifests
            .into_iter()
            .filter_map(|mut d| {
                let name = d.annotations.remove(ANNOTATION_REF_NAME)?;
                Some(ImageEntry {
                    name,
                    descriptor: d,
                })
            })
            .collect())
    }

    /// Images matching what a user typed: a name (normalised like docker:
    /// `nginx` is `docker.io/library/nginx:latest`), a full digest
    /// `sha256:...`, or a prefix (≥ 4 hex digits) of a manifest digest.
    pub fn find(&self, input: &str) -> Result<Vec<ImageEntry>, StoreError> {
        let entries = self.list()?;
        if let Ok(reference) = input.parse::<Reference>() {
            let name = store_name(&reference);
            let by_name: Vec<_> = entries.iter().filter(|e| e.name == name).cloned().collect();
            if !by_name.is_empty() {
                return Ok(by_name);
            }
        }
        let hex = input.strip_prefix("sha256:").unwrap_or(input);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hex = hex.to_ascii_lowercase();
            return Ok(entries
                .into_iter()
                .filter(|e| e.descriptor.digest.hex().starts_with(&hex))
                .collect());
        }
        Ok(Vec::new())
    }

    /// The one image `input` names; several names for the same digest are
    /// fine (the first is returned), different digests are ambiguous.
    pub fn lookup(&self, input: &str) -> Result<ImageEntry, StoreError> {
        let found = self.find(input)?;
        let first = found.first().cloned().ok_or_else(|| StoreError::NotFound {
            reference: input.to_string(),
            root: self.root.clone(),
        })?;
        if found
            .iter()
            .any(|e| e.descriptor.digest != first.descriptor.digest)
        {
            return Err(StoreError::Ambiguous {
                reference: input.to_string(),
                candidates: found
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(first)
    }

    /// Names pointing at `digest`.
    pub fn names_of(&self, digest: &Digest) -> Result<Vec<String>, StoreError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|e| e.descriptor.digest == *digest)
            .map(|e| e.name)
            .collect())
    }
}

fn ref_name(d: &Descriptor) -> &str {
    d.annotations
        .get(ANNOTATION_REF_NAME)
        .map_or("", String::as_str)
}

fn take_named(index: &mut Index, name: &str) -> Option<Descriptor> {
    let pos = index.manifests.iter().position(|d| ref_name(d) == name)?;
    let mut d = index.manifests.remove(pos);
    d.annotations.remove(ANNOTATION_REF_NAME);
    Some(d)
}

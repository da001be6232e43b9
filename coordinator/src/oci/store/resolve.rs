//! Reading images back: manifest + config of a name (multi-platform
//! indexes resolved to one platform), the domain `ImageConfig`, and
//! unpacking all layers into a directory.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::{ImageEntry, Store, StoreError};
use crate::image::unpack::{LayerId, UnpackOptions, UnpackStats, unpack_stack};
use crate::oci::types::{
    Descriptor, Digest, ImageConfigFile, Index, Manifest, Platform, is_index_media_type,
    is_manifest_media_type,
};

/// One image resolved to a single platform.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The name it was found under.
    pub name: String,
    /// What the name points at (manifest or index).
    pub top: Descriptor,
    /// The single-platform manifest.
    pub manifest_descriptor: Descriptor,
    pub manifest: Manifest,
    pub config: ImageConfigFile,
}

impl ResolvedImage {
    /// Config + layers + manifest bytes.
    pub fn size(&self) -> u64 {
        self.manifest_descriptor.size
            + self.manifest.config.size
            + self.manifest.layers.iter().map(|l| l.size).sum::<u64>()
    }
}

/// The entry of `index` for `want` (first match in index order).
pub fn select_platform<'a>(index: &'a Index, want: &Platform) -> Option<&'a Descriptor> {
    index
        .manifests
        .iter()
        .filter(|d| is_manifest_media_type(&d.media_type))
        .find(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
}

/// `os/arch` list of an index, for error messages.
pub fn platforms_of(index: &Index) -> String {
    let list: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
        .collect();
    if list.is_empty() {
        "none".to_string()
    } else {
        list.join(", ")
    }
}

impl Store {
    /// Parses a JSON blob that must be present.
    pub fn read_json<T: DeserializeOwned>(
        &self,
        digest: &Digest,
        what: &'static str,
        reference: &str,
    ) -> Result<T, StoreError> {
        if !self.has_blob(digest) {
            return Err(StoreError::BlobMissing {
                reference: reference.to_string(),
                digest: digest.clone(),
                what,
            });
        }
        let bytes = self.read_blob(digest)?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            what,
            digest: digest.to_string(),
            reason: e.to_string(),
        })
    }

    /// Resolves what `input` names (see [`Store::find`]) to one platform's
    /// manifest and config. `platform` defaults to the bastion's.
    pub fn resolve(
        &self,
        input: &str,
        platform: Option<&Platform>,
    ) -> Result<ResolvedImage, StoreError> {
        let ImageEntry { name, descriptor } = self.lookup(input)?;
        self.resolve_descriptor(&name, &descriptor, platform)
    }

    /// Like [`Store::resolve`] for a descriptor already known.
    pub fn resolve_descriptor(
        &self,
        name: &str,
        top: &Descriptor,
        platform: Option<&Platform>,
    ) -> Result<ResolvedImage, StoreError> {
        let manifest_descriptor = if is_index_media_type(&top.media_type) {
            let index: Index = self.read_json(&top.digest, "index", name)?;
            let want = platform.cloned().unwrap_or_else(Platform::host);
            select_platform(&index, &want)
                .cloned()
                .ok_or_else(|| StoreError::NoPlatform {
                    reference: name.to_string(),
                    platform: want.to_string(),
                    available: platforms_of(&index),
                })?
        } else if is_manifest_media_type(&top.media_type) {
            top.clone()
        } else {
            return Err(StoreError::MediaType {
                reference: name.to_string(),
                media_type: top.media_type.clone(),
            });
        };
        let manifest: Manifest = self.read_json(&manifest_descriptor.digest, "manifest", name)?;
        let config: ImageConfigFile = self.read_json(&manifest.config.digest, "config", name)?;
        Ok(ResolvedImage {
            name: name.to_string(),
            top: top.clone(),
            manifest_descriptor,
            manifest,
            config,
        })
    }

    /// Labels, env, cmd and entrypoint of an image, as ferry's image
    /// semantics use them (`ferry_shared::image`).
    pub fn image_config(
        &self,
        input: &str,
    ) -> Result<ferry_shared::image::ImageConfig, StoreError> {
        let r = self.resolve(input, None)?;
        Ok(r.config.to_domain(&r.name))
    }

    /// Unpacks all layers of `input` (lowest first, whiteouts applied) into
    /// the existing directory `dest` with the hostile-entry checks of
    /// `crate::image::unpack`. Every layer must be present.
    pub fn mount(
        &self,
        input: &str,
        dest: &Path,
        opts: &UnpackOptions,
    ) -> Result<Vec<UnpackStats>, StoreError> {
        let r = self.resolve(input, None)?;
        let mut layers = Vec::with_capacity(r.manifest.layers.len());
        for (i, layer) in r.manifest.layers.iter().enumerate() {
            if !self.has_blob(&layer.digest) {
                return Err(StoreError::BlobMissing {
                    reference: r.name.clone(),
                    digest: layer.digest.clone(),
                    what: "layer",
                });
            }
            let id = LayerId {
                index: i,
                digest: layer.digest.to_string(),
            };
            layers.push((id, self.open_blob(&layer.digest)?));
        }
        unpack_stack(layers, dest, opts).map_err(|source| StoreError::Unpack {
            reference: r.name.clone(),
            source: Box::new(source),
        })
    }
}

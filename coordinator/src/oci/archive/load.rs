//! `ferry load`: one pass over the tar. Paths are checked first; blobs
//! stream into the store verified against their names; small JSON files
//! are kept in memory; legacy docker layer files are stored under their
//! computed digest. Images are named only after everything checked out.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path};

use serde::Deserialize;

use super::ArchiveError;
use crate::image::unpack::Compression;
use crate::image::unpack::guard::{HeaderGuard, MAX_HEADER_SIZE};
use crate::oci::reference::Reference;
use crate::oci::store::{MAX_JSON_BLOB, Store, StoreError, store_name};
use crate::oci::types::{
    ANNOTATION_REF_NAME, Descriptor, Digest, ImageConfigFile, Index, MEDIA_OCI_CONFIG,
    MEDIA_OCI_LAYER, MEDIA_OCI_LAYER_GZIP, MEDIA_OCI_LAYER_ZSTD, MEDIA_OCI_MANIFEST, Manifest,
};

/// What a load did.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Names given to the loaded images.
    pub names: Vec<String>,
    pub blobs: u64,
    pub bytes: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Most entries an archive may have.
const MAX_ENTRIES: u64 = 200_000;

const JSON_FILES: [&str; 4] = ["oci-layout", "index.json", "manifest.json", "repositories"];

/// Loads every image of the archive at `path` into `store`.
pub fn load(store: &Store, path: &Path) -> Result<LoadReport, ArchiveError> {
    let io_err = |source| ArchiveError::Io {
        path: path.to_owned(),
        source,
    };
    let hostile = |entry: &str, reason: &str| ArchiveError::Hostile {
        path: path.to_owned(),
        entry: entry.chars().take(200).collect(),
        reason: reason.to_string(),
    };
    let file = File::open(path).map_err(io_err)?;
    // Long-name/PAX headers are bounded before the tar crate reads them.
    let guarded = HeaderGuard::new(BufReader::new(file), MAX_HEADER_SIZE);
    let mut archive = tar::Archive::new(guarded);
    let mut json: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut files: BTreeMap<String, Descriptor> = BTreeMap::new();
    let mut report = LoadReport::default();
    let mut count = 0u64;
    for entry in archive.entries().map_err(io_err)? {
        let mut entry = entry.map_err(io_err)?;
        count += 1;
        if count > MAX_ENTRIES {
            return Err(invalid(path, format!("more than {MAX_ENTRIES} entries")));
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = clean_path(&raw).map_err(|r| hostile(&raw, r))?;
        match entry.header().entry_type() {
            tar::EntryType::Directory => continue,
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            _ => {
                return Err(hostile(
                    &raw,
                    "only regular files and directories are allowed",
                ));
            }
        }
        let size = entry.size();
        if JSON_FILES.contains(&name.as_str()) {
            if size > MAX_JSON_BLOB {
                return Err(hostile(&raw, "metadata file too large"));
            }
            let mut buf = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut buf).map_err(io_err)?;
            json.insert(name, buf);
            continue;
        }
        let expected = match name.strip_prefix("blobs/") {
            Some(rest) => {
                let digest = rest
                    .replacen('/', ":", 1)
                    .parse::<Digest>()
                    .map_err(|_| hostile(&raw, "blob name is not sha256/<64 hex digits>"))?;
                Some(digest)
            }
            None => None,
        };
        let desc = ingest(store, &mut entry, expected.as_ref(), size).map_err(|source| {
            ArchiveError::Blob {
                path: path.to_owned(),
                entry: raw.clone(),
                source,
            }
        })?;
        report.blobs += 1;
        report.bytes += desc.size;
        files.insert(name, desc);
    }

    let named = if let Some(index) = json.get("index.json") {
        from_index(store, path, index)?
    } else if let Some(manifest) = json.get("manifest.json") {
        from_docker(store, path, manifest, &files)?
    } else {
        return Err(ArchiveError::Invalid {
            path: path.to_owned(),
            reason: "neither index.json (oci-archive) nor manifest.json (docker-archive) found"
                .to_string(),
        });
    };
    for (reference, desc) in &named {
        store.tag(reference, desc)?;
        report.names.push(store_name(reference));
    }
    Ok(report)
}

/// A relative path of normal components (`./` prefix allowed), or why not.
fn clean_path(raw: &str) -> Result<String, &'static str> {
    if raw.len() > 4096 || raw.contains('\0') {
        return Err("path too long or contains NUL");
    }
    let mut parts = Vec::new();
    for c in Path::new(raw).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => return Err("`..` path component"),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path"),
        }
    }
    if parts.is_empty() {
        return Err("empty path");
    }
    Ok(parts.join("/"))
}

fn ingest(
    store: &Store,
    reader: &mut impl Read,
    expected: Option<&Digest>,
    size: u64,
) -> Result<Descriptor, StoreError> {
    if let Some(d) = expected.filter(|d| store.blob_size(d) == Some(size)) {
        return Ok(Descriptor::new("", d.clone(), size));
    }
    let mut w = store.blob_writer(expected, Some(size))?;
    io::copy(reader, &mut w).map_err(StoreError::io("write", store.root().join("tmp")))?;
    let (digest, size) = w.commit()?;
    Ok(Descriptor::new("", digest, size))
}

fn invalid(path: &Path, reason: String) -> ArchiveError {
    ArchiveError::Invalid {
        path: path.to_owned(),
        reason,
    }
}

fn from_index(
    store: &Store,
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<(Reference, Descriptor)>, ArchiveError> {
    let index: Index = serde_json::from_slice(bytes)
        .map_err(|e| invalid(path, format!("index.json is not an OCI index: {e}")))?;
    let mut named = Vec::new();
    let nameless = index
        .manifests
        .iter()
        .filter(|d| carried_name(path, d).is_none())
        .count();
    for mut d in index.manifests {
        let name = match carried_name(path, &d) {
            Some(n) => n,
            None => unnamed(path, nameless)?,
        };
        let reference: Reference = name
            .parse()
            .map_err(|e| invalid(path, format!("image {}: {e}", d.digest)))?;
        check_complete(store, path, &name, &d)?;
        d.annotations.clear();
        d.platform = None;
        named.push((reference, d));
    }
    Ok(named)
}

/// `localhost/<archive stem>`, lower case, other characters as `-`.
fn stem_repo(path: &Path) -> String {
    let stem: String = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let stem = stem.trim_matches('-');
    let stem = if stem.is_empty() { "loaded" } else { stem };
    format!("localhost/{stem}")
}

/// The name of an image the archive does not name (no ref.name annotation,
/// no RepoTags): `localhost/<archive stem>:latest`. sealos (libimage)
/// keeps such an image by its ID only; the store names every image, so
/// ferry names it after the file. Two unnamed images would share that
/// name: refused.
fn unnamed(path: &Path, count: usize) -> Result<String, ArchiveError> {
    if count > 1 {
        return Err(invalid(
            path,
            format!(
                "{count} images carry no name (no {ANNOTATION_REF_NAME} annotation / RepoTags); \
                 name them (`ferry tag`) before saving, or save them one per archive"
            ),
        ));
    }
    Ok(format!("{}:latest", stem_repo(path)))
}

/// The name an index entry carries: containerd's `io.containerd.image.name`,
/// a full reference in `org.opencontainers.image.ref.name`, or, when that
/// is a bare tag (skopeo/buildah write `v1.29.0`), `localhost/<archive
/// stem>:<tag>`; `None` without either annotation.
fn carried_name(path: &Path, d: &Descriptor) -> Option<String> {
    if let Some(n) = d.annotations.get("io.containerd.image.name") {
        return Some(n.clone());
    }
    let name = d.annotations.get(ANNOTATION_REF_NAME)?;
    if name.contains('/') || name.contains(':') || name.contains('@') {
        return Some(name.clone());
    }
    Some(format!("{}:{name}", stem_repo(path)))
}

/// Every blob `d` needs is in the store (platform of the bastion for indexes).
fn check_complete(
    store: &Store,
    path: &Path,
    name: &str,
    d: &Descriptor,
) -> Result<(), ArchiveError> {
    let image = store
        .resolve_descriptor(name, d, None)
        .map_err(|e| match e {
            StoreError::BlobMissing { digest, what, .. } => invalid(
                path,
                format!("image `{name}`: {what} {digest} is not in the archive"),
            ),
            other => ArchiveError::Store(other),
        })?;
    for layer in &image.manifest.layers {
        if !store.has_blob(&layer.digest) {
            return Err(invalid(
                path,
                format!(
                    "image `{name}`: layer {} is not in the archive",
                    layer.digest
                ),
            ));
        }
    }
    Ok(())
}

fn from_docker(
    store: &Store,
    path: &Path,
    bytes: &[u8],
    files: &BTreeMap<String, Descriptor>,
) -> Result<Vec<(Reference, Descriptor)>, ArchiveError> {
    let entries: Vec<DockerEntry> = serde_json::from_slice(bytes).map_err(|e| {
        invalid(
            path,
            format!("manifest.json is not a docker save manifest: {e}"),
        )
    })?;
    let lookup = |p: &str| -> Result<Descriptor, ArchiveError> {
        let clean = clean_path(p).map_err(|r| ArchiveError::Hostile {
            path: path.to_owned(),
            entry: p.to_string(),
            reason: r.to_string(),
        })?;
        files.get(&clean).cloned().ok_or_else(|| {
            invalid(
                path,
                format!("manifest.json names `{p}`, which is not in the archive"),
            )
        })
    };
    let mut named = Vec::new();
    let nameless = entries
        .iter()
        .filter(|e| e.repo_tags.as_ref().is_none_or(Vec::is_empty))
        .count();
    for e in entries {
        let mut config = lookup(&e.config)?;
        let cfg: ImageConfigFile = store
            .read_json(&config.digest, "config", &e.config)
            .map_err(|err| invalid(path, format!("{}: {err}", e.config)))?;
        if cfg.rootfs.diff_ids.len() != e.layers.len() {
            return Err(invalid(
                path,
                format!(
                    "{}: {} layers listed, config has {} diff_ids",
                    e.config,
                    e.layers.len(),
                    cfg.rootfs.diff_ids.len()
                ),
            ));
        }
        config.media_type = MEDIA_OCI_CONFIG.to_string();
        let mut layers = Vec::new();
        for l in &e.layers {
            let mut d = lookup(l)?;
            let mut head = [0u8; 4];
            let n = store
                .open_blob(&d.digest)?
                .read(&mut head)
                .map_err(StoreError::io("read", store.blob_path(&d.digest)))?;
            d.media_type = match Compression::sniff(&head[..n]) {
                Compression::Gzip => MEDIA_OCI_LAYER_GZIP,
                Compression::Zstd => MEDIA_OCI_LAYER_ZSTD,
                Compression::None => MEDIA_OCI_LAYER,
            }
            .to_string();
            layers.push(d);
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_OCI_MANIFEST.to_string()),
            config,
            layers,
            annotations: BTreeMap::new(),
        };
        let desc = store.put_json_blob(MEDIA_OCI_MANIFEST, &manifest)?;
        let tags = match e.repo_tags.filter(|t| !t.is_empty()) {
            Some(t) => t,
            None => vec![unnamed(path, nameless)?],
        };
        for tag in tags {
            let reference: Reference = tag
                .parse()
                .map_err(|err| invalid(path, format!("RepoTags: {err}")))?;
            named.push((reference, desc.clone()));
        }
    }
    Ok(named)
}

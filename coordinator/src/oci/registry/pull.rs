//! `ferry pull`: manifest (index resolved to one platform), then config and
//! layers streamed into the store with bounded concurrency, verified while
//! streaming; blobs already present are skipped; tag last.

use std::collections::HashSet;
use std::io::Write;

use futures::{StreamExt, TryStreamExt};
use oci_client::errors::{DigestError, OciDistributionError};

use super::{Connection, Progress, RegistryError, oci_ref};
use crate::oci::reference::Reference;
use crate::oci::store::{Store, StoreError, select_platform};
use crate::oci::types::{
    Descriptor, Digest, Index, MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST, MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST, Manifest, Platform, is_index_media_type, is_manifest_media_type,
};

const ACCEPTED: &[&str] = &[
    MEDIA_OCI_MANIFEST,
    MEDIA_OCI_INDEX,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_DOCKER_LIST,
];

/// Bytes between two progress reports of one blob.
const PROGRESS_STEP: u64 = 8 << 20;

#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Platform to pick from a multi-platform index (default: the bastion's).
    pub platform: Option<Platform>,
    /// Blobs downloaded at once (0 = default).
    pub concurrency: usize,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullReport {
    /// The name the image was stored under.
    pub name: String,
    /// The single-platform manifest stored and tagged.
    pub manifest: Descriptor,
    pub blobs_fetched: u64,
    pub blobs_skipped: u64,
    pub bytes_fetched: u64,
    /// Config + layers + manifest.
    pub image_size: u64,
}

type ProgressFn<'a> = &'a (dyn Fn(Progress) + Send + Sync);

/// Pulls `reference` from `conn` into `store` and tags it.
pub async fn pull(
    store: &Store,
    conn: &Connection,
    reference: &Reference,
    opts: &PullOptions,
    progress: ProgressFn<'_>,
) -> Result<PullReport, RegistryError> {
    let client = conn.client();
    let auth = conn.auth();
    let oref = oci_ref(reference);
    let shown = reference.to_string();
    let (top_bytes, top_digest) = client
        .pull_manifest_raw(&oref, &auth, ACCEPTED)
        .await
        .map_err(|e| manifest_err(conn, &shown, e))?;
    let top_digest = verify_bytes(conn, &shown, "manifest", &top_bytes, &top_digest)?;
    let top_media = media_type_of(conn, &shown, &top_bytes)?;

    let (bytes, digest, media) = if is_index_media_type(&top_media) {
        let index: Index = parse(conn, &shown, "index", &top_bytes)?;
        let want = opts.platform.clone().unwrap_or_else(Platform::host);
        let chosen = select_platform(&index, &want).ok_or_else(|| RegistryError::NoPlatform {
            registry: conn.registry.clone(),
            reference: shown.clone(),
            platform: want.to_string(),
            available: crate::oci::store::platforms_of(&index),
        })?;
        let child = oref.clone_with_digest(chosen.digest.to_string());
        let (b, d) = client
            .pull_manifest_raw(&child, &auth, ACCEPTED)
            .await
            .map_err(|e| manifest_err(conn, &shown, e))?;
        let d = verify_bytes(conn, &shown, "manifest", &b, &d)?;
        if d != chosen.digest {
            return Err(mismatch(conn, &shown, "manifest", chosen.digest.clone(), d));
        }
        (b.to_vec(), d, chosen.media_type.clone())
    } else if is_manifest_media_type(&top_media) {
        (top_bytes.to_vec(), top_digest, top_media)
    } else {
        return Err(RegistryError::MediaType {
            registry: conn.registry.clone(),
            reference: shown,
            media_type: top_media,
        });
    };
    let manifest: Manifest = parse(conn, &shown, "manifest", &bytes)?;

    let mut seen = HashSet::new();
    let blobs: Vec<Descriptor> = std::iter::once(manifest.config.clone())
        .chain(manifest.layers.iter().cloned())
        .filter(|d| seen.insert(d.digest.clone()))
        .collect();
    let concurrency = if opts.concurrency == 0 {
        super::DEFAULT_CONCURRENCY
    } else {
        opts.concurrency
    };
    let results: Vec<(u64, bool)> = futures::stream::iter(blobs.iter())
        .map(|d| fetch_blob(store, conn, &client, &oref, &shown, d, progress))
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;

    let stored = store.put_bytes(&media, &bytes)?;
    if stored.digest != digest {
        return Err(mismatch(conn, &shown, "manifest", digest, stored.digest));
    }
    let tag_ref = reference.clone();
    store.tag(&tag_ref, &stored)?;
    Ok(PullReport {
        name: crate::oci::store::store_name(&tag_ref),
        image_size: stored.size + blobs.iter().map(|b| b.size).sum::<u64>(),
        manifest: stored,
        blobs_fetched: results.iter().filter(|r| !r.1).count() as u64,
        blobs_skipped: results.iter().filter(|r| r.1).count() as u64,
        bytes_fetched: results.iter().map(|r| r.0).sum(),
    })
}

/// Downloads one blob unless present. Returns (bytes fetched, skipped).
async fn fetch_blob(
    store: &Store,
    conn: &Connection,
    client: &oci_client::Client,
    oref: &oci_client::Reference,
    shown: &str,
    desc: &Descriptor,
    progress: ProgressFn<'_>,
) -> Result<(u64, bool), RegistryError> {
    let digest = desc.digest.to_string();
    if store.has_blob(&desc.digest) {
        progress(Progress::BlobDone {
            digest,
            bytes: 0,
            skipped: true,
        });
        return Ok((0, true));
    }
    progress(Progress::BlobStarted {
        digest: digest.clone(),
        total: desc.size,
    });
    let layer = oci_client::manifest::OciDescriptor {
        media_type: desc.media_type.clone(),
        digest: digest.clone(),
        size: i64::try_from(desc.size).unwrap_or(i64::MAX),
        ..Default::default()
    };
    let mut stream = client
        .pull_blob_stream(oref, &layer)
        .await
        .map_err(|e| conn.map_err("download blob of", shown, e))?;
    let mut writer = store.blob_writer(Some(&desc.digest), Some(desc.size))?;
    let mut next_report = PROGRESS_STEP;
    let mut stream_error = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                writer.write_all(&bytes).map_err(|e| {
                    RegistryError::Store(StoreError::Io {
                        op: "write blob",
                        path: store.blob_path(&desc.digest),
                        source: e,
                    })
                })?;
                if writer.written() > desc.size {
                    break; // the size check in commit reports it
                }
                if writer.written() >= next_report {
                    next_report += PROGRESS_STEP;
                    progress(Progress::BlobProgress {
                        digest: digest.clone(),
                        done: writer.written(),
                        total: desc.size,
                    });
                }
            }
            Err(e) => {
                stream_error = Some(e.to_string());
                break;
            }
        }
    }
    let written = writer.written();
    let committed = tokio::task::spawn_blocking(move || writer.commit())
        .await
        .map_err(|e| RegistryError::Task(e.to_string()))?;
    match committed {
        Ok(_) => {}
        Err(StoreError::DigestMismatch {
            expected, actual, ..
        }) => return Err(mismatch(conn, shown, "blob", expected, actual)),
        Err(StoreError::SizeMismatch { .. }) if written < desc.size && stream_error.is_some() => {
            return Err(RegistryError::Request {
                registry: conn.registry.clone(),
                op: "download blob of",
                reference: shown.to_string(),
                message: format!(
                    "{digest}: {} (after {written} of {} bytes); pull again to resume",
                    stream_error.unwrap_or_default(),
                    desc.size
                ),
            });
        }
        Err(StoreError::SizeMismatch { actual, .. }) => {
            return Err(RegistryError::Request {
                registry: conn.registry.clone(),
                op: "verify blob of",
                reference: shown.to_string(),
                message: format!(
                    "{digest}: the registry sent {actual} bytes where the manifest says {}; nothing was recorded",
                    desc.size
                ),
            });
        }
        Err(e) => return Err(e.into()),
    }
    progress(Progress::BlobDone {
        digest,
        bytes: written,
        skipped: false,
    });
    Ok((written, false))
}

fn mismatch(
    conn: &Connection,
    shown: &str,
    what: &'static str,
    expected: Digest,
    actual: Digest,
) -> RegistryError {
    RegistryError::DigestMismatch {
        registry: conn.registry.clone(),
        reference: shown.to_string(),
        what,
        expected,
        actual,
    }
}

fn manifest_err(conn: &Connection, shown: &str, e: OciDistributionError) -> RegistryError {
    if let OciDistributionError::DigestError(DigestError::VerificationError { expected, actual }) =
        &e
        && let (Ok(expected), Ok(actual)) = (expected.parse(), actual.parse())
    {
        return mismatch(conn, shown, "manifest", expected, actual);
    }
    conn.map_err("fetch manifest of", shown, e)
}

/// sha256 of `bytes`, which must equal what the registry said it was.
fn verify_bytes(
    conn: &Connection,
    shown: &str,
    what: &'static str,
    bytes: &[u8],
    claimed: &str,
) -> Result<Digest, RegistryError> {
    let actual = Digest::of(bytes);
    match claimed.parse::<Digest>() {
        Ok(c) if c != actual => Err(mismatch(conn, shown, what, c, actual)),
        _ => Ok(actual),
    }
}

fn media_type_of(conn: &Connection, shown: &str, bytes: &[u8]) -> Result<String, RegistryError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        layers: Option<serde_json::Value>,
    }
    let p: Probe = parse(conn, shown, "manifest", bytes)?;
    Ok(match (p.media_type, p.manifests, p.layers) {
        (Some(m), _, _) => m,
        (None, Some(_), _) => MEDIA_OCI_INDEX.to_string(),
        (None, None, Some(_)) => MEDIA_OCI_MANIFEST.to_string(),
        _ => "unknown (no mediaType, manifests or layers)".to_string(),
    })
}

fn parse<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    shown: &str,
    what: &'static str,
    bytes: &[u8],
) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes).map_err(|e| RegistryError::Invalid {
        registry: conn.registry.clone(),
        reference: shown.to_string(),
        what,
        reason: e.to_string(),
    })
}

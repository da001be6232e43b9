//! `ferry push`: every blob the registry lacks is uploaded from the store
//! as a stream (never whole in memory), then the manifest, byte for byte, so
//! the digest on the registry is the local one.

use std::io::Read;

use futures::{StreamExt, TryStreamExt};
use oci_client::errors::OciDistributionError;

use super::{Connection, Progress, RegistryError, oci_ref};
use crate::oci::reference::Reference;
use crate::oci::store::Store;
use crate::oci::types::{Descriptor, Digest};

/// Bytes read from a blob file per upload chunk.
const CHUNK: usize = 4 << 20;

/// What a push did.
#[derive(Debug, Clone)]
pub struct PushReport {
    pub manifest: Descriptor,
    pub blobs_pushed: u64,
    pub blobs_skipped: u64,
    pub bytes_pushed: u64,
}

/// Pushes the local image `local` (a name or id in `store`) to `target`.
pub async fn push(
    store: &Store,
    conn: &Connection,
    local: &str,
    target: &Reference,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<PushReport, RegistryError> {
    let image = store.resolve(local, None)?;
    let client = conn.client();
    let auth = conn.auth();
    let oref = oci_ref(target);
    let shown = target.to_string();
    client
        .auth(&oref, &auth, oci_client::RegistryOperation::Push)
        .await
        .map_err(|e| conn.map_err("authenticate for", &shown, e))?;
    let mut blobs: Vec<Descriptor> = vec![image.manifest.config.clone()];
    for l in &image.manifest.layers {
        if !blobs.iter().any(|b| b.digest == l.digest) {
            blobs.push(l.clone());
        }
    }
    let results: Vec<(u64, bool)> = futures::stream::iter(blobs.iter())
        .map(|d| push_blob(store, conn, &client, &oref, &shown, d, progress))
        .buffer_unordered(super::DEFAULT_CONCURRENCY)
        .try_collect()
        .await?;
    let manifest_bytes = store.read_blob(&image.manifest_descriptor.digest)?;
    let content_type =
        http::HeaderValue::from_str(&image.manifest_descriptor.media_type).map_err(|e| {
            RegistryError::Invalid {
                registry: conn.registry.clone(),
                reference: shown.clone(),
                what: "manifest media type",
                reason: e.to_string(),
            }
        })?;
    client
        .push_manifest_raw(&oref, manifest_bytes, content_type)
        .await
        .map_err(|e| conn.map_err("push manifest of", &shown, e))?;
    Ok(PushReport {
        manifest: image.manifest_descriptor,
        blobs_pushed: results.iter().filter(|r| !r.1).count() as u64,
        blobs_skipped: results.iter().filter(|r| r.1).count() as u64,
        bytes_pushed: results.iter().map(|r| r.0).sum(),
    })
}

async fn push_blob(
    store: &Store,
    conn: &Connection,
    client: &oci_client::Client,
    oref: &oci_client::Reference,
    shown: &str,
    desc: &Descriptor,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<(u64, bool), RegistryError> {
    let digest = desc.digest.to_string();
    let exists = client
        .blob_exists(oref, &digest)
        .await
        .map_err(|e| conn.map_err("check blob of", shown, e))?;
    if exists {
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
    let file = store.open_blob(&desc.digest)?;
    let stream = blob_stream(file, desc.digest.clone());
    client
        .push_blob_stream(oref, stream, &digest, Some(desc.size))
        .await
        .map_err(|e| conn.map_err("upload blob of", shown, e))?;
    progress(Progress::BlobDone {
        digest,
        bytes: desc.size,
        skipped: false,
    });
    Ok((desc.size, false))
}

/// The blob file as a stream of chunks, read on the blocking pool.
fn blob_stream(
    file: std::fs::File,
    digest: Digest,
) -> impl futures::Stream<Item = Result<bytes::Bytes, OciDistributionError>> + Send + 'static {
    futures::stream::try_unfold(Some(file), move |state| {
        let digest = digest.clone();
        async move {
            let Some(mut file) = state else {
                return Ok(None);
            };
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; CHUNK];
                let mut filled = 0;
                while filled < CHUNK {
                    match file.read(&mut buf[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) => return Err(e),
                    }
                }
                buf.truncate(filled);
                Ok((buf, file))
            })
            .await
            .map_err(|e| OciDistributionError::GenericError(Some(format!("{digest}: {e}"))))?;
            let (buf, file) = read.map_err(OciDistributionError::IoError)?;
            if buf.is_empty() {
                Ok(None)
            } else {
                Ok(Some((bytes::Bytes::from(buf), Some(file))))
            }
        }
    })
}

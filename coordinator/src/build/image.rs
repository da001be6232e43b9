//! Assembling the built image in the store: the new layer (if the Kubefile
//! copies anything) on top of the base image's layers, the OCI config (base
//! config with the Kubefile applied, `rootfs.diff_ids`, no timestamps unless
//! `SOURCE_DATE_EPOCH` is set) and the OCI manifest, written last.

use ferry_shared::kubefile::{Plan, RuntimeConfig as KubefileConfig};

use super::layer::{Compression, LayerDigests, LayerError, write_layer};
use super::tree::Tree;
use crate::oci::store::ResolvedImage;
use crate::oci::types::{
    Descriptor, Digest, ImageConfigFile, MEDIA_DOCKER_LAYER_GZIP, MEDIA_OCI_CONFIG,
    MEDIA_OCI_LAYER_GZIP, MEDIA_OCI_MANIFEST, Manifest, Platform, RootFs, RuntimeConfig,
};
use crate::oci::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("layer digest `{0}` is not a sha256 digest")]
    Digest(String),
    #[error("serialising the image {what}: {reason}")]
    Json { what: &'static str, reason: String },
}

/// What to assemble.
pub struct Assembly<'a> {
    pub plan: &'a Plan,
    pub base: Option<&'a ResolvedImage>,
    pub tree: &'a Tree,
    pub compression: Compression,
    /// `SOURCE_DATE_EPOCH`: layer mtimes and the config's `created`.
    pub source_date_epoch: Option<u64>,
    pub platform: Platform,
}

/// The built image: its manifest descriptor and the new layer (if any).
#[derive(Debug, Clone)]
pub struct Built {
    pub manifest: Descriptor,
    pub layer: Option<LayerDigests>,
    pub config: ImageConfigFile,
}

fn digest(s: &str) -> Result<Digest, AssembleError> {
    s.parse().map_err(|_| AssembleError::Digest(s.to_string()))
}

/// RFC 3339 UTC of a unix time (no leap seconds, as Go prints it).
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn to_kubefile_config(c: &RuntimeConfig) -> KubefileConfig {
    KubefileConfig {
        env: c.env.clone().unwrap_or_default(),
        labels: c.labels.clone().unwrap_or_default(),
        cmd: c.cmd.clone(),
        entrypoint: c.entrypoint.clone(),
        author: None,
    }
}

/// Writes layer, config and manifest into `store`. Not tagged yet.
pub fn assemble(store: &Store, a: &Assembly<'_>) -> Result<Built, AssembleError> {
    let mut layers: Vec<Descriptor> = Vec::new();
    let mut diff_ids: Vec<Digest> = Vec::new();
    let mut base_runtime = RuntimeConfig::default();
    if let Some(base) = a.base {
        for l in &base.manifest.layers {
            let mut l = l.clone();
            if l.media_type == MEDIA_DOCKER_LAYER_GZIP {
                l.media_type = MEDIA_OCI_LAYER_GZIP.to_string();
            }
            layers.push(l);
        }
        diff_ids = base.config.rootfs.diff_ids.clone();
        base_runtime = base.config.config.clone();
    }
    let mut new_layer = None;
    if !a.tree.entries.is_empty() {
        let writer = store.blob_writer(None, None)?;
        let (writer, d) = write_layer(
            a.tree,
            writer,
            a.compression,
            a.source_date_epoch.unwrap_or(0),
        )?;
        let (blob, size) = writer.commit()?;
        let expected = digest(&d.digest)?;
        if blob != expected || size != d.size {
            return Err(AssembleError::Digest(format!(
                "{blob} (store) vs {expected} (layer writer)"
            )));
        }
        layers.push(Descriptor::new(a.compression.media_type(), blob, size));
        diff_ids.push(digest(&d.diff_id)?);
        new_layer = Some(d);
    }
    let merged = a.plan.apply(to_kubefile_config(&base_runtime));
    let mut labels = merged.labels;
    if let Some(author) = merged.author {
        labels.insert("maintainer".to_string(), author);
    }
    let runtime = RuntimeConfig {
        env: (!merged.env.is_empty()).then_some(merged.env),
        cmd: merged.cmd,
        entrypoint: merged.entrypoint,
        labels: (!labels.is_empty()).then_some(labels),
        working_dir: base_runtime.working_dir,
    };
    let config = ImageConfigFile {
        created: a.source_date_epoch.map(rfc3339),
        architecture: a.platform.architecture.clone(),
        os: a.platform.os.clone(),
        variant: a.platform.variant.clone(),
        config: runtime,
        rootfs: RootFs {
            kind: "layers".to_string(),
            diff_ids,
        },
        history: Vec::new(),
    };
    let config_desc = store.put_json_blob(MEDIA_OCI_CONFIG, &config)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_OCI_MANIFEST.to_string()),
        config: config_desc,
        layers,
        annotations: Default::default(),
    };
    let manifest_desc = store.put_json_blob(MEDIA_OCI_MANIFEST, &manifest)?;
    Ok(Built {
        manifest: manifest_desc,
        layer: new_layer,
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}

//! Test images written straight into a store: one layer (plain, gzip or
//! zstd), a config with labels, an OCI manifest.

use std::collections::BTreeMap;
use std::io::Write;

use ferry_coordinator::oci::Store;
use ferry_coordinator::oci::types::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Comp {
    Gzip,
    Zstd,
}

pub fn layer_tar(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn compress(tar: &[u8], comp: Comp) -> Vec<u8> {
    match comp {
        Comp::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).unwrap();
            e.finish().unwrap()
        }
        Comp::Zstd => zstd::encode_all(tar, 1).unwrap(),
    }
}

/// Writes an image and returns its manifest descriptor (untagged).
pub fn put_image(
    store: &Store,
    arch: &str,
    comp: Comp,
    layers: &[Vec<(&str, Vec<u8>)>],
    labels: &[(&str, &str)],
) -> Descriptor {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for files in layers {
        let tar = layer_tar(files);
        diff_ids.push(Digest::of(&tar));
        let media = match comp {
            Comp::Gzip => MEDIA_OCI_LAYER_GZIP,
            Comp::Zstd => MEDIA_OCI_LAYER_ZSTD,
        };
        descs.push(store.put_bytes(media, &compress(&tar, comp)).unwrap());
    }
    let config = ImageConfigFile {
        created: Some("2026-01-01T00:00:00Z".into()),
        architecture: arch.into(),
        os: "linux".into(),
        variant: None,
        config: RuntimeConfig {
            env: Some(vec!["PATH=/usr/bin".into()]),
            cmd: Some(vec!["kubeadm".into(), "init".into()]),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..RuntimeConfig::default()
        },
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids,
        },
        history: vec![],
    };
    let config = store.put_json_blob(MEDIA_OCI_CONFIG, &config).unwrap();
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_OCI_MANIFEST.into()),
        config,
        layers: descs,
        annotations: BTreeMap::new(),
    };
    store.put_json_blob(MEDIA_OCI_MANIFEST, &manifest).unwrap()
}

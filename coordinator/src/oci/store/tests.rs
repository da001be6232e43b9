#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write;

use super::*;
use crate::image::unpack::UnpackOptions;
use crate::oci::reference::Reference;
use crate::oci::types::*;

fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Writes a one-layer image into `store` and returns its manifest descriptor.
fn put_image(store: &Store, arch: &str, label: &str) -> Descriptor {
    let layer = store
        .put_bytes(
            MEDIA_OCI_LAYER,
            &layer_tar(&[("etc/arch", arch.as_bytes())]),
        )
        .unwrap();
    let config = ImageConfigFile {
        created: None,
        architecture: arch.into(),
        os: "linux".into(),
        variant: None,
        config: RuntimeConfig {
            env: Some(vec!["A=1".into()]),
            cmd: Some(vec!["kubeadm".into()]),
            labels: Some(BTreeMap::from([
                ("sealos.io.type".to_string(), "rootfs".to_string()),
                ("x".to_string(), label.to_string()),
            ])),
            ..RuntimeConfig::default()
        },
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![layer.digest.clone()],
        },
        history: vec![],
    };
    let config = store.put_json_blob(MEDIA_OCI_CONFIG, &config).unwrap();
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_OCI_MANIFEST.into()),
        config,
        layers: vec![layer],
        annotations: BTreeMap::new(),
    };
    store.put_json_blob(MEDIA_OCI_MANIFEST, &manifest).unwrap()
}

fn r(s: &str) -> Reference {
    s.parse().unwrap()
}

fn tmp_entries(store: &Store) -> usize {
    std::fs::read_dir(store.root().join("tmp")).unwrap().count()
}

#[test]
fn blob_ingest_verifies_digest_and_publishes_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let d = store.put_bytes("x", b"hello").unwrap();
    assert_eq!(d.digest, Digest::of(b"hello"));
    assert!(store.has_blob(&d.digest));
    assert_eq!(store.read_blob(&d.digest).unwrap(), b"hello");
    store.verify_blob(&d.digest).unwrap();

    let wrong = Digest::of(b"other");
    let err = store
        .put_blob_from_reader("x", Some(&wrong), &b"tampered"[..])
        .unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert!(!store.has_blob(&wrong));
    assert!(!store.has_blob(&Digest::of(b"tampered")));
    assert_eq!(tmp_entries(&store), 0);
}

#[test]
fn interrupted_blob_write_leaves_nothing_visible() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let content = vec![7u8; 100_000];
    let mut w = store
        .blob_writer(Some(&Digest::of(&content)), None)
        .unwrap();
    w.write_all(&content[..50_000]).unwrap();
    // Mid-write: the blob is not visible, only a temp file exists.
    assert!(!store.has_blob(&Digest::of(&content)));
    assert_eq!(tmp_entries(&store), 1);
    drop(w);
    assert_eq!(tmp_entries(&store), 0);
    let blobs = std::fs::read_dir(store.root().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0);
}

#[test]
fn tag_resolve_config_and_mount() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let m = put_image(&store, "amd64", "one");
    store.tag(&r("labring/kubernetes:v1"), &m).unwrap();
    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name, "docker.io/labring/kubernetes:v1");
    let cfg = store.image_config("labring/kubernetes:v1").unwrap();
    assert_eq!(cfg.labels["x"], "one");
    assert_eq!(cfg.env, vec!["A=1"]);
    assert_eq!(cfg.cmd, vec!["kubeadm"]);
    assert_eq!(cfg.image_type(), ferry_shared::image::ImageType::Rootfs);
    // By digest prefix too.
    let by_id = store.resolve(&m.digest.hex()[..12], None).unwrap();
    assert_eq!(by_id.manifest_descriptor.digest, m.digest);

    let dest = tempfile::tempdir().unwrap();
    store
        .mount(
            "labring/kubernetes:v1",
            dest.path(),
            &UnpackOptions::default(),
        )
        .unwrap();
    assert_eq!(
        std::fs::read(dest.path().join("etc/arch")).unwrap(),
        b"amd64"
    );

    let err = store.resolve("nope:1", None).unwrap_err();
    assert!(err.to_string().contains("docker.io") || err.to_string().contains("nope"));
}

#[test]
fn index_selects_platform() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut amd = put_image(&store, "amd64", "a");
    let mut arm = put_image(&store, "arm64", "b");
    amd.platform = Some("linux/amd64".parse().unwrap());
    arm.platform = Some("linux/arm64".parse().unwrap());
    let index = Index {
        manifests: vec![amd, arm.clone()],
        ..Index::default()
    };
    let top = store.put_json_blob(MEDIA_OCI_INDEX, &index).unwrap();
    store.tag(&r("multi:1"), &top).unwrap();
    let arm64: Platform = "linux/arm64".parse().unwrap();
    let got = store.resolve("multi:1", Some(&arm64)).unwrap();
    assert_eq!(got.manifest_descriptor.digest, arm.digest);
    assert_eq!(got.config.architecture, "arm64");
    let s390: Platform = "linux/s390x".parse().unwrap();
    let err = store.resolve("multi:1", Some(&s390)).unwrap_err();
    assert!(
        err.to_string().contains("linux/amd64, linux/arm64"),
        "{err}"
    );
}

#[test]
fn concurrent_tagging_keeps_every_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let m = put_image(&Store::open(&root).unwrap(), "amd64", "x");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let root = root.clone();
            let m = m.clone();
            std::thread::spawn(move || {
                let store = Store::open(&root).unwrap();
                for i in 0..25 {
                    store.tag(&r(&format!("img{t}:v{i}")), &m).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let store = Store::open(&root).unwrap();
    let bytes = std::fs::read(root.join("index.json")).unwrap();
    let index: Index = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(index.manifests.len(), 100);
    assert_eq!(store.list().unwrap().len(), 100);
}

#[test]
fn gc_removes_unreferenced_blobs_only_when_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let keep = put_image(&store, "amd64", "keep");
    let drop_me = put_image(&store, "arm64", "drop");
    store.tag(&r("keep:1"), &keep).unwrap();
    store.tag(&r("drop:1"), &drop_me).unwrap();
    store.untag("docker.io/library/drop:1").unwrap();
    // A stale temp file from an interrupted ingest.
    std::fs::write(store.root().join("tmp/ingest-stale"), b"x").unwrap();

    let other = Store::open(dir.path()).unwrap();
    let skipped = store.gc().unwrap();
    assert!(!skipped.ran);
    assert!(store.has_blob(&drop_me.digest));
    drop(other);

    let report = store.gc().unwrap();
    assert!(report.ran);
    // drop's manifest, config and layer go; keep's stay.
    assert_eq!(report.blobs_removed, 3);
    assert_eq!(report.temp_files_removed, 1);
    assert!(!store.has_blob(&drop_me.digest));
    store
        .mount(
            "keep:1",
            tempfile::tempdir().unwrap().path(),
            &UnpackOptions::default(),
        )
        .unwrap();
    // Still usable afterwards (shared lock restored): a second store opens.
    let _again = Store::open(dir.path()).unwrap();
    assert!(!store.gc().unwrap().ran);
}

//! `ferry build` end to end: a labring-style context (rootfs labels, ENV,
//! `COPY . .`, CMD, `.sealignore`, an `images/shim/list` naming an image on
//! a real local `docker-registry`) → image in the store with that image in
//! `registry/` (v2 layout, served by docker-registry), identical digests
//! across builds, push to a registry and pull back; hostile Kubefiles and
//! contexts refused before anything is written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod build_support;

use std::fs;
use std::io::Read;
use std::path::Path;

use build_support::{Served, build_ok, copy_tree, ferry, files, fixture};
use ferry_coordinator::build::registry_dir::RegistryDir;
use ferry_coordinator::oci::archive::{ArchiveFormat, save};
use ferry_coordinator::oci::registry::{Connection, PullOptions, pull, push};
use ferry_coordinator::oci::types::{
    MEDIA_DOCKER_MANIFEST, MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST, Manifest,
};
use ferry_coordinator::oci::{Reference, Store};

fn provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds a one-file image `test/base:v1` into a store and writes it into a
/// registry dir; returns (store dir, registry dir, manifest digest).
fn base_image(tmp: &Path) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let ctx = tmp.join("base-ctx");
    fs::create_dir_all(ctx.join("opt")).unwrap();
    fs::write(ctx.join("opt/app"), "app v1\n").unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY opt /opt\nCMD [\"/opt/app\"]\n",
    )
    .unwrap();
    let store_dir = tmp.join("store-base");
    let out = build_ok(
        &tmp.join("home"),
        &store_dir,
        &["-t", "test/base:v1", ctx.to_str().unwrap()],
    );
    let digest = out["digest"].as_str().unwrap().to_string();
    let store = Store::open(&store_dir).unwrap();
    let image = store.resolve("test/base:v1", None).unwrap();
    let reg = tmp.join("registry-a");
    for tag in ["v1", "v2"] {
        RegistryDir::new(&reg)
            .add_image(&store, &image, "test/base", Some(tag))
            .unwrap();
    }
    // The registry dir shares no inode with the store (a context the user
    // edits must never reach the store's blobs).
    use std::os::unix::fs::MetadataExt;
    let blobs = reg.join("docker/registry/v2/blobs/sha256");
    let mut n = 0;
    for prefix in fs::read_dir(&blobs).unwrap() {
        for blob in fs::read_dir(prefix.unwrap().path()).unwrap() {
            let data = blob.unwrap().path().join("data");
            assert_eq!(
                fs::metadata(&data).unwrap().nlink(),
                1,
                "{}",
                data.display()
            );
            n += 1;
        }
    }
    assert!(n >= 2, "config and layer blobs copied");
    (store_dir, reg, digest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_dir_is_served_by_docker_registry() {
    provider();
    let tmp = tempfile::tempdir().unwrap();
    let (_, reg, digest) = base_image(tmp.path());
    let served = Served::start(&reg);
    let client = oci_client::Client::new(oci_client::client::ClientConfig {
        protocol: oci_client::client::ClientProtocol::Http,
        ..Default::default()
    });
    let r: oci_client::Reference = format!("{}/test/base:v1", served.addr).parse().unwrap();
    let (bytes, got) = client
        .pull_manifest_raw(
            &r,
            &oci_client::secrets::RegistryAuth::Anonymous,
            &[MEDIA_OCI_MANIFEST, MEDIA_OCI_INDEX, MEDIA_DOCKER_MANIFEST],
        )
        .await
        .unwrap();
    assert_eq!(got, digest, "the tag resolves to the built manifest");
    let m: Manifest = serde_json::from_slice(&bytes).unwrap();
    // Every blob is served too: a full pull into a fresh store verifies them.
    let fresh = tmp.path().join("fresh");
    let store = Store::open(&fresh).unwrap();
    let reference: Reference = format!("{}/test/base:v1", served.addr).parse().unwrap();
    let conn = Connection {
        registry: served.addr.clone(),
        insecure: true,
        credentials: None,
    };
    let rep = pull(&store, &conn, &reference, &PullOptions::default(), &|_| {})
        .await
        .unwrap();
    assert_eq!(rep.manifest.digest.to_string(), digest);
    assert!(store.has_blob(&m.layers[0].digest));

    // FROM an image that is only in the registry: pulled, layers reused.
    let ctx = tmp.path().join("from-ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("extra"), "x").unwrap();
    fs::write(
        ctx.join("Kubefile"),
        format!("FROM {}/test/base:v1\nCOPY extra /extra\n", served.addr),
    )
    .unwrap();
    let store_dir = tmp.path().join("from-store");
    let home = tmp.path().join("home");
    build_ok(
        &home,
        &store_dir,
        &["-t", "test/derived:v1", ctx.to_str().unwrap()],
    );
    let store = Store::open(&store_dir).unwrap();
    let derived = store.resolve("test/derived:v1", None).unwrap();
    assert_eq!(derived.manifest.layers.len(), 2);
    assert_eq!(derived.manifest.layers[0].digest, m.layers[0].digest);
    assert_eq!(
        derived.config.config.cmd,
        Some(vec!["/opt/app".to_string()])
    );
}

fn layer_files(store: &Store, name: &str) -> Vec<(String, Vec<u8>)> {
    let image = store.resolve(name, None).unwrap();
    let layer = image.manifest.layers.last().unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(
        store.open_blob(&layer.digest).unwrap(),
    ));
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().display().to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push((path, data));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labring_context_carries_its_images_and_round_trips_through_a_registry() {
    provider();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let (_, reg, base_digest) = base_image(tmp.path());
    let source = Served::start(&reg);
    let shim_image = format!("{}/test/base:v1", source.addr);

    let mut digests = Vec::new();
    for (i, when) in [(0, 1_600_000_000u64), (1, 1_700_000_000)] {
        let ctx = tmp.path().join(format!("ctx{i}"));
        copy_tree(&fixture("labring"), &ctx);
        let list = ctx.join("images/shim/list");
        let mut text = fs::read_to_string(&list).unwrap();
        text.push_str(&format!("{shim_image}\n{}/test/base:v2\n", source.addr));
        fs::write(&list, text).unwrap();
        // Different mtimes on the second copy must not change the digest.
        for f in files(&ctx) {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(when);
            fs::File::options()
                .write(true)
                .open(ctx.join(&f))
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        let store_dir = tmp.path().join(format!("store{i}"));
        let out = build_ok(
            &home,
            &store_dir,
            &[
                "-t",
                "labring-test/rootfs:v1",
                "--build-arg",
                "VERSION=v1.2.3",
                ctx.to_str().unwrap(),
            ],
        );
        assert_eq!(out["registry_images"][0], shim_image.as_str());
        digests.push(out["digest"].as_str().unwrap().to_string());

        // registry/ inside the context holds the shim image (v2 layout) ...
        let link = ctx.join(
            "registry/docker/registry/v2/repositories/test/base/_manifests/tags/v1/current/link",
        );
        assert_eq!(fs::read_to_string(&link).unwrap(), base_digest);
        let v2 = ctx.join(
            "registry/docker/registry/v2/repositories/test/base/_manifests/tags/v2/current/link",
        );
        assert_eq!(fs::read_to_string(&v2).unwrap(), base_digest);
        assert_eq!(out["registry_images"].as_array().unwrap().len(), 2);

        // ... and so does the built image; the config has the Kubefile's fields.
        let store = Store::open(&store_dir).unwrap();
        let image = store.resolve("labring-test/rootfs:v1", None).unwrap();
        let cfg = &image.config.config;
        let labels = cfg.labels.clone().unwrap();
        assert_eq!(labels["sealos.io.type"], "rootfs");
        assert_eq!(labels["version"], "v1.2.3");
        assert_eq!(labels["init"], "init.sh $registryDomain $registryPort");
        assert!(
            cfg.env
                .as_ref()
                .unwrap()
                .contains(&"criData=/var/lib/containerd".to_string())
        );
        assert_eq!(cfg.cmd, Some(vec!["bash init.sh".to_string()]));
        assert_eq!(
            image.config.created, None,
            "no timestamp without SOURCE_DATE_EPOCH"
        );
        let entries = layer_files(&store, "labring-test/rootfs:v1");
        let names: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
        assert!(names.contains(&"scripts/init.sh"));
        assert!(!names.contains(&"NOTES.md"), ".sealignore applies");
        let layer_link = entries
            .iter()
            .find(|(p, _)| {
                p == "registry/docker/registry/v2/repositories/test/base/_manifests/tags/v1/current/link"
            })
            .expect("registry data in the image");
        assert_eq!(layer_link.1, base_digest.as_bytes());
    }
    assert_eq!(digests[0], digests[1], "same inputs, same image digest");

    // Push the built image to a real (empty) registry and pull it back.
    let empty = tmp.path().join("registry-b");
    fs::create_dir_all(&empty).unwrap();
    let target = Served::start(&empty);
    let conn = Connection {
        registry: target.addr.clone(),
        insecure: true,
        credentials: None,
    };
    let pushed: Reference = format!("{}/labring-test/rootfs:v1", target.addr)
        .parse()
        .unwrap();
    let store0 = Store::open(&tmp.path().join("store0")).unwrap();
    let rep = push(&store0, &conn, "labring-test/rootfs:v1", &pushed, &|_| {})
        .await
        .unwrap();
    assert_eq!(rep.manifest.digest.to_string(), digests[0]);
    let back = Store::open(&tmp.path().join("store-back")).unwrap();
    let rep = pull(&back, &conn, &pushed, &PullOptions::default(), &|_| {})
        .await
        .unwrap();
    assert_eq!(rep.manifest.digest.to_string(), digests[0]);
    let pulled = back.resolve(&pushed.to_string(), None).unwrap();
    assert_eq!(
        pulled.config.config.labels.unwrap()["sealos.io.type"],
        "rootfs"
    );
}

#[test]
fn archives_listed_in_tar_txt_are_carried_under_their_given_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (store_dir, _, base_digest) = base_image(tmp.path());
    let ctx = tmp.path().join("ctx");
    fs::create_dir_all(ctx.join("images/skopeo")).unwrap();
    let store = Store::open(&store_dir).unwrap();
    save(
        &store,
        &["test/base:v1".to_string()],
        &ctx.join("images/base.tar"),
        ArchiveFormat::DockerArchive,
    )
    .unwrap();
    fs::write(
        ctx.join("images/skopeo/tar.txt"),
        "docker-archive:images/base.tar@example.com/mirror/base:v2\n",
    )
    .unwrap();
    fs::write(
        ctx.join("Kubefile"),
        "FROM scratch\nCOPY registry ./registry\n",
    )
    .unwrap();
    let out = build_ok(
        &tmp.path().join("home"),
        &tmp.path().join("store2"),
        &["-t", "test/carrier:v1", ctx.to_str().unwrap()],
    );
    assert_eq!(out["registry_images"][0], "example.com/mirror/base:v2");
    let link = ctx.join(
        "registry/docker/registry/v2/repositories/mirror/base/_manifests/tags/v2/current/link",
    );
    assert_eq!(fs::read_to_string(link).unwrap(), base_digest);
    // An archive outside the context is refused.
    fs::write(
        ctx.join("images/skopeo/tar.txt"),
        "docker-archive:../outside.tar@x/y:z\n",
    )
    .unwrap();
    let out = ferry(
        &tmp.path().join("home"),
        &tmp.path().join("store3"),
        &["build", ctx.to_str().unwrap()],
    );
    assert!(!out.status.success());
}

#[test]
fn from_a_cluster_image_inherits_and_reuses_its_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let store_dir = tmp.path().join("store");
    let base = tmp.path().join("base");
    copy_tree(&fixture("labring"), &base);
    build_ok(
        &home,
        &store_dir,
        &["-t", "labring-test/rootfs:v1", base.to_str().unwrap()],
    );
    let patch = tmp.path().join("patch");
    fs::create_dir_all(patch.join("etc")).unwrap();
    fs::write(patch.join("etc/extra.conf"), "x=1\n").unwrap();
    fs::write(
        patch.join("Kubefile"),
        "FROM labring-test/rootfs:v1\nLABEL sealos.io.type=patch extra=$criData\nENV criData=/data/containerd\nCOPY etc etc\n",
    )
    .unwrap();
    let out = build_ok(
        &home,
        &store_dir,
        &["-t", "labring-test/patch:v1", patch.to_str().unwrap()],
    );
    assert!(out["digest"].is_string());
    let store = Store::open(&store_dir).unwrap();
    let b = store.resolve("labring-test/rootfs:v1", None).unwrap();
    let p = store.resolve("labring-test/patch:v1", None).unwrap();
    assert_eq!(p.manifest.layers.len(), b.manifest.layers.len() + 1);
    assert_eq!(p.manifest.layers[0].digest, b.manifest.layers[0].digest);
    assert_eq!(p.config.rootfs.diff_ids[0], b.config.rootfs.diff_ids[0]);
    let labels = p.config.config.labels.clone().unwrap();
    assert_eq!(labels["sealos.io.type"], "patch");
    assert_eq!(
        labels["init"], "init.sh $registryDomain $registryPort",
        "inherited"
    );
    assert_eq!(
        labels["extra"], "/var/lib/containerd",
        "base ENV visible to substitution"
    );
    let env = p.config.config.env.clone().unwrap();
    assert!(env.contains(&"criData=/data/containerd".to_string()));
    assert!(env.contains(&"registryPort=5000".to_string()));
    assert_eq!(p.config.config.cmd, Some(vec!["bash init.sh".to_string()]));
}

#[test]
fn hostile_kubefiles_and_contexts_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret"), "s").unwrap();
    let cases: &[(&str, &str, &str)] = &[
        (
            "run",
            "FROM scratch\nCOPY . .\nRUN apt-get install -y x\n",
            "line 3: RUN",
        ),
        (
            "url",
            "FROM scratch\nADD http://example.com/x.tar.gz /\n",
            "remote sources",
        ),
        (
            "parent",
            "FROM scratch\nCOPY ../outside/secret /x\n",
            "outside the build context",
        ),
        (
            "abs-link",
            "FROM scratch\nCOPY escape/secret /x\n",
            "leaves the build context",
        ),
        (
            "rel-link",
            "FROM scratch\nCOPY up /x\n",
            "leaves the build context",
        ),
        ("multi", "FROM scratch\nFROM scratch\n", "multi-stage"),
    ];
    for (name, kubefile, expect) in cases {
        let ctx = tmp.path().join(name);
        fs::create_dir_all(ctx.join("images/shim")).unwrap();
        fs::write(ctx.join("Kubefile"), kubefile).unwrap();
        // Collection would fail differently (nothing listens on port 1).
        fs::write(
            ctx.join("images/shim/list"),
            "127.0.0.1:1/never/pulled:v1\n",
        )
        .unwrap();
        std::os::unix::fs::symlink(&outside, ctx.join("escape")).unwrap();
        std::os::unix::fs::symlink("../outside/secret", ctx.join("up")).unwrap();
        let store = tmp.path().join(format!("store-{name}"));
        let out = ferry(
            &tmp.path().join("home"),
            &store,
            &["build", "-t", "x/y:z", ctx.to_str().unwrap()],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: accepted");
        assert!(stderr.contains(expect), "{name}: {stderr}");
        assert!(!ctx.join("registry").exists(), "{name}: registry/ written");
        assert!(
            files(&store.join("blobs")).is_empty(),
            "{name}: blobs written: {:?}",
            files(&store.join("blobs"))
        );
    }
}

#[test]
fn kubefile_flag_zstd_and_source_date_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    fs::create_dir_all(ctx.join("bin")).unwrap();
    fs::write(ctx.join("bin/tool"), "tool").unwrap();
    let kubefile = tmp.path().join("elsewhere.Kubefile");
    fs::write(
        &kubefile,
        "FROM scratch\nARG A\nCOPY bin /opt/bin\nLABEL a=$A\n",
    )
    .unwrap();
    let store_dir = tmp.path().join("store");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .env("FERRY_HOME", tmp.path().join("home"))
        .env("FERRY_DATA_ROOT", &store_dir)
        .env("SOURCE_DATE_EPOCH", "86400")
        .args([
            "-o",
            "json",
            "build",
            "-t",
            "t/zstd:v1",
            "--compression",
            "zstd",
        ])
        .args(["--build-arg", "A=1", "--build-arg", "UNUSED=2", "-f"])
        .arg(&kubefile)
        .arg(&ctx)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("UNUSED was not consumed"), "{stdout}");
    // --save-image=false skips collection (the list names an unreachable registry).
    fs::create_dir_all(ctx.join("images/shim")).unwrap();
    fs::write(
        ctx.join("images/shim/list"),
        "127.0.0.1:1/never/pulled:v1\n",
    )
    .unwrap();
    let skipped = build_ok(
        &tmp.path().join("home"),
        &store_dir,
        &[
            "--save-image=false",
            ctx.to_str().unwrap(),
            "-f",
            kubefile.to_str().unwrap(),
        ],
    );
    assert_eq!(skipped["registry_images"].as_array().unwrap().len(), 0);
    assert!(!ctx.join("registry").exists());
    let store = Store::open(&store_dir).unwrap();
    let image = store.resolve("t/zstd:v1", None).unwrap();
    assert_eq!(
        image.config.created.as_deref(),
        Some("1970-01-02T00:00:00Z")
    );
    assert_eq!(image.config.config.labels.clone().unwrap()["a"], "1");
    let layer = &image.manifest.layers[0];
    assert_eq!(
        layer.media_type,
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let dec = zstd::stream::read::Decoder::new(store.open_blob(&layer.digest).unwrap()).unwrap();
    let mut ar = tar::Archive::new(dec);
    let mut paths = Vec::new();
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        assert_eq!(e.header().mtime().unwrap(), 86400);
        paths.push(e.path().unwrap().display().to_string());
    }
    assert_eq!(paths, ["opt/", "opt/bin/", "opt/bin/tool"]);
}

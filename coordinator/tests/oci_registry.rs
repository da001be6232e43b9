//! ferry pull/push/login against a real `docker-registry`: gzip and zstd
//! layers, a multi-arch index, resumable re-pull, tampered blobs, htpasswd.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod oci_support;

use std::path::Path;

use ferry_coordinator::oci::Store;
use ferry_coordinator::oci::types::Index;
use oci_support::images::{Comp, put_image};
use oci_support::registry::Registry;
use oci_support::{ferry, ferry_ok, last_event};

fn tag_in(data: &Path, name: &str, d: &ferry_coordinator::oci::Descriptor) {
    let store = Store::open(data).unwrap();
    store.tag(&name.parse().unwrap(), d).unwrap();
}

fn files(seed: &str) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("etc/seed", seed.as_bytes().to_vec()),
        ("bin/blob", vec![seed.len() as u8; 300_000]),
    ]
}

#[test]
fn push_then_pull_gzip_zstd_and_multi_arch_index() {
    let reg = Registry::start(None);
    let home = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let a = reg.addr.clone();
    let gz = {
        let s = Store::open(src.path()).unwrap();
        put_image(
            &s,
            "amd64",
            Comp::Gzip,
            &[files("gz"), files("gz2")],
            &[("sealos.io.type", "rootfs")],
        )
    };
    let zs = {
        let s = Store::open(src.path()).unwrap();
        put_image(
            &s,
            "amd64",
            Comp::Zstd,
            &[files("zstd")],
            &[("sealos.io.type", "patch")],
        )
    };
    tag_in(src.path(), &format!("{a}/ferry/gz:v1"), &gz);
    tag_in(src.path(), &format!("{a}/ferry/zstd:v1"), &zs);
    for img in ["gz", "zstd"] {
        let out = ferry_ok(
            home.path(),
            src.path(),
            &[
                "-o",
                "json",
                "push",
                "--insecure",
                &format!("{a}/ferry/{img}:v1"),
            ],
        );
        let ev = last_event(&out, "push", "finished");
        assert!(
            ev["counters"]["blobs_pushed"].as_u64().unwrap() >= 2,
            "{out}"
        );
    }

    let dst = tempfile::tempdir().unwrap();
    for (img, digest) in [("gz", &gz.digest), ("zstd", &zs.digest)] {
        let out = ferry_ok(
            home.path(),
            dst.path(),
            &[
                "-o",
                "json",
                "pull",
                "--insecure",
                &format!("{a}/ferry/{img}:v1"),
            ],
        );
        let ev = last_event(&out, "pull", "finished");
        assert!(
            ev["message"].as_str().unwrap().contains(digest.as_str()),
            "{out}"
        );
        assert!(ev["counters"]["bytes_fetched"].as_u64().unwrap() > 0);
    }
    let store = Store::open(dst.path()).unwrap();
    let cfg = store.image_config(&format!("{a}/ferry/zstd:v1")).unwrap();
    assert_eq!(cfg.labels["sealos.io.type"], "patch");
    let root = tempfile::tempdir().unwrap();
    store
        .mount(
            &format!("{a}/ferry/zstd:v1"),
            root.path(),
            &Default::default(),
        )
        .unwrap();
    assert_eq!(
        std::fs::read(root.path().join("etc/seed")).unwrap(),
        b"zstd"
    );
    drop(store);

    // Re-pull: nothing fetched, every blob skipped.
    let out = ferry_ok(
        home.path(),
        dst.path(),
        &[
            "-o",
            "json",
            "pull",
            "--insecure",
            &format!("{a}/ferry/gz:v1"),
        ],
    );
    let ev = last_event(&out, "pull", "finished");
    assert_eq!(ev["counters"]["bytes_fetched"], 0, "{out}");
    assert_eq!(ev["counters"]["blobs_skipped"], 3, "{out}");

    // Resume: a store missing one layer fetches only that layer.
    let manifest: ferry_coordinator::oci::types::Manifest = {
        let s = Store::open(dst.path()).unwrap();
        serde_json::from_slice(&s.read_blob(&gz.digest).unwrap()).unwrap()
    };
    let lost = &manifest.layers[1];
    let blob = dst.path().join("blobs/sha256").join(lost.digest.hex());
    std::fs::remove_file(&blob).unwrap();
    let out = ferry_ok(
        home.path(),
        dst.path(),
        &[
            "-o",
            "json",
            "pull",
            "--insecure",
            &format!("{a}/ferry/gz:v1"),
        ],
    );
    let ev = last_event(&out, "pull", "finished");
    assert_eq!(ev["counters"]["blobs_fetched"], 1, "{out}");
    assert_eq!(ev["counters"]["bytes_fetched"], lost.size, "{out}");
    assert!(blob.exists());

    // By digest: the same manifest, named by digest.
    let by_digest = tempfile::tempdir().unwrap();
    let r = format!("{a}/ferry/zstd@{}", zs.digest);
    ferry_ok(home.path(), by_digest.path(), &["pull", "--insecure", &r]);
    let s = Store::open(by_digest.path()).unwrap();
    assert_eq!(s.lookup(&r).unwrap().descriptor.digest, zs.digest);
    drop(s);

    // Multi-arch index: amd64 + arm64 manifests, index PUT with curl.
    let arm = {
        let s = Store::open(src.path()).unwrap();
        put_image(
            &s,
            "arm64",
            Comp::Gzip,
            &[files("arm")],
            &[("arch", "arm64")],
        )
    };
    tag_in(src.path(), &format!("{a}/ferry/multi:arm64"), &arm);
    ferry_ok(
        home.path(),
        src.path(),
        &["push", "--insecure", &format!("{a}/ferry/multi:arm64")],
    );
    ferry_ok(
        home.path(),
        src.path(),
        &[
            "push",
            "--insecure",
            &format!("{a}/ferry/gz:v1"),
            &format!("{a}/ferry/multi:amd64"),
        ],
    );
    let mut amd = gz.clone();
    amd.platform = Some("linux/amd64".parse().unwrap());
    let mut arm_d = arm.clone();
    arm_d.platform = Some("linux/arm64".parse().unwrap());
    let index = Index {
        manifests: vec![amd, arm_d],
        ..Index::default()
    };
    let index_file = src.path().join("index-upload.json");
    std::fs::write(&index_file, serde_json::to_vec(&index).unwrap()).unwrap();
    let put = std::process::Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/vnd.oci.image.index.v1+json",
            "--data-binary",
        ])
        .arg(format!("@{}", index_file.display()))
        .arg(format!("http://{a}/v2/ferry/multi/manifests/v1"))
        .status()
        .unwrap();
    assert!(put.success());
    let fresh = tempfile::tempdir().unwrap();
    ferry_ok(
        home.path(),
        fresh.path(),
        &[
            "pull",
            "--insecure",
            "--platform",
            "linux/arm64",
            &format!("{a}/ferry/multi:v1"),
        ],
    );
    let out = ferry_ok(
        home.path(),
        fresh.path(),
        &["-o", "json", "inspect", &format!("{a}/ferry/multi:v1")],
    );
    let doc: serde_json::Value = serde_json::from_str(
        last_event(&out, "image", "finished")["message"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(doc["platform"], "linux/arm64");
    assert_eq!(doc["manifest_digest"], arm.digest.as_str());
    assert_eq!(doc["labels"]["arch"], "arm64");
    // Default platform is the bastion's (amd64 here).
    if std::env::consts::ARCH == "x86_64" {
        let other = tempfile::tempdir().unwrap();
        ferry_ok(
            home.path(),
            other.path(),
            &["pull", "--insecure", &format!("{a}/ferry/multi:v1")],
        );
        let s = Store::open(other.path()).unwrap();
        let r = s.resolve(&format!("{a}/ferry/multi:v1"), None).unwrap();
        assert_eq!(r.manifest_descriptor.digest, gz.digest);
    }
    let out = ferry(
        home.path(),
        fresh.path(),
        &[
            "pull",
            "--insecure",
            "--platform",
            "linux/s390x",
            &format!("{a}/ferry/multi:v1"),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("linux/amd64, linux/arm64"));
    let out = ferry(
        home.path(),
        fresh.path(),
        &["pull", "--insecure", &format!("{a}/ferry/nope:v1")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("registry {a} has no")), "{err}");
    // Without --insecure the plain-HTTP registry fails with a hint.
    let out = ferry(
        home.path(),
        fresh.path(),
        &["pull", &format!("{a}/ferry/gz:v1")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs --insecure"), "{err}");
}

#[test]
fn tampered_blob_is_rejected_and_nothing_recorded() {
    let reg = Registry::start(None);
    let home = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let a = reg.addr.clone();
    let img = {
        let s = Store::open(src.path()).unwrap();
        put_image(&s, "amd64", Comp::Gzip, &[files("tamper")], &[])
    };
    let name = format!("{a}/ferry/tamper:v1");
    tag_in(src.path(), &name, &img);
    ferry_ok(home.path(), src.path(), &["push", "--insecure", &name]);
    let manifest: ferry_coordinator::oci::types::Manifest = {
        let s = Store::open(src.path()).unwrap();
        serde_json::from_slice(&s.read_blob(&img.digest).unwrap()).unwrap()
    };
    let layer = &manifest.layers[0].digest;
    let file = reg.blob_file(layer.hex());
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();

    let dst = tempfile::tempdir().unwrap();
    let out = ferry(home.path(), dst.path(), &["pull", "--insecure", &name]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("failed verification") && err.contains(layer.as_str()),
        "{err}"
    );
    assert!(err.contains(&a), "{err}");
    let s = Store::open(dst.path()).unwrap();
    assert!(s.list().unwrap().is_empty());
    assert!(!s.has_blob(layer));
    assert_eq!(
        std::fs::read_dir(dst.path().join("tmp")).unwrap().count(),
        0
    );
}

#[test]
fn htpasswd_registry_login_push_pull() {
    let reg = Registry::start(Some(("ferry", "s3cret-pw")));
    let home = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let a = reg.addr.clone();
    let img = {
        let s = Store::open(src.path()).unwrap();
        put_image(&s, "amd64", Comp::Zstd, &[files("auth")], &[])
    };
    let name = format!("{a}/private/app:v1");
    tag_in(src.path(), &name, &img);

    // Without credentials: a clear "log in first".
    let out = ferry(home.path(), src.path(), &["push", "--insecure", &name]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("ferry login {a}")), "{err}");

    // Wrong password: refused, registry named, password never printed.
    let out = ferry(
        home.path(),
        src.path(),
        &[
            "login",
            "--insecure",
            &a,
            "-u",
            "ferry",
            "-p",
            "wrong-pw-123",
        ],
    );
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains(&a) && all.contains("rejected the credentials"),
        "{all}"
    );
    assert!(!all.contains("wrong-pw-123"), "{all}");
    assert!(!home.path().join("auth.json").exists());

    let out = ferry(
        home.path(),
        src.path(),
        &[
            "-o",
            "json",
            "login",
            "--insecure",
            &a,
            "-u",
            "ferry",
            "-p",
            "s3cret-pw",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("s3cret-pw"));
    let auth = home.path().join("auth.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&auth).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let out = ferry_ok(
        home.path(),
        src.path(),
        &["-o", "json", "push", "--insecure", &name],
    );
    assert!(!out.contains("s3cret-pw"));
    let dst = tempfile::tempdir().unwrap();
    let out = ferry_ok(
        home.path(),
        dst.path(),
        &["-o", "json", "pull", "--insecure", &name],
    );
    assert!(!out.contains("s3cret-pw"));
    assert!(
        last_event(&out, "pull", "finished")["message"]
            .as_str()
            .unwrap()
            .contains(img.digest.as_str())
    );

    // Logged out: pulls need login again.
    ferry_ok(home.path(), dst.path(), &["logout", &a]);
    let fresh = tempfile::tempdir().unwrap();
    let out = ferry(home.path(), fresh.path(), &["pull", "--insecure", &name]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("requires authentication"));
}

/// Pull of a ~400 MB image from the local registry, then a no-op re-pull.
#[test]
#[ignore]
fn bench_pull_400mb() {
    let reg = Registry::start(None);
    let home = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let a = reg.addr.clone();
    let layers: Vec<Vec<(&str, Vec<u8>)>> = (0..8u8)
        .map(|i| {
            // Incompressible-ish content: 50 MB per layer.
            let mut data = vec![0u8; 50 << 20];
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(i);
            for b in data.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            vec![("data/blob", data)]
        })
        .collect();
    let img = {
        let s = Store::open(src.path()).unwrap();
        put_image(&s, "amd64", Comp::Zstd, &layers, &[])
    };
    let name = format!("{a}/bench/big:v1");
    tag_in(src.path(), &name, &img);
    ferry_ok(home.path(), src.path(), &["push", "--insecure", &name]);
    let dst = tempfile::tempdir().unwrap();
    let t = std::time::Instant::now();
    let out = ferry_ok(
        home.path(),
        dst.path(),
        &["-o", "json", "pull", "--insecure", &name],
    );
    let first = t.elapsed();
    let size = last_event(&out, "pull", "finished")["counters"]["image_size"]
        .as_u64()
        .unwrap();
    let t = std::time::Instant::now();
    ferry_ok(home.path(), dst.path(), &["pull", "--insecure", &name]);
    let again = t.elapsed();
    println!(
        "bench_pull_400mb: image {:.1} MB, pull {:.2} s ({:.1} MB/s), re-pull (nothing changed) {:.3} s",
        size as f64 / 1e6,
        first.as_secs_f64(),
        size as f64 / 1e6 / first.as_secs_f64(),
        again.as_secs_f64()
    );
}

/// A pull killed mid-download leaves no image and no partial blob; the next
/// pull fetches only what is missing.
#[test]
fn killed_pull_resumes_without_partial_blobs() {
    let reg = Registry::start(None);
    let home = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let a = reg.addr.clone();
    let layers: Vec<Vec<(&str, Vec<u8>)>> = (0..6u8)
        .map(|i| {
            let mut data = vec![0u8; 16 << 20];
            let mut x: u64 = 0x2545_f491_4f6c_dd1d ^ u64::from(i);
            for b in data.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            vec![("data/blob", data)]
        })
        .collect();
    let img = {
        let s = Store::open(src.path()).unwrap();
        put_image(&s, "amd64", Comp::Zstd, &layers, &[])
    };
    let name = format!("{a}/ferry/big:v1");
    tag_in(src.path(), &name, &img);
    ferry_ok(home.path(), src.path(), &["push", "--insecure", &name]);

    let dst = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .env("FERRY_HOME", home.path())
        .env("FERRY_DATA_ROOT", dst.path())
        .args(["pull", "--insecure", "--concurrency", "1", &name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once at least one blob is complete and another is in flight.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let count = |d: &str| {
            std::fs::read_dir(dst.path().join(d))
                .map(|r| r.count())
                .unwrap_or(0)
        };
        if count("blobs/sha256") >= 2 && count("tmp") >= 1 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "pull finished before it could be interrupted"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "pull made no progress"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let s = Store::open(dst.path()).unwrap();
    assert!(
        s.list().unwrap().is_empty(),
        "an interrupted pull named an image"
    );
    for e in std::fs::read_dir(dst.path().join("blobs/sha256")).unwrap() {
        let hex = e.unwrap().file_name().to_string_lossy().into_owned();
        s.verify_blob(&format!("sha256:{hex}").parse().unwrap())
            .unwrap();
    }
    let have: u64 = std::fs::read_dir(dst.path().join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    drop(s);
    let out = ferry_ok(
        home.path(),
        dst.path(),
        &["-o", "json", "pull", "--insecure", &name],
    );
    let ev = last_event(&out, "pull", "finished");
    let fetched = ev["counters"]["bytes_fetched"].as_u64().unwrap();
    let total = ev["counters"]["image_size"].as_u64().unwrap();
    assert!(
        ev["counters"]["blobs_skipped"].as_u64().unwrap() >= 1,
        "{out}"
    );
    assert_eq!(fetched + have, total - img.size, "{out}");
    // The killed process's temp file was cleaned up by the next ferry.
    assert_eq!(
        std::fs::read_dir(dst.path().join("tmp")).unwrap().count(),
        0
    );
}

/// Docker schema 2 media types (what `docker push` writes) pull and mount.
#[test]
fn docker_schema2_image_pulls() {
    use ferry_coordinator::oci::types::*;
    let reg = Registry::start(None);
    let home = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let a = reg.addr.clone();
    let name = format!("{a}/ferry/docker:v2");
    let manifest = {
        let s = Store::open(src.path()).unwrap();
        let tar = oci_support::images::layer_tar(&[("etc/os", b"docker".to_vec())]);
        let layer = s
            .put_bytes(
                MEDIA_DOCKER_LAYER_GZIP,
                &oci_support::images::compress(&tar, Comp::Gzip),
            )
            .unwrap();
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Labels": {"sealos.io.type": "application"}},
            "rootfs": {"type": "layers", "diff_ids": [Digest::of(&tar).as_str()]},
        });
        let config = s.put_json_blob(MEDIA_DOCKER_CONFIG, &config).unwrap();
        let m = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_DOCKER_MANIFEST.into()),
            config,
            layers: vec![layer],
            annotations: Default::default(),
        };
        let d = s.put_json_blob(MEDIA_DOCKER_MANIFEST, &m).unwrap();
        s.tag(&name.parse().unwrap(), &d).unwrap();
        d
    };
    ferry_ok(home.path(), src.path(), &["push", "--insecure", &name]);
    let dst = tempfile::tempdir().unwrap();
    ferry_ok(home.path(), dst.path(), &["pull", "--insecure", &name]);
    let s = Store::open(dst.path()).unwrap();
    let e = s.lookup(&name).unwrap();
    assert_eq!(e.descriptor.digest, manifest.digest);
    assert_eq!(e.descriptor.media_type, MEDIA_DOCKER_MANIFEST);
    let root = tempfile::tempdir().unwrap();
    s.mount(&name, root.path(), &Default::default()).unwrap();
    assert_eq!(
        std::fs::read(root.path().join("etc/os")).unwrap(),
        b"docker"
    );
}

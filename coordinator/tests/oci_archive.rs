//! ferry save/load: oci-archive and docker-archive round trips keep the
//! digest; legacy docker archives load; hostile archives name nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod oci_support;

use std::path::Path;

use ferry_coordinator::oci::Store;
use oci_support::images::{Comp, layer_tar, put_image};
use oci_support::{ferry, ferry_ok, last_event};

const NAME: &str = "example.com/ferry/app:v1";

fn source_image(data: &Path) -> ferry_coordinator::oci::Descriptor {
    let s = Store::open(data).unwrap();
    let d = put_image(
        &s,
        "amd64",
        Comp::Gzip,
        &[
            vec![("etc/a", b"one".to_vec())],
            vec![("etc/b", vec![7u8; 100_000])],
        ],
        &[("sealos.io.type", "rootfs"), ("version", "v1.29.0")],
    );
    s.tag(&NAME.parse().unwrap(), &d).unwrap();
    d
}

fn tar_names(path: &Path) -> Vec<String> {
    let mut a = tar::Archive::new(std::fs::File::open(path).unwrap());
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn save_load_round_trip_keeps_digest() {
    let home = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let digest = source_image(src.path()).digest;
    for (format, marker) in [
        ("oci-archive", "oci-layout"),
        ("docker-archive", "manifest.json"),
    ] {
        let out = home.path().join(format!("{format}.tar"));
        ferry_ok(
            home.path(),
            src.path(),
            &["save", "-m", format, "-f", out.to_str().unwrap(), NAME],
        );
        assert!(tar_names(&out).iter().any(|n| n == marker), "{format}");
        let dst = tempfile::tempdir().unwrap();
        let stdout = ferry_ok(
            home.path(),
            dst.path(),
            &["-o", "json", "load", "-i", out.to_str().unwrap()],
        );
        assert!(
            last_event(&stdout, "image", "finished")["message"]
                .as_str()
                .unwrap()
                .contains(NAME)
        );
        let s = Store::open(dst.path()).unwrap();
        let e = s.lookup(NAME).unwrap();
        assert_eq!(e.descriptor.digest, digest, "{format}");
        let cfg = s.image_config(NAME).unwrap();
        assert_eq!(cfg.labels["version"], "v1.29.0");
        let root = tempfile::tempdir().unwrap();
        s.mount(NAME, root.path(), &Default::default()).unwrap();
        assert_eq!(std::fs::read(root.path().join("etc/a")).unwrap(), b"one");
    }
}

#[test]
fn legacy_docker_archive_loads() {
    let home = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let layer = layer_tar(&[("hello.txt", b"hi".to_vec())]);
    let diff = ferry_coordinator::oci::Digest::of(&layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Labels": {"sealos.io.type": "application"}},
        "rootfs": {"type": "layers", "diff_ids": [diff.as_str()]},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let manifest = serde_json::json!([{
        "Config": "abc.json", "RepoTags": ["legacy/app:1"], "Layers": ["0001/layer.tar"],
    }]);
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in [
        ("abc.json", config),
        ("0001/layer.tar", layer),
        ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, data.as_slice()).unwrap();
    }
    let file = home.path().join("legacy.tar");
    std::fs::write(&file, b.into_inner().unwrap()).unwrap();
    ferry_ok(
        home.path(),
        dst.path(),
        &["load", "-i", file.to_str().unwrap()],
    );
    let s = Store::open(dst.path()).unwrap();
    let cfg = s.image_config("legacy/app:1").unwrap();
    assert_eq!(cfg.labels["sealos.io.type"], "application");
    let root = tempfile::tempdir().unwrap();
    s.mount("legacy/app:1", root.path(), &Default::default())
        .unwrap();
    assert_eq!(std::fs::read(root.path().join("hello.txt")).unwrap(), b"hi");
}

/// A tar whose one entry has a raw (unchecked) name and type.
fn raw_tar(entries: &[(&[u8], tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(*kind);
        if *kind == tar::EntryType::Symlink {
            h.set_link_name("/etc/passwd").unwrap();
        }
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn hostile_archives_are_rejected_before_naming_anything() {
    let home = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    source_image(src.path());
    let good = home.path().join("good.tar");
    ferry_ok(
        home.path(),
        src.path(),
        &["save", "-f", good.to_str().unwrap(), NAME],
    );
    let good_bytes = std::fs::read(&good).unwrap();
    let wrong = format!("blobs/sha256/{}", "0".repeat(64));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "parent",
            raw_tar(&[(b"../evil", tar::EntryType::Regular, b"x")]),
            "`..`",
        ),
        (
            "absolute",
            raw_tar(&[(b"/etc/evil", tar::EntryType::Regular, b"x")]),
            "absolute",
        ),
        (
            "symlink",
            raw_tar(&[(b"index.json", tar::EntryType::Symlink, b"")]),
            "regular files",
        ),
        (
            "wrong digest",
            raw_tar(&[(wrong.as_bytes(), tar::EntryType::Regular, b"not zero")]),
            "mismatch",
        ),
        (
            "bad blob name",
            raw_tar(&[(b"blobs/sha256/xyz", tar::EntryType::Regular, b"x")]),
            "64 hex",
        ),
        // A good archive with its index pointing at a manifest that is missing.
        ("truncated", good_bytes[..good_bytes.len() / 3].to_vec(), ""),
    ];
    for (what, bytes, needle) in cases {
        let dst = tempfile::tempdir().unwrap();
        let file = home.path().join(format!("{what}.tar"));
        std::fs::write(&file, bytes).unwrap();
        let out = ferry(
            home.path(),
            dst.path(),
            &["load", "-i", file.to_str().unwrap()],
        );
        assert!(!out.status.success(), "{what} loaded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{what}: {err}");
        assert!(!dst.path().join("etc").exists());
        let s = Store::open(dst.path()).unwrap();
        assert!(s.list().unwrap().is_empty(), "{what} named an image");
    }
    // A 1 GiB PAX header (a sparse file): refused at its header block,
    // never read into memory.
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_path("PaxHeaders/x").unwrap();
    h.set_size(1 << 30);
    h.set_cksum();
    let bomb = home.path().join("bomb.tar");
    std::fs::write(&bomb, h.as_bytes()).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&bomb)
        .unwrap()
        .set_len((1 << 30) + 2048)
        .unwrap();
    let dst = tempfile::tempdir().unwrap();
    let out = ferry(
        home.path(),
        dst.path(),
        &["load", "-i", bomb.to_str().unwrap()],
    );
    assert!(!out.status.success(), "bomb loaded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("PAX header") && err.contains("exceeds the limit"),
        "{err}"
    );
    assert!(Store::open(dst.path()).unwrap().list().unwrap().is_empty());
}

#[test]
fn images_tag_rmi_and_gc() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let d = source_image(data.path());
    ferry_ok(home.path(), data.path(), &["tag", NAME, "local/other:2"]);
    let out = ferry_ok(home.path(), data.path(), &["images"]);
    assert!(
        out.contains("example.com/ferry/app") && out.contains("local/other"),
        "{out}"
    );
    assert!(out.contains(&d.digest.hex()[..12]));
    // An id naming two images needs -f.
    let out = ferry(home.path(), data.path(), &["rmi", &d.digest.hex()[..12]]);
    assert!(!out.status.success());
    ferry_ok(home.path(), data.path(), &["rmi", "local/other:2"]);
    let s = Store::open(data.path()).unwrap();
    assert_eq!(s.list().unwrap().len(), 1);
    assert!(s.has_blob(&d.digest));
    drop(s);
    let out = ferry_ok(home.path(), data.path(), &["-o", "json", "rmi", NAME]);
    let ev = last_event(&out, "image", "finished");
    assert_eq!(ev["counters"]["blobs_removed"], 4, "{out}");
    let blobs = std::fs::read_dir(data.path().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0);
    // --all removes every name; --prune only collects.
    source_image(data.path());
    ferry_ok(home.path(), data.path(), &["tag", NAME, "local/third:3"]);
    ferry_ok(home.path(), data.path(), &["rmi", "--all"]);
    assert!(Store::open(data.path()).unwrap().list().unwrap().is_empty());
    let out = ferry_ok(home.path(), data.path(), &["-o", "json", "rmi", "--prune"]);
    assert_eq!(
        last_event(&out, "image", "finished")["counters"]["blobs_removed"],
        0
    );
}

#[test]
fn concurrent_ferry_processes_keep_index_valid() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    source_image(data.path());
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let home = home.path().to_owned();
            let data = data.path().to_owned();
            std::thread::spawn(move || {
                for i in 0..8 {
                    let target = format!("local/p{w}:t{i}");
                    ferry_ok(&home, &data, &["tag", NAME, &target]);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let index: ferry_coordinator::oci::types::Index =
        serde_json::from_slice(&std::fs::read(data.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(index.manifests.len(), 17);
    let out = ferry_ok(home.path(), data.path(), &["images", "-q"]);
    assert_eq!(out.lines().count(), 17, "{out}");
}

#[test]
fn bare_tag_annotation_is_named_after_the_archive() {
    let home = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let digest = source_image(src.path()).digest;
    let saved = home.path().join("saved.tar");
    ferry_ok(
        home.path(),
        src.path(),
        &["save", "-f", saved.to_str().unwrap(), NAME],
    );
    // Rewrite index.json the way skopeo/buildah name images: a bare tag.
    let mut out = tar::Builder::new(Vec::new());
    let mut a = tar::Archive::new(std::fs::File::open(&saved).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        if path == "index.json" {
            let text = String::from_utf8(data).unwrap().replace(NAME, "v7");
            data = text.into_bytes();
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        out.append_data(&mut h, &path, data.as_slice()).unwrap();
    }
    let file = home.path().join("My_Archive.tar");
    std::fs::write(&file, out.into_inner().unwrap()).unwrap();
    let dst = tempfile::tempdir().unwrap();
    ferry_ok(
        home.path(),
        dst.path(),
        &["load", "-i", file.to_str().unwrap()],
    );
    let s = Store::open(dst.path()).unwrap();
    assert_eq!(
        s.lookup("localhost/my-archive:v7")
            .unwrap()
            .descriptor
            .digest,
        digest
    );
}

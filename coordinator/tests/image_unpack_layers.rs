#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Benign layers: whiteouts across a stack, replacements, compression, modes,
//! and a property test that random trees round-trip.

mod unpack_support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use ferry_coordinator::image::unpack::{
    Compression, LayerId, UnpackOptions, unpack_layer, unpack_stack,
};
use proptest::prelude::*;
use tar::EntryType;
use unpack_support::{Layer, Sandbox};

/// A snapshot of a tree: path → "d" | "f:<content>" | "l:<target>".
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    format!("l:{}", fs::read_link(&path).unwrap().display()),
                );
            } else if meta.is_dir() {
                out.insert(rel, "d".to_owned());
                walk(root, &path, out);
            } else {
                out.insert(rel, format!("f:{}", fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn tree(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn whiteouts_merge_a_stack() {
    let sb = Sandbox::new();
    let lower = Layer::new()
        .dir("a")
        .file("a/x", b"x")
        .file("a/y", b"y")
        .dir("b")
        .file("b/z", b"z")
        .dir("c")
        .file("c/1", b"1")
        .dir("c/sub")
        .file("c/sub/deep", b"d");
    let upper = Layer::new()
        .file("a/.wh.x", b"")
        .file(".wh.b", b"")
        .dir("c")
        .file("c/.wh..wh..opq", b"")
        .file("c/2", b"2");
    let stats = sb
        .unpack_all(&[lower, upper], &UnpackOptions::default())
        .unwrap();
    assert_eq!(stats[1].whiteouts, 3);
    assert_eq!(
        snapshot(&sb.target),
        tree(&[("a", "d"), ("a/y", "f:y"), ("c", "d"), ("c/2", "f:2")])
    );
}

#[test]
fn opaque_marker_keeps_entries_of_its_own_layer() {
    let sb = Sandbox::new();
    let lower = Layer::new().dir("c").file("c/old", b"o");
    let upper = Layer::new().file("c/new", b"n").file("c/.wh..wh..opq", b"");
    sb.unpack_all(&[lower, upper], &UnpackOptions::default())
        .unwrap();
    assert_eq!(snapshot(&sb.target), tree(&[("c", "d"), ("c/new", "f:n")]));
}

#[test]
fn replacements_across_layers() {
    let sb = Sandbox::new();
    let lower = Layer::new()
        .file("f2d", b"file")
        .dir("d2f")
        .file("d2f/inner", b"i")
        .file("l2f", b"target");
    let upper = Layer::new()
        .dir("f2d")
        .file("f2d/child", b"c")
        .file("d2f", b"now a file")
        .symlink("l2f", "f2d/child")
        .file("f2d/child", b"rewritten");
    sb.unpack_all(&[lower, upper], &UnpackOptions::default())
        .unwrap();
    assert_eq!(
        snapshot(&sb.target),
        tree(&[
            ("d2f", "f:now a file"),
            ("f2d", "d"),
            ("f2d/child", "f:rewritten"),
            ("l2f", "l:f2d/child"),
        ])
    );
}

#[test]
fn hardlinks_inside_the_image() {
    let sb = Sandbox::new();
    let layer = Layer::new()
        .dir("bin")
        .file("bin/kubectl", b"elf")
        .hardlink("bin/k", "bin/kubectl");
    sb.unpack_all(&[layer], &UnpackOptions::default()).unwrap();
    let a = fs::metadata(sb.target.join("bin/kubectl")).unwrap();
    let b = fs::metadata(sb.target.join("bin/k")).unwrap();
    assert_eq!(a.ino(), b.ino());
}

#[test]
fn gzip_zstd_and_plain_give_the_same_tree() {
    let layer = Layer::new()
        .dir("etc")
        .file("etc/a.tmpl", b"{{ .x }}")
        .symlink("etc/b", "a.tmpl");
    let mut trees = Vec::new();
    for (blob, compression) in [
        (layer.tar(), Compression::None),
        (layer.gzip(), Compression::Gzip),
        (layer.zstd(), Compression::Zstd),
    ] {
        assert_eq!(Compression::sniff(&blob), compression);
        let sb = Sandbox::new();
        let id = LayerId {
            index: 0,
            digest: "sha256:x".into(),
        };
        unpack_layer(blob.as_slice(), &sb.target, &id, &UnpackOptions::default()).unwrap();
        trees.push(snapshot(&sb.target));
    }
    assert_eq!(trees[0], trees[1]);
    assert_eq!(trees[0], trees[2]);
    assert_eq!(
        Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+zstd"),
        Compression::Zstd
    );
    assert_eq!(
        Compression::from_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip"),
        Compression::Gzip
    );
}

#[test]
fn modes_including_read_only_directories() {
    let sb = Sandbox::new();
    let layer = Layer::new()
        .raw("ro", EntryType::Directory, 0o555, b"", None)
        .raw(
            "ro/script.sh",
            EntryType::Regular,
            0o755,
            b"#!/bin/sh\n",
            None,
        )
        .raw("ro/secret", EntryType::Regular, 0o600, b"s", None);
    sb.unpack_all(&[layer], &UnpackOptions::default()).unwrap();
    let mode = |p: &str| {
        fs::metadata(sb.target.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("ro"), 0o555);
    assert_eq!(mode("ro/script.sh"), 0o755);
    assert_eq!(mode("ro/secret"), 0o600);
    fs::set_permissions(sb.target.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn long_names_and_root_entry() {
    let sb = Sandbox::new();
    let long = format!("{}/file", "x".repeat(150));
    let layer = Layer::new().dir("./").file(&long, b"long");
    let stacked = unpack_stack(
        [(
            LayerId {
                index: 0,
                digest: "sha256:l".into(),
            },
            layer.tar(),
        )]
        .into_iter()
        .map(|(id, bytes)| (id, std::io::Cursor::new(bytes))),
        &sb.target,
        &UnpackOptions::default(),
    )
    .unwrap();
    assert_eq!(stacked.len(), 1);
    assert_eq!(fs::read_to_string(sb.target.join(&long)).unwrap(), "long");
}

#[derive(Debug, Clone)]
enum Node {
    File(String),
    Link(usize),
}

fn trees() -> impl Strategy<Value = Vec<(Vec<String>, Node)>> {
    let name = "[a-z]{1,6}";
    let path = prop::collection::vec(name, 1..4);
    let node = prop_oneof![3 => "[a-z ]{0,20}".prop_map(Node::File), 1 => (0usize..8).prop_map(Node::Link)];
    prop::collection::vec((path, node), 1..12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn random_benign_trees_round_trip(spec in trees()) {
        // Build a consistent tree: first path wins; parents are directories.
        let mut expected: BTreeMap<String, String> = BTreeMap::new();
        let mut layer = Layer::new();
        let mut files: Vec<String> = Vec::new();
        'outer: for (parts, node) in spec {
            let full = parts.join("/");
            for i in 1..parts.len() {
                let parent = parts[..i].join("/");
                match expected.get(&parent).map(String::as_str) {
                    Some("d") => {}
                    Some(_) => continue 'outer,
                    None => {
                        expected.insert(parent.clone(), "d".to_owned());
                        layer = layer.dir(&parent);
                    }
                }
            }
            if expected.contains_key(&full) {
                continue;
            }
            match node {
                Node::File(content) => {
                    expected.insert(full.clone(), format!("f:{content}"));
                    layer = layer.file(&full, content.as_bytes());
                    files.push(full);
                }
                Node::Link(i) if !files.is_empty() => {
                    // An absolute in-image target: stored, never followed.
                    let target = format!("/{}", files[i % files.len()]);
                    expected.insert(full.clone(), format!("l:{target}"));
                    layer = layer.symlink(&full, &target);
                }
                Node::Link(_) => {}
            }
        }
        let sb = Sandbox::new();
        sb.unpack_all(&[layer], &UnpackOptions::default()).unwrap();
        prop_assert_eq!(snapshot(&sb.target), expected);
        sb.assert_canary_untouched();
    }
}

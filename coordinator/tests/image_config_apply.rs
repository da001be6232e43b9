#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `Config` documents applied to a mounted image directory.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

use ferry_coordinator::image::config_apply::{ConfigApplyError, apply_configs};
use ferry_shared::config_doc::parse_config_docs;

fn config(name: &str, path: &str, strategy: &str, data: &str, matches: &str) -> String {
    format!(
        "---\napiVersion: apps.sealos.io/v1beta1\nkind: Config\nmetadata: {{name: {name}}}\nspec:\n  path: {path}\n  strategy: {strategy:?}\n  match: {matches:?}\n  data: {data:?}\n"
    )
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("image");
    let outside = dir.path().join("outside");
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(&outside).unwrap();
    Fixture {
        _dir: dir,
        root,
        outside,
    }
}

#[test]
fn each_strategy_on_disk() {
    let f = fixture();
    fs::write(f.root.join("etc/over.txt"), "old\n").unwrap();
    fs::write(f.root.join("etc/ins.txt"), "old\n").unwrap();
    fs::write(f.root.join("etc/app.txt"), "old\n").unwrap();
    fs::write(
        f.root.join("etc/multi.yaml"),
        "kind: A\nspec: {a: 1}\n---\nkind: B\nspec: {b: 2}\n",
    )
    .unwrap();
    fs::set_permissions(
        f.root.join("etc/app.txt"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let text = [
        config("o", "etc/over.txt", "override", "new\n", ""),
        config("i", "etc/ins.txt", "insert", "first", ""),
        config("a", "etc/app.txt", "append", "last\n", ""),
        config("m", "etc/multi.yaml", "merge", "spec: {c: 3}\n", ""),
        config("n", "etc/new/dir/file.conf", "", "created\n", ""),
    ]
    .concat();
    let docs = parse_config_docs(&text).unwrap();
    let applied = apply_configs(&f.root, "labring/kubernetes:v1.27.7", &docs).unwrap();
    assert_eq!(applied.len(), 5);
    let read = |p: &str| fs::read_to_string(f.root.join(p)).unwrap();
    assert_eq!(read("etc/over.txt"), "new\n");
    assert_eq!(read("etc/ins.txt"), "first\nold\n");
    assert_eq!(read("etc/app.txt"), "old\n\nlast\n");
    assert_eq!(
        read("etc/multi.yaml"),
        "kind: A\nspec:\n  a: 1\n  c: 3\n---\nkind: B\nspec:\n  b: 2\n  c: 3\n"
    );
    assert_eq!(read("etc/new/dir/file.conf"), "created\n");
    let mode = fs::metadata(f.root.join("etc/app.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode kept");
    let leftovers: Vec<_> = fs::read_dir(f.root.join("etc"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("ferry-tmp")
        })
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn match_restricts_by_image_name() {
    let f = fixture();
    let text = [
        config(
            "calico",
            "etc/calico.txt",
            "",
            "c\n",
            "labring/calico:v3.26.1",
        ),
        config("all", "etc/all.txt", "", "a\n", ""),
    ]
    .concat();
    let docs = parse_config_docs(&text).unwrap();
    let applied = apply_configs(&f.root, "labring/helm:v3.9.4", &docs).unwrap();
    assert_eq!(applied.len(), 1);
    assert!(!f.root.join("etc/calico.txt").exists());
    apply_configs(&f.root, "labring/calico:v3.26.1", &docs).unwrap();
    assert_eq!(
        fs::read_to_string(f.root.join("etc/calico.txt")).unwrap(),
        "c\n"
    );
}

#[test]
fn symlinks_stay_inside_the_root() {
    let f = fixture();
    // absolute link to the host's outside dir: resolved as if root were `/`.
    symlink(&f.outside, f.root.join("etc/abs")).unwrap();
    // relative link climbing out: `..` is clamped at the root.
    symlink("../../../../outside", f.root.join("etc/rel")).unwrap();
    // final component a link to an outside file.
    fs::write(f.outside.join("victim"), "keep\n").unwrap();
    symlink(f.outside.join("victim"), f.root.join("etc/victim")).unwrap();
    let text = [
        config("abs", "etc/abs/x.txt", "", "1\n", ""),
        config("rel", "etc/rel/y.txt", "", "2\n", ""),
        config("fin", "etc/victim", "append", "3\n", ""),
    ]
    .concat();
    let docs = parse_config_docs(&text).unwrap();
    apply_configs(&f.root, "img", &docs).unwrap();
    assert_eq!(
        fs::read_dir(&f.outside).unwrap().count(),
        1,
        "only the victim file"
    );
    assert_eq!(
        fs::read_to_string(f.outside.join("victim")).unwrap(),
        "keep\n"
    );
    let abs_inside = f
        .root
        .join(f.outside.strip_prefix("/").unwrap())
        .join("x.txt");
    assert_eq!(fs::read_to_string(abs_inside).unwrap(), "1\n");
    assert_eq!(
        fs::read_to_string(f.root.join("outside/y.txt")).unwrap(),
        "2\n"
    );
}

#[test]
fn symlink_loop_and_directory_target_fail() {
    let f = fixture();
    symlink("loop", f.root.join("etc/loop")).unwrap();
    let docs = parse_config_docs(&config("l", "etc/loop/x", "", "1", "")).unwrap();
    let err = apply_configs(&f.root, "img", &docs).unwrap_err();
    assert!(matches!(err, ConfigApplyError::Resolve { .. }), "{err}");
    let docs = parse_config_docs(&config("d", "etc", "", "1", "")).unwrap();
    let err = apply_configs(&f.root, "img", &docs).unwrap_err();
    assert!(matches!(err, ConfigApplyError::IsDirectory { .. }), "{err}");
}

#[test]
fn merge_error_names_the_config() {
    let f = fixture();
    fs::write(f.root.join("etc/a.yaml"), "a: scalar\n").unwrap();
    let docs = parse_config_docs(&config("bad", "etc/a.yaml", "merge", "a: {b: 1}", "")).unwrap();
    let err = apply_configs(&f.root, "img", &docs).unwrap_err();
    assert!(err.to_string().contains("Config \"bad\""), "{err}");
    assert_eq!(
        fs::read_to_string(f.root.join("etc/a.yaml")).unwrap(),
        "a: scalar\n"
    );
}

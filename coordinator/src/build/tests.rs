use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, SystemTime};

use ferry_shared::kubefile::{BuildArgs, IgnoreRules, Kubefile};

use super::layer::{Compression, write_layer};
use super::tree::{EntryKind, Tree, TreeError};

fn write(root: &Path, rel: &str, content: &str, mode: u32) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

fn tree(ctx: &Path, kubefile: &str, ignore: &str) -> Result<Tree, TreeError> {
    let plan = Kubefile::parse(kubefile)
        .unwrap()
        .resolve(&BuildArgs::new(), &[])
        .unwrap();
    Tree::from_copies(ctx, &plan.copies, &IgnoreRules::parse(ignore).unwrap())
}

/// A small labring-style context; `order` flips creation order, `age` the mtimes.
fn context(root: &Path, flip: bool, age: u64) {
    let mut files = vec![
        ("scripts/init.sh", "echo init\n", 0o755),
        ("etc/config.toml.tmpl", "x = {{ .a }}\n", 0o644),
        ("images/shim/list", "nginx:1\n", 0o644),
        ("bin/tool", "binary", 0o700),
        ("notes.md", "ignored", 0o644),
    ];
    if flip {
        files.reverse();
    }
    for (rel, content, mode) in files {
        write(root, rel, content, mode);
    }
    symlink("../scripts/init.sh", root.join("bin/init")).unwrap();
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000 + age);
    for rel in ["scripts/init.sh", "etc", "bin/tool", "."] {
        let f = fs::File::open(root.join(rel)).unwrap();
        f.set_modified(t).unwrap();
    }
}

const KUBEFILE: &str =
    "FROM scratch\nCOPY . .\nCOPY --chmod=0600 etc/config.toml.tmpl /etc/extra/\n";

#[test]
fn layers_are_reproducible_across_mtimes_and_creation_order() {
    let mut results = Vec::new();
    for (flip, age) in [(false, 0), (true, 99_999)] {
        let dir = tempfile::tempdir().unwrap();
        context(dir.path(), flip, age);
        let t = tree(dir.path(), KUBEFILE, "*.md\n").unwrap();
        for c in [Compression::Gzip, Compression::Zstd] {
            let (bytes, d) = write_layer(&t, Vec::new(), c, 0).unwrap();
            assert_eq!(d.size, bytes.len() as u64);
            results.push((c, d));
        }
    }
    assert_eq!(results[0], results[2], "gzip layers differ");
    assert_eq!(results[1], results[3], "zstd layers differ");
    assert_ne!(results[0].1.digest, results[1].1.digest);
    assert_eq!(results[0].1.diff_id, results[1].1.diff_id, "same tar");
}

#[test]
fn layer_entries_are_sorted_normalised_and_keep_modes_and_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    context(dir.path(), false, 0);
    let t = tree(dir.path(), KUBEFILE, "*.md\n").unwrap();
    let (bytes, _) = write_layer(&t, Vec::new(), Compression::Gzip, 1234).unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    let mut seen = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        assert_eq!(h.mtime().unwrap(), 1234);
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
        assert_eq!(h.username().unwrap(), Some(""));
        let path = e.path().unwrap().to_string_lossy().to_string();
        let mut content = String::new();
        if h.entry_type().is_file() {
            e.read_to_string(&mut content).unwrap();
        }
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().to_string());
        seen.push((path, h.mode().unwrap(), link, content));
    }
    let paths: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
    assert!(!paths.contains(&"notes.md"), "ignored file left out");
    let find = |p: &str| seen.iter().find(|s| s.0 == p).unwrap();
    assert_eq!(find("bin/tool").1, 0o700);
    assert_eq!(find("bin/tool").3, "binary");
    assert_eq!(find("scripts/init.sh").1, 0o755);
    assert_eq!(find("bin/init").2.as_deref(), Some("../scripts/init.sh"));
    assert_eq!(find("etc/extra/config.toml.tmpl").1, 0o600);
    assert_eq!(find("etc/extra/").1, 0o755, "implicit parent");
}

#[test]
fn later_copies_win_and_files_replace_directories() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a/x/inner", "1", 0o644);
    write(dir.path(), "b", "file", 0o644);
    let t = tree(dir.path(), "FROM scratch\nCOPY a /opt\nCOPY b /opt/x\n", "").unwrap();
    let keys: Vec<&str> = t.entries.keys().map(String::as_str).collect();
    assert_eq!(keys, ["opt", "opt/x"]);
    assert!(matches!(t.entries["opt/x"].kind, EntryKind::File { .. }));
    let e = tree(dir.path(), "FROM scratch\nCOPY b /opt\nCOPY a /opt/\n", "").unwrap_err();
    assert!(matches!(e, TreeError::NotADirectory { .. }), "{e}");
}

#[test]
fn globs_and_single_files() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "charts/a.yaml", "a", 0o644);
    write(dir.path(), "charts/b.yaml", "b", 0o644);
    write(dir.path(), "charts/c.txt", "c", 0o644);
    let t = tree(
        dir.path(),
        "FROM scratch\nCOPY charts/*.yaml /m/\nCOPY charts/c.txt /renamed\n",
        "",
    )
    .unwrap();
    let keys: Vec<&str> = t.entries.keys().map(String::as_str).collect();
    assert_eq!(keys, ["m", "m/a.yaml", "m/b.yaml", "renamed"]);
    let e = tree(dir.path(), "FROM scratch\nCOPY charts/*.yaml /one\n", "").unwrap_err();
    assert!(matches!(e, TreeError::Source { .. }), "{e}");
    let e = tree(dir.path(), "FROM scratch\nCOPY nope/*.x /m/\n", "").unwrap_err();
    assert!(matches!(e, TreeError::NotFound { .. }), "{e}");
    let e = tree(
        dir.path(),
        "FROM scratch\nCOPY charts/c.txt /m/\n",
        "charts/*.txt\n",
    )
    .unwrap_err();
    assert!(
        matches!(e, TreeError::NotFound { .. }),
        "excluded source: {e}"
    );
}

#[test]
fn sources_escaping_the_context_are_refused() {
    let outer = tempfile::tempdir().unwrap();
    let ctx = outer.path().join("ctx");
    fs::create_dir(&ctx).unwrap();
    write(outer.path(), "secret", "s", 0o600);
    symlink("/etc", ctx.join("abs")).unwrap();
    symlink("../secret", ctx.join("rel")).unwrap();
    symlink("sub/../../secret", ctx.join("deep")).unwrap();
    fs::create_dir(ctx.join("sub")).unwrap();
    symlink("../rel", ctx.join("sub/chain")).unwrap();
    for src in ["abs", "abs/passwd", "rel", "deep", "sub/chain"] {
        let e = tree(&ctx, &format!("FROM scratch\nCOPY {src} /x\n"), "").unwrap_err();
        assert!(
            matches!(e, TreeError::Escapes { line: 2, .. }),
            "{src}: {e}"
        );
        assert!(e.to_string().contains("leaves the build context"));
    }
    // Inside a copied directory, escaping symlinks stay symlinks, unfollowed.
    let t = tree(&ctx, "FROM scratch\nCOPY . /\n", "").unwrap();
    assert_eq!(
        t.entries["abs"].kind,
        EntryKind::Symlink {
            target: "/etc".into()
        }
    );
    assert!(!t.entries.keys().any(|k| k.starts_with("abs/")));
}

#[test]
fn scan_finds_images_in_lists_manifests_and_charts() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path();
    write(
        ctx,
        "images/shim/a",
        "# c\nnginx:1\nregistry.k8s.io/pause:3.9\n",
        0o644,
    );
    write(ctx, "images/shim/b", "nginx:1\n", 0o644);
    write(
        ctx,
        "manifests/deploy.yaml",
        "spec:\n  containers:\n  - image: busybox:1.36\n",
        0o644,
    );
    write(ctx, "manifests/skip.tmpl", "image: {{ .x }}\n", 0o644);
    write(
        ctx,
        "charts/calico/Chart.yaml",
        "name: calico\nappVersion: v3.26.1\n",
        0o644,
    );
    write(
        ctx,
        "charts/calico/values.yaml",
        "node:\n  image:\n    repository: calico/node\n",
        0o644,
    );
    write(
        ctx,
        "charts/ignored/values.yaml",
        "image: ignored:1\n",
        0o644,
    );
    let ignore = IgnoreRules::parse("charts/ignored\n").unwrap();
    let wanted = super::collect::scan(ctx, &ignore).unwrap();
    let names: Vec<String> = wanted.iter().map(|w| w.reference.to_string()).collect();
    assert_eq!(
        names,
        [
            "docker.io/library/nginx:1",
            "registry.k8s.io/pause:3.9",
            "docker.io/library/busybox:1.36",
            "docker.io/calico/node:v3.26.1",
        ]
    );
    assert_eq!(wanted[3].file, "charts/calico/values.yaml");
    write(ctx, "images/shim/bad", "Not A Valid Ref!\n", 0o644);
    assert!(super::collect::scan(ctx, &ignore).is_err());
}

#[test]
fn a_source_swapped_for_a_symlink_after_the_check_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), "private").unwrap();
    context(dir.path(), false, 0);
    let t = tree(dir.path(), KUBEFILE, "*.md\n").unwrap();
    // Between the context check and the layer write, bin/tool becomes a
    // symlink to a file outside the context.
    fs::remove_file(dir.path().join("bin/tool")).unwrap();
    symlink(outside.path().join("secret"), dir.path().join("bin/tool")).unwrap();
    let e = write_layer(&t, Vec::new(), Compression::Gzip, 0).unwrap_err();
    assert!(e.to_string().contains("bin/tool"), "{e}");
}

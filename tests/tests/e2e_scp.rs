//! End to end on the testbed: `ferry scp` copies a tree to 3 nodes through
//! the agents' transfer service; re-runs move only what changed; damage on
//! a node is detected and repaired; bad input is refused clearly.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::transfer::{counter, finished, noise};
use common::{Bastion, find, stderr};
use ferry_tests::testbed::{Testbed, TestbedConfig};
use serde_json::Value;

const DST: &str = "/opt/ferry-scp-test";
const MIB: u64 = 1 << 20;

/// The tree as text: entries with type, mode, symlink target, file mtimes
/// and sha256 of every file.
const LISTING: &str = r#"cd "$1" && { find . -mindepth 1 -printf '%P %y %m %l\n'; find . -type f -printf '%P %T@\n'; find . -type f -print0 | xargs -0 -r sha256sum; } | LC_ALL=C sort"#;

fn local_listing(dir: &Path) -> String {
    let out = Command::new("bash")
        .args(["-c", LISTING, "listing"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn node_listing(tb: &Testbed, i: usize) -> String {
    tb.exec_ok(i, &["bash", "-c", LISTING, "listing", DST])
        .unwrap()
}

/// Pseudo-random, incompressible bytes.
fn write(root: &Path, rel: &str, data: &[u8], mode: u32) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, data).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn source_tree(root: &Path) {
    write(root, "bin/big", &noise(3 * MIB as usize + 12345, 7), 0o755);
    let text: Vec<u8> = (0..200_000).map(|i| b"ferry text "[i % 11]).collect();
    write(root, "bin/tool", &text, 0o750);
    write(root, "etc/conf", b"key: value\n", 0o600);
    write(root, "etc/empty-file", b"", 0o644);
    write(root, "data/a.txt", &noise(300_000, 3), 0o644);
    write(root, "data/del.txt", b"delete me\n", 0o644);
    std::fs::create_dir_all(root.join("var/empty")).unwrap();
    std::fs::set_permissions(
        root.join("var/empty"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    std::os::unix::fs::symlink("bin/tool", root.join("current")).unwrap();
}

/// Per-node `transfer finished` counters.
fn total_ms(ev: &[Value]) -> u64 {
    let f = find(ev, "", "transfer", "finished");
    counter(&f[0]["counters"], "duration_ms")
}

#[test]
fn scp_copies_then_moves_only_changes_and_repairs_damage() {
    let tb = Testbed::up(TestbedConfig {
        nodes: 3,
        ..Default::default()
    })
    .expect("testbed up");
    let b = Bastion::new(&tb);
    let ip: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let pw = tb.password("root").unwrap().to_string();
    let out = b.ferry(&["agent", "install", "--masters", &ip.join(","), "-p", &pw]);
    assert!(out.status.success(), "install: {}", stderr(&out));

    let src_dir = tempfile::tempdir().unwrap();
    let src = src_dir.path().join("tree");
    source_tree(&src);
    let src_s = src.to_string_lossy().into_owned();
    let all_equal = |what: &str| {
        let want = local_listing(&src);
        for (i, addr) in ip.iter().enumerate() {
            assert_eq!(node_listing(&tb, i), want, "{what}: node {addr} differs");
        }
    };

    // First copy: everything moves, the trees are identical.
    let (out, ev) = b.ferry_json(&["scp", &src_s, DST]);
    assert!(out.status.success(), "scp: {}", stderr(&out));
    for i in &ip {
        let c = finished(&ev, i);
        assert_eq!(counter(c, "files_sent"), 6, "{c}");
        assert!(counter(c, "content_bytes_sent") > 3 * MIB, "{c}");
        assert!(
            counter(c, "wire_bytes_sent") < counter(c, "content_bytes_sent"),
            "{c}"
        );
    }
    all_equal("first copy");
    eprintln!(
        "FIGURE first copy of ~3.7 MB to 3 nodes: {} ms",
        total_ms(&ev)
    );

    // No-op re-run: zero content bytes.
    let (out, ev) = b.ferry_json(&["scp", &src_s, DST]);
    assert!(out.status.success(), "{}", stderr(&out));
    for i in &ip {
        let c = finished(&ev, i);
        assert_eq!(counter(c, "content_bytes_sent"), 0, "{c}");
        assert_eq!(counter(c, "files_sent"), 0, "{c}");
        assert_eq!(counter(c, "files_skipped"), 6, "{c}");
    }
    eprintln!("FIGURE no-op re-run on 3 nodes: {} ms", total_ms(&ev));

    // Change one chunk of the big file, delete one, rename one, retarget
    // the symlink, change a mode: only the changed chunk moves; with
    // `--delete` the nodes lose what SRC lost.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(src.join("bin/big"))
            .unwrap();
        f.seek(SeekFrom::Start(MIB + 100)).unwrap();
        f.write_all(b"changed").unwrap();
    }
    std::fs::remove_file(src.join("data/del.txt")).unwrap();
    std::fs::rename(src.join("data/a.txt"), src.join("data/b.txt")).unwrap();
    std::fs::remove_file(src.join("current")).unwrap();
    std::os::unix::fs::symlink("etc/conf", src.join("current")).unwrap();
    std::fs::set_permissions(src.join("etc/conf"), std::fs::Permissions::from_mode(0o640)).unwrap();
    let (out, ev) = b.ferry_json(&["scp", "--delete", &src_s, DST]);
    assert!(out.status.success(), "{}", stderr(&out));
    for i in &ip {
        let c = finished(&ev, i);
        assert_eq!(counter(c, "content_bytes_sent"), MIB, "one chunk: {c}");
        assert_eq!(counter(c, "files_sent"), 2, "big + renamed: {c}");
        assert_eq!(counter(c, "deleted"), 2, "del.txt + a.txt: {c}");
    }
    all_equal("after changes");

    // Damage on node 1 with its cache gone: detected and re-sent; other
    // nodes move nothing.
    tb.exec_ok(1, &["rm", "-rf", "/var/lib/ferry/cache"])
        .unwrap();
    tb.exec_ok(
        1,
        &[
            "bash",
            "-c",
            &format!("printf XXXX | dd of={DST}/bin/big bs=1 seek=10 conv=notrunc"),
        ],
    )
    .unwrap();
    let (out, ev) = b.ferry_json(&["scp", &src_s, DST]);
    assert!(out.status.success(), "{}", stderr(&out));
    let c = finished(&ev, &ip[1]);
    assert_eq!(counter(c, "files_sent"), 1, "{c}");
    assert_eq!(counter(c, "content_bytes_sent"), MIB, "{c}");
    for i in [&ip[0], &ip[2]] {
        assert_eq!(counter(finished(&ev, i), "content_bytes_sent"), 0);
    }
    all_equal("after repair");

    // Bad input: clear errors, usage exit code.
    let out = b.ferry(&["scp", &src_s, "relative/dst"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("absolute"), "{}", stderr(&out));
    let missing = src_dir.path().join("nope").to_string_lossy().into_owned();
    let out = b.ferry(&["scp", &missing, DST]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    let out = b.ferry(&["scp", &src_s, "/"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("root"), "{}", stderr(&out));
    let out = b.ferry(&["scp", "--delete", &src_s, "/etc"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("top-level"), "{}", stderr(&out));
}

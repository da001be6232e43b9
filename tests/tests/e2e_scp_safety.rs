//! End to end on the testbed, `ferry scp` as a new user would run it: a
//! directory copy keeps what the destination held (pruning only with
//! `--delete`), a symlinked destination is refused with nothing written,
//! files are root-owned on the nodes even when a uid-1000 user runs ferry
//! (owners kept only with `--preserve-owner`), and the node's chunk cache is
//! private (0700 dirs, 0600 files).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use common::transfer::{counter, finished};
use common::{Bastion, ferry_bin, stderr};
use ferry_tests::testbed::{Testbed, TestbedConfig};

const USER: u32 = 1000;

fn write(root: &Path, rel: &str, data: &[u8], mode: u32) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, data).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `chown -R uid:uid path`.
fn chown_tree(path: &Path, uid: u32) {
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{uid}"))
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Runs ferry in the bastion namespace as uid/gid [`USER`].
fn ferry_as_user(tb: &Testbed, b: &Bastion, args: &[&str]) -> Output {
    let out = Command::new("ip")
        .args(["netns", "exec", tb.bastion_netns(), "setpriv"])
        .arg(format!("--reuid={USER}"))
        .arg(format!("--regid={USER}"))
        .arg("--clear-groups")
        .arg(ferry_bin())
        .env("HOME", b.home())
        .env("FERRY_HOME", b.home().join(".ferry"))
        .env_remove("FERRY_SSH_PASSWD")
        .env_remove("FERRY_CLUSTER")
        .args(args)
        .output()
        .unwrap();
    eprintln!(
        "$ (uid {USER}) ferry {}\n-- exit {:?}\n-- stderr:\n{}",
        args.join(" "),
        out.status.code(),
        stderr(&out)
    );
    out
}

/// `find` of `dir` on node 0: `path owner` per entry, sorted.
fn owners(tb: &Testbed, dir: &str) -> String {
    let script = r#"cd "$1" && find . -printf '%P %U:%G\n' | LC_ALL=C sort"#;
    tb.exec_ok(0, &["bash", "-c", script, "owners", dir])
        .unwrap()
}

#[test]
fn scp_copies_without_deleting_refuses_symlinks_and_writes_root_owned_files() {
    let tb = Testbed::up(TestbedConfig {
        nodes: 1,
        ..Default::default()
    })
    .expect("testbed up");
    let b = Bastion::new(&tb);
    let ip = tb.nodes()[0].ip.to_string();
    let pw = tb.password("root").unwrap().to_string();
    let out = b.ferry(&["agent", "install", "--masters", &ip, "-p", &pw]);
    assert!(out.status.success(), "install: {}", stderr(&out));

    let src_dir = tempfile::tempdir().unwrap();
    let src = src_dir.path().join("tree");
    write(&src, "app.conf", b"a: 1\n", 0o644);
    write(&src, "sub/key", b"secret\n", 0o600);
    let src_s = src.to_string_lossy().into_owned();

    // A copy keeps what the destination held; --delete mirrors.
    let keep = "mkdir -p /opt/safety && echo keep > /opt/safety/keep.txt";
    tb.exec_ok(0, &["bash", "-c", keep]).unwrap();
    let (out, ev) = b.ferry_json(&["scp", &src_s, "/opt/safety"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(counter(finished(&ev, &ip), "deleted"), 0);
    let listing = tb.exec_ok(0, &["ls", "/opt/safety"]).unwrap();
    assert_eq!(listing, "app.conf\nkeep.txt\nsub\n", "keep.txt kept");
    let (out, ev) = b.ferry_json(&["scp", "--delete", &src_s, "/opt/safety"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(counter(finished(&ev, &ip), "deleted"), 1);
    let listing = tb.exec_ok(0, &["ls", "/opt/safety"]).unwrap();
    assert_eq!(listing, "app.conf\nsub\n", "--delete removed keep.txt");

    // /root/link -> /root/victim: refused, nothing written, with or
    // without --delete.
    let setup = "mkdir -p /root/victim && echo keep > /root/victim/keep.txt && ln -sfn /root/victim /root/link";
    tb.exec_ok(0, &["bash", "-c", setup]).unwrap();
    for extra in [&[][..], &["--delete"][..]] {
        let mut args = vec!["scp"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&src_s, "/root/link"]);
        let out = b.ferry(&args);
        assert!(!out.status.success(), "a symlinked destination is refused");
        let err = stderr(&out);
        assert!(err.contains("/root/link is a symlink"), "{err}");
        assert!(err.contains("/root/victim"), "names the target: {err}");
        let victim = tb.exec_ok(0, &["ls", "-A", "/root/victim"]).unwrap();
        assert_eq!(victim, "keep.txt\n", "nothing written: {victim}");
    }

    // A uid-1000 bastion user with uid-1000 files: root-owned on the node.
    chown_tree(src_dir.path(), USER);
    chown_tree(b.home(), USER);
    std::fs::set_permissions(b.home(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = ferry_as_user(&tb, &b, &["scp", &src_s, "/opt/owners"]);
    assert!(out.status.success(), "scp as uid {USER}: {}", stderr(&out));
    let got = owners(&tb, "/opt/owners");
    assert_eq!(got, " 0:0\napp.conf 0:0\nsub 0:0\nsub/key 0:0\n");
    // Opt-in: the bastion's owners.
    let out = ferry_as_user(&tb, &b, &["scp", "--preserve-owner", &src_s, "/opt/owners"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = owners(&tb, "/opt/owners");
    assert_eq!(
        got,
        " 0:0\napp.conf 1000:1000\nsub 1000:1000\nsub/key 1000:1000\n"
    );

    // The chunk cache: private whatever the umask.
    let modes = r#"stat -c '%a' /var/lib/ferry/cache; find /var/lib/ferry/cache -mindepth 1 \( -type d ! -perm 700 -o -type f ! -perm 600 \) -printf 'open: %p %m\n'"#;
    let got = tb.exec_ok(0, &["bash", "-c", modes]).unwrap();
    assert_eq!(got, "700\n", "cache modes");
}

//! One lifecycle command per cluster at a time: while `ferry run` is busy
//! (its only host swallows the SSH handshake), a concurrent `ferry apply`
//! (and delete/reset/add) on the same cluster is refused at once, naming
//! the holder's pid and command, and writes nothing; another cluster is not
//! affected; the lock ends with its process (SIGKILL included).
//! `ferry agent rotate-certs` takes it too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod oci_support;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferry_coordinator::oci::Store;
use ferry_coordinator::state::FerryHome;
use oci_support::images::{Comp, put_image};

const K8S: &str = "example.com/ferry/kubernetes:v1.29.0";

fn ferry(home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    c.env("FERRY_HOME", home.join(".ferry"))
        .env("FERRY_DATA_ROOT", home.join("store"))
        .env("HOME", home)
        .env("FERRY_AGENT_BIN", env!("CARGO_BIN_EXE_ferry"))
        .env_remove("FERRY_SSH_PASSWD")
        .env_remove("FERRY_CLUSTER")
        .args(args);
    c
}

fn output(home: &Path, args: &[&str]) -> Output {
    ferry(home, args).output().unwrap()
}

/// Every file under `dir` with its length and mtime.
fn listing(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                let name = e.path().display().to_string();
                out.push((name, m.len(), m.modified().unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Starts `ferry run` against a host that accepts TCP and never answers.
fn busy_run(home: &Path, port: u16) -> Child {
    let host = format!("127.0.0.1:{port}");
    ferry(
        home,
        &[
            "run",
            K8S,
            "--masters",
            &host,
            "-p",
            "pw",
            "--connect-timeout",
            "60",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap()
}

#[test]
fn a_second_lifecycle_command_is_refused_naming_the_first() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let s = Store::open(&h.join("store")).unwrap();
    let labels = [("sealos.io.type", "rootfs"), ("version", "v1.29.0")];
    let d = put_image(
        &s,
        "amd64",
        Comp::Gzip,
        &[vec![("etc/x", b"x".to_vec())]],
        &labels,
    );
    s.tag(&K8S.parse().unwrap(), &d).unwrap();
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = blackhole.local_addr().unwrap().port();

    let mut first = busy_run(h, port);
    let lock = h.join(".ferry/default/lock");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&lock).is_ok_and(|t| t.contains("ferry run")) {
        assert!(Instant::now() < deadline, "ferry run never took the lock");
        assert!(first.try_wait().unwrap().is_none(), "ferry run ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    let state = h.join(".ferry/default");
    let before = listing(&state);
    let cf = h.join("Clusterfile");
    std::fs::write(&cf, "apiVersion: apps.sealos.io/v1beta1\nkind: Cluster\n").unwrap();
    let cf = cf.to_str().unwrap();
    let pid = first.id().to_string();
    for args in [
        &["apply", "-f", cf][..],
        &["delete", "--nodes", "127.0.0.1", "--force"],
        &["reset", "--force"],
    ] {
        let out = output(h, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{args:?} ran beside ferry run: {err}"
        );
        assert!(err.contains("cluster `default` is busy"), "{args:?}: {err}");
        assert!(
            err.contains(&format!("pid {pid} (`ferry run`)")),
            "{args:?}: {err}"
        );
        assert!(err.contains(&lock.display().to_string()), "{err}");
    }
    assert_eq!(
        listing(&state),
        before,
        "nothing written by the refused commands"
    );
    // Another cluster, and read-only commands, are not blocked.
    let out = output(h, &["-c", "other", "apply", "-f", cf, "--dry-run"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("busy"));
    let out = output(h, &["apply", "-f", cf, "--dry-run"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("busy"));

    // The lock ends with its holder, even killed.
    first.kill().unwrap();
    first.wait().unwrap();
    let c = FerryHome::resolve(Some(h.join(".ferry")))
        .unwrap()
        .cluster("default")
        .unwrap();
    drop(c.lock("test").expect("lock released by the kernel"));
    drop(blackhole);
}

#[test]
fn rotate_certs_waits_for_no_one_and_names_the_holder() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let c = FerryHome::resolve(Some(h.join(".ferry")))
        .unwrap()
        .cluster("default")
        .unwrap();
    let held = c.lock("ferry apply").unwrap();
    let state = h.join(".ferry/default");
    let before = listing(&state);
    for args in [
        &["agent", "rotate-certs"][..],
        &["agent", "rotate-certs", "--ca"],
    ] {
        let out = output(h, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} ran beside a holder: {err}");
        assert!(err.contains("cluster `default` is busy"), "{args:?}: {err}");
        let holder = format!("pid {} (`ferry apply`)", std::process::id());
        assert!(err.contains(&holder), "{args:?}: {err}");
    }
    assert_eq!(listing(&state), before, "nothing written by rotate-certs");
    drop(held);
    // Without a holder it runs (and fails on the empty inventory instead).
    let out = output(h, &["agent", "rotate-certs"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("busy"), "{err}");
}

//! Support for the `build_*` tests: a real `docker-registry` serving a
//! given storage directory, the ferry binary with its own store, fixture
//! contexts copied to temp dirs (a build writes `registry/` into its
//! context).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// `docker-registry serve` with `rootdirectory` = `root`; killed on drop.
pub struct Served {
    pub addr: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Served {
    pub fn start(root: &Path) -> Self {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} missing: run packaging/setup.sh (Debian package docker-registry)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let cfg = dir.path().join("config.yml");
        fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                root.display()
            ),
        )
        .unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let served = Served {
            addr,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut pause = Duration::from_millis(10);
        while TcpStream::connect(&served.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not listen on {}",
                served.addr
            );
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(200));
        }
        served
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `ferry` with its own home and store.
pub fn ferry(home: &Path, store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .env("FERRY_HOME", home)
        .env("FERRY_DATA_ROOT", store)
        .env("HOME", home)
        .env_remove("DOCKER_CONFIG")
        .env_remove("SOURCE_DATE_EPOCH")
        .args(args)
        .output()
        .expect("run ferry")
}

/// `ferry -o json build ...` that must succeed; returns the JSON result.
pub fn build_ok(home: &Path, store: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["-o", "json", "build"];
    all.extend_from_slice(args);
    let out = ferry(home, store, &all);
    assert!(
        out.status.success(),
        "ferry {all:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    // The result is the message of the last `image finished` event.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let event: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .rfind(|v| v["phase"] == "image" && v["kind"] == "finished")
        .unwrap_or_else(|| panic!("no image finished event in:\n{stdout}"));
    serde_json::from_str(event["message"].as_str().unwrap()).unwrap()
}

/// Copies a fixture tree (files, dirs, symlinks) to `dst`.
pub fn copy_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let (s, d) = (e.path(), dst.join(e.file_name()));
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            copy_tree(&s, &d);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&s).unwrap(), &d).unwrap();
        } else {
            fs::copy(&s, &d).unwrap();
        }
    }
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/build")
        .join(name)
}

/// Regular files under `dir`, relative, sorted.
pub fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

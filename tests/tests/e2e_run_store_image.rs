//! `ferry run NAME:TAG` of the fixture cluster image from a plain-HTTP
//! registry (sealos' `sealos run IMAGE`): the staged fixture tree is built
//! into one private store with `ferry build`, pushed to a real
//! `docker-registry` in the bastion namespace, and run by reference with a
//! second, empty store on 1 master + 1 worker: before the pull, `plan` and
//! `gen` say it is not in the local store (and pull nothing); `run` without
//! `--insecure` fails naming it; with `--insecure` it pulls over HTTP and
//! ends ClusterSuccess, every fixture check ok on both nodes; then `plan`
//! sizes the image from the store and a re-run (reusing the unpacked image)
//! is a no-op per the journal. Prints `RUN-MEASURE` lines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Bastion, fixture_log, json_lines, stage_fixture_image, stderr};
use ferry_tests::testbed::{Testbed, TestbedConfig};
use serde_json::Value;

const IMAGE: &str = "localhost/ferry-fixture/kubernetes:v1.27.7";

/// The registry's port inside the bastion namespace (its own loopback).
const REG_PORT: u16 = 5055;

/// A real `docker-registry` (plain HTTP) on 127.0.0.1:REG_PORT of the
/// bastion namespace; killed on drop.
struct Registry {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_registry(tb: &Testbed) -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{REG_PORT}\n",
            dir.path().join("storage").display()
        ),
    )
    .unwrap();
    let mut c = tb.bastion_command("/usr/bin/docker-registry");
    c.arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let reg = Registry {
        child: c.spawn().unwrap(),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = tb
            .bastion_command("bash")
            .args(["-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{REG_PORT}")])
            .stderr(Stdio::null())
            .status()
            .unwrap();
        if st.success() {
            return reg;
        }
        assert!(Instant::now() < deadline, "registry did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// ferry with the private store.
fn ferry(b: &Bastion, store: &Path, args: &[&str]) -> Output {
    b.ferry_store(store, args)
}

fn timings(ev: &[Value]) -> String {
    let e = ev
        .iter()
        .rev()
        .find(|e| {
            e["phase"] == "run"
                && e["node"] == ""
                && e["message"].as_str().unwrap_or("").starts_with("timings")
        })
        .unwrap();
    format!("total_ms={} {}", e["counters"]["duration_ms"], e["message"])
}

#[test]
fn run_store_image_by_reference_one_master_one_worker() {
    let tb = Testbed::up(TestbedConfig::nodes(2)).expect("testbed up");
    let b = Bastion::new(&tb);
    let ip: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let work = tempfile::tempdir().unwrap();
    let tree = stage_fixture_image(work.path());
    let built = b.home().join("built");
    let store = b.home().join("store");
    let _reg = start_registry(&tb);
    let remote = format!("127.0.0.1:{REG_PORT}/ferry-fixture/kubernetes:v1.27.7");

    let t = Instant::now();
    let out = ferry(&b, &built, &["build", "-t", IMAGE, tree.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    println!(
        "RUN-MEASURE store-image build_ms={}",
        t.elapsed().as_millis()
    );
    let out = ferry(&b, &built, &["tag", IMAGE, &remote]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ferry(&b, &built, &["push", "--insecure", &remote]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The staged tree is gone: only the registry can provide the image.
    std::fs::remove_dir_all(&tree).unwrap();

    // Dry runs before the pull: told to pull, nothing pulled or created.
    let pw = tb.password("root").unwrap();
    let cf = b.home().join("Clusterfile");
    std::fs::write(
        &cf,
        format!(
            "apiVersion: apps.sealos.io/v1beta1\nkind: Cluster\nmetadata: {{name: default}}\nspec:\n  hosts:\n  - ips: [{}]\n    roles: [master]\n  - ips: [{}]\n    roles: [node]\n  image: [\"{remote}\"]\n  ssh: {{user: root, passwd: {pw}}}\n",
            ip[0], ip[1]
        ),
    )
    .unwrap();
    let cf = cf.to_str().unwrap();
    let out = ferry(&b, &store, &["apply", "-f", cf, "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("not in the local store") && text.contains("ferry pull"),
        "{text}"
    );
    let out = ferry(&b, &store, &["--output", "json", "plan", "-f", cf]);
    let plan = &json_lines(&out.stdout)[0];
    assert_eq!(plan["notes"].as_array().unwrap().len(), 1, "{plan}");
    let out = ferry(&b, &store, &["gen", &remote, "--masters", &ip[0]]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not in the local store"),
        "{}",
        stderr(&out)
    );
    assert!(!store.exists(), "a dry run created or filled the store");

    let mut args = vec![
        "--output",
        "json",
        "run",
        &remote,
        "--masters",
        &ip[0],
        "--nodes",
        &ip[1],
        "-p",
        pw,
    ];
    // Plain HTTP needs --insecure: refused before any host is touched.
    let out = ferry(&b, &store, &args);
    assert!(!out.status.success());
    let err = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
    assert!(err.contains("--insecure"), "{err}");
    assert!(!b.home().join(".ferry/default/Clusterfile").exists());

    // --insecure-registry covers the registry it names, no other.
    let registry = remote.split('/').next().unwrap().to_string();
    let mut other = args.clone();
    other.extend(["--insecure-registry", "mirror.invalid:5000"]);
    let out = ferry(&b, &store, &other);
    assert!(
        !out.status.success(),
        "another registry's flag let it through"
    );
    assert!(!b.home().join(".ferry/default/Clusterfile").exists());
    args.extend(["--insecure-registry", registry.as_str()]);
    let out = ferry(&b, &store, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("warning: --insecure"),
        "the scoped flag needs no warning"
    );
    let ev = json_lines(&out.stdout);
    println!("RUN-MEASURE store-image 1+1 {}", timings(&ev));

    let state = b.home().join(".ferry/default");
    let text = std::fs::read_to_string(state.join("Clusterfile")).unwrap();
    assert!(text.contains("phase: ClusterSuccess"), "{text}");
    assert!(text.contains(&remote), "{text}");
    let cached: Vec<_> = std::fs::read_dir(b.home().join(".ferry/.image-cache"))
        .unwrap()
        .filter_map(Result::ok)
        .collect();
    assert_eq!(cached.len(), 1, "one unpacked image in the cache");

    for i in 0..2 {
        let log = fixture_log(&tb, i);
        assert!(!log.is_empty(), "node {i}: no fixture log");
        for l in &log {
            assert_eq!(l["ok"], true, "node {i}: fixture check failed: {l}");
        }
        let cmds: Vec<&str> = log.iter().filter_map(|l| l["command"].as_str()).collect();
        let want = if i == 0 { "init" } else { "join" };
        assert!(
            cmds.iter().any(|c| c.starts_with(want)),
            "node {i}: {cmds:?}"
        );
    }

    // Dry runs now read the image from the store (no note); the same
    // Clusterfile on the running cluster has nothing to move or run.
    let out = ferry(&b, &store, &["--output", "json", "plan", "-f", cf]);
    let plan = &json_lines(&out.stdout)[0];
    assert!(plan["notes"].as_array().unwrap().is_empty(), "{plan}");
    for h in plan["hosts"].as_array().unwrap() {
        assert_eq!(h["change"], "keep", "{plan}");
        assert_eq!(h["bytes"], 0, "{plan}");
        assert!(h["steps"].as_array().unwrap().is_empty(), "{plan}");
    }
    let out = ferry(&b, &store, &["gen", &remote, "--masters", &ip[0]]);
    assert!(out.status.success());
    assert!(!stderr(&out).contains("note"), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("kubernetesVersion: v1.27.7"), "{text}");
    // gen's kubeadm config takes the VIP the run would use (-e defaultVIP).
    assert!(text.contains("10.103.97.2/32"), "{text}");
    let out = ferry(
        &b,
        &store,
        &[
            "gen",
            &remote,
            "--masters",
            &ip[0],
            "-e",
            "defaultVIP=10.103.97.9",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("10.103.97.9/32"), "{text}");
    assert!(!text.contains("10.103.97.2/32"), "{text}");

    // A re-run reuses the unpacked image: same inputs, nothing redone.
    let out = ferry(&b, &store, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let ev = json_lines(&out.stdout);
    println!("RUN-MEASURE store-image 1+1 re-run {}", timings(&ev));
    let redone: Vec<&Value> = ev
        .iter()
        .filter(|e| e["phase"] == "run" && e["node"] != "" && e["kind"] == "started")
        .filter(|e| !e["message"].as_str().unwrap().starts_with("backup"))
        .collect();
    assert!(redone.is_empty(), "re-run redid: {redone:?}");

    // An image neither in the store nor a directory, from an unreachable
    // registry, fails before touching any host, naming the store.
    let out = ferry(
        &b,
        &store,
        &["run", "127.0.0.1:1/nope:v1", "--masters", &ip[0], "-p", pw],
    );
    assert!(!out.status.success());
    let err = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
    assert!(err.contains("image store"), "{err}");
}

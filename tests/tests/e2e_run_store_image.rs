//! `ferry run NAME:TAG` of the fixture cluster image from the local OCI
//! store (sealos' `sealos run IMAGE`): the staged fixture tree is built into
//! a private store (`FERRY_DATA_ROOT` under the test's HOME) with `ferry
//! build`, then run by reference on 1 master + 1 worker: ClusterSuccess in
//! the Clusterfile, every fixture check ok on both nodes, and a re-run
//! (reusing the unpacked image) is a no-op per the journal. Prints
//! `RUN-MEASURE` lines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Instant;

use common::{Bastion, fixture_log, json_lines, stage_fixture_image, stderr};
use ferry_tests::testbed::{Testbed, TestbedConfig};
use serde_json::Value;

const IMAGE: &str = "localhost/ferry-fixture/kubernetes:v1.27.7";

/// ferry with the private store.
fn ferry(b: &Bastion, store: &Path, args: &[&str]) -> Output {
    let out = b
        .command(args)
        .env("FERRY_DATA_ROOT", store)
        .output()
        .unwrap();
    eprintln!(
        "$ ferry {}\n-- exit {:?}\n-- stdout:\n{}\n-- stderr:\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
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
    let store = b.home().join("store");

    let t = Instant::now();
    let out = ferry(&b, &store, &["build", "-t", IMAGE, tree.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    println!(
        "RUN-MEASURE store-image build_ms={}",
        t.elapsed().as_millis()
    );
    let out = ferry(&b, &store, &["images"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ferry-fixture/kubernetes"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The staged tree is gone: only the store can provide the image.
    std::fs::remove_dir_all(&tree).unwrap();

    let pw = tb.password("root").unwrap();
    let args = [
        "--output",
        "json",
        "run",
        IMAGE,
        "--masters",
        &ip[0],
        "--nodes",
        &ip[1],
        "-p",
        pw,
    ];
    let out = ferry(&b, &store, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let ev = json_lines(&out.stdout);
    println!("RUN-MEASURE store-image 1+1 {}", timings(&ev));

    let state = b.home().join(".ferry/default");
    let cf = std::fs::read_to_string(state.join("Clusterfile")).unwrap();
    assert!(cf.contains("phase: ClusterSuccess"), "{cf}");
    assert!(cf.contains(IMAGE), "{cf}");
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

//! `ferry run`'s distribute step on the testbed (fixture image, 1 master +
//! 2 workers): the rootfs is relayed along a chain of agents; the agent of
//! the middle node is killed while its chunks arrive. That node alone fails
//! in step distribute, the others get the whole rootfs and are journaled
//! done; after the agent is back a plain re-run sends only what that node
//! still misses and finishes the cluster (mirroring the rootfs without
//! touching its `registry/`). `--topology star` feeds each
//! host from the bastion instead (one copy per host).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::agents::{cached_chunks, serving_agent_pid, wait_agent_answers};
use common::{Bastion, stage_fixture_image, stderr};
use ferry_tests::testbed::{Testbed, TestbedConfig};
use serde_json::Value;

const ROOTFS: &str = "/var/lib/ferry/data/default/rootfs";

/// Per-host run events of the distribute step of `kind` (not skipped).
fn distribute<'e>(ev: &'e [Value], host: &str, kind: &str) -> Vec<&'e Value> {
    ev.iter()
        .filter(|e| e["phase"] == "run" && e["node"] == host && e["kind"] == kind)
        .filter(|e| e["counters"]["skipped"].is_null())
        .filter(|e| {
            e["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("distribute")
        })
        .filter(|e| {
            !e["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("distribute: rootfs")
        })
        .collect()
}

fn skipped(ev: &[Value], host: &str) -> bool {
    ev.iter().any(|e| {
        e["node"] == host
            && e["counters"]["skipped"] == 1
            && e["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("distribute")
    })
}

/// The bastion-side counters of the rootfs relay.
fn rootfs_sender(ev: &[Value]) -> &Value {
    ev.iter()
        .find(|e| {
            e["node"] == ""
                && !e["counters"]["sender_content_bytes_sent"].is_null()
                && e["message"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("distribute: rootfs ")
        })
        .map(|e| &e["counters"])
        .expect("rootfs sender event")
}

fn sha_on(tb: &Testbed, i: usize, path: &str) -> String {
    let out = tb.exec_ok(i, &["sha256sum", path]).unwrap();
    out.split_whitespace().next().unwrap().to_string()
}

fn sha_local(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.split_whitespace().next().unwrap().to_string()
}

#[test]
fn agent_killed_mid_relay_fails_alone_and_a_rerun_completes_it() {
    let tb = Testbed::up(TestbedConfig::nodes(3)).expect("testbed up");
    let b = Bastion::new(&tb);
    let ip: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let work = tempfile::tempdir().unwrap();
    let image = stage_fixture_image(work.path());
    let pw = tb.password("root").unwrap();
    let nodes = format!("{},{}", ip[1], ip[2]);
    let args = [
        "--output",
        "json",
        "run",
        image.to_str().unwrap(),
        "--masters",
        &ip[0],
        "--nodes",
        &nodes,
        "-p",
        pw,
    ];

    // Node 1 (middle of the chain ip0 -> ip1 -> ip2) is slow, so it is
    // mid-transfer when its agent dies.
    tb.shape(1, 20).unwrap();
    let mut child = b
        .command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(&l.unwrap()).unwrap())
            .collect::<Vec<Value>>()
    });
    let end = Instant::now() + Duration::from_secs(180);
    while cached_chunks(&tb, 1) < 4 {
        assert!(Instant::now() < end, "node 1 never received rootfs chunks");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = serving_agent_pid(&tb, 1);
    tb.exec_ok(1, &["kill", "-KILL", &pid]).unwrap();
    let out = child.wait_with_output().unwrap();
    let ev = reader.join().unwrap();
    eprintln!("{}", stderr(&out));
    assert_eq!(out.status.code(), Some(1), "the run failed");
    let landed = cached_chunks(&tb, 1);

    let failed = distribute(&ev, &ip[1], "failed");
    assert_eq!(failed.len(), 1, "{ev:?}");
    let msg = failed[0]["message"].as_str().unwrap();
    println!("RUN-MEASURE distribute kill: node 1 reported: {msg}");
    assert!(msg.contains(&ip[1]) && msg.contains("next:"), "{msg}");
    let kubeadm = image.join("bin/kubeadm");
    let want = sha_local(&kubeadm);
    for i in [0, 2] {
        assert_eq!(distribute(&ev, &ip[i], "finished").len(), 1, "node {i}");
        assert_eq!(sha_on(&tb, i, &format!("{ROOTFS}/bin/kubeadm")), want);
    }
    let partial = tb
        .exec(1, &["test", "-e", &format!("{ROOTFS}/bin/kubeadm")])
        .unwrap();
    assert!(!partial.status.success(), "node 1 holds a committed rootfs");
    let later: Vec<&Value> = ev
        .iter()
        .filter(|e| e["kind"] == "started" && e["message"] == "bootstrap")
        .collect();
    assert!(
        later.is_empty(),
        "the run went on after distribute: {later:?}"
    );
    let journal = std::fs::read_to_string(b.home().join(".ferry/default/journal.jsonl")).unwrap();
    // Their trees and rendered templates are journaled done (per part).
    for i in [0, 2] {
        for part in ["rootfs", "render"] {
            assert!(
                journal.lines().any(|l| l.contains("\"distribute\"")
                    && l.contains(&format!("\"{}#{part}\"", ip[i]))
                    && l.contains("\"done\"")),
                "node {i} {part} not journaled done:\n{journal}"
            );
        }
    }
    assert!(
        !journal
            .lines()
            .any(|l| l.contains(&format!("\"{}#rootfs\"", ip[1])) && l.contains("\"done\"")),
        "node 1's rootfs journaled done:\n{journal}"
    );
    let full = rootfs_sender(&ev)["bytes_total"].as_u64().unwrap();

    // What the node holds under the rootfs: a stray file is mirrored away,
    // `registry/` (excluded from the rootfs tree) is left alone.
    let seed = format!(
        "mkdir -p {ROOTFS}/registry && echo keep > {ROOTFS}/registry/marker && echo x > {ROOTFS}/stray"
    );
    tb.exec_ok(1, &["sh", "-c", &seed]).unwrap();
    tb.shape(1, 0).unwrap();
    wait_agent_answers(&b, &ip[1], Duration::from_secs(30));
    let (out, ev) = b.ferry_json(&args[2..]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cf = std::fs::read_to_string(b.home().join(".ferry/default/Clusterfile")).unwrap();
    assert!(cf.contains("phase: ClusterSuccess"), "{cf}");
    assert!(skipped(&ev, &ip[0]) && skipped(&ev, &ip[2]), "{ev:?}");
    let f = distribute(&ev, &ip[1], "finished");
    assert_eq!(f.len(), 1, "{ev:?}");
    let sent = f[0]["counters"]["content_bytes_sent"].as_u64().unwrap();
    let s = rootfs_sender(&ev);
    assert_eq!(s["hosts"], 1, "{s}");
    assert_eq!(
        s["sender_content_bytes_sent"], sent,
        "only node 1's part: {s}"
    );
    assert!(sent > 0 && sent < full, "sent {sent} of {full}");
    println!(
        "RUN-MEASURE distribute kill: {landed} chunks landed before the kill; re-run sent {sent} of {full} rootfs bytes to node 1"
    );
    assert_eq!(sha_on(&tb, 1, &format!("{ROOTFS}/bin/kubeadm")), want);
    let kept = tb
        .exec_ok(1, &["cat", &format!("{ROOTFS}/registry/marker")])
        .unwrap();
    assert_eq!(kept.trim(), "keep");
    let stray = tb
        .exec(1, &["test", "-e", &format!("{ROOTFS}/stray")])
        .unwrap();
    assert!(!stray.status.success(), "the rootfs is mirrored");

    let out = b.ferry(&["reset", "-p", pw]);
    assert!(out.status.success(), "{}", common::stdout(&out));
}

#[test]
fn star_topology_sends_one_copy_per_host_from_the_bastion() {
    let tb = Testbed::up(TestbedConfig::nodes(2)).expect("testbed up");
    let b = Bastion::new(&tb);
    let ip: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let work = tempfile::tempdir().unwrap();
    let image = stage_fixture_image(work.path());
    let pw = tb.password("root").unwrap();
    let (out, ev) = b.ferry_json(&[
        "run",
        image.to_str().unwrap(),
        "--masters",
        &ip[0],
        "--nodes",
        &ip[1],
        "-p",
        pw,
        "--topology",
        "star",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = rootfs_sender(&ev);
    let worker = distribute(&ev, &ip[1], "finished")[0]["counters"]["content_bytes_sent"]
        .as_u64()
        .unwrap();
    assert!(worker > 1 << 20, "{worker}");
    assert_eq!(s["hosts"], 2, "{s}");
    assert_eq!(
        s["sender_content_bytes_sent"],
        2 * worker,
        "a copy per host: {s}"
    );
    assert_eq!(
        sha_on(&tb, 1, &format!("{ROOTFS}/bin/kubeadm")),
        sha_local(&image.join("bin/kubeadm"))
    );
}

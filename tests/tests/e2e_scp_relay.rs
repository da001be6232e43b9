//! End to end on the testbed: `ferry scp` through a relay of agents. The
//! bastion sends each chunk once into a chain (or tree); every node ends up
//! with the whole tree; an agent killed in the middle of the chain is
//! spliced out and fails alone, and a re-run completes it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::agents::{cached_chunks, serving_agent_pid};
use common::transfer::{counter, finished, noise};
use common::{Bastion, find, json_lines, stderr};
use ferry_tests::testbed::{Testbed, TestbedConfig};
use serde_json::Value;

const DST: &str = "/opt/ferry-relay-test";
const MIB: u64 = 1 << 20;

/// The run's summary event (node "").
fn summary(ev: &[Value]) -> &Value {
    ev.iter()
        .rev()
        .find(|e| e["node"] == "" && e["phase"] == "transfer" && e["kind"] != "progress")
        .map(|e| &e["counters"])
        .expect("summary event")
}

fn sha(tb: &Testbed, i: usize, path: &str) -> String {
    tb.exec_ok(i, &["sha256sum", path]).unwrap()
}

fn setup(nodes: usize) -> (Testbed, Bastion, Vec<String>) {
    let tb = Testbed::up(TestbedConfig {
        nodes,
        ..Default::default()
    })
    .expect("testbed up");
    let b = Bastion::new(&tb);
    let ip: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let pw = tb.password("root").unwrap().to_string();
    let out = b.ferry(&["agent", "install", "--masters", &ip.join(","), "-p", &pw]);
    assert!(out.status.success(), "install: {}", stderr(&out));
    (tb, b, ip)
}

#[test]
fn chain_and_tree_send_each_chunk_once_from_the_bastion() {
    let (tb, b, ip) = setup(4);
    let src_dir = tempfile::tempdir().unwrap();
    let src = src_dir.path().join("tree");
    std::fs::create_dir_all(src.join("bin")).unwrap();
    std::fs::write(src.join("bin/a"), noise(5 * MIB as usize + 77, 1)).unwrap();
    std::fs::write(src.join("bin/b"), noise(2 * MIB as usize, 2)).unwrap();
    let text: Vec<u8> = (0..3 * MIB as usize).map(|i| b"ferry "[i % 6]).collect();
    std::fs::write(src.join("text"), &text).unwrap();
    let src_s = src.to_string_lossy().into_owned();
    let content = 10 * MIB + 77;

    let (out, ev) = b.ferry_json(&["scp", "--topology", "chain", &src_s, DST]);
    assert!(out.status.success(), "{}", stderr(&out));
    for i in &ip {
        let c = finished(&ev, i);
        assert_eq!(counter(c, "content_bytes_sent"), content, "{i}: {c}");
        assert_eq!(counter(c, "files_sent"), 3, "{c}");
        assert!(counter(c, "wire_bytes_sent") < content, "compressed: {c}");
    }
    let s = summary(&ev);
    assert_eq!(
        counter(s, "sender_content_bytes_sent"),
        content,
        "the bastion sent each chunk once: {s}"
    );
    assert_eq!(counter(s, "sender_chunks_sent"), 6 + 2 + 3, "{s}");
    assert_eq!(counter(s, "relay_rounds"), 1, "{s}");
    let want = sha(&tb, 0, &format!("{DST}/bin/a"));
    for i in 1..4 {
        assert_eq!(sha(&tb, i, &format!("{DST}/bin/a")), want);
        assert_eq!(
            sha(&tb, i, &format!("{DST}/text")),
            sha(&tb, 0, &format!("{DST}/text"))
        );
    }

    // No-op over the chain: nothing leaves the bastion.
    let (out, ev) = b.ferry_json(&["scp", &src_s, DST]);
    assert!(out.status.success(), "{}", stderr(&out));
    for i in &ip {
        assert_eq!(counter(finished(&ev, i), "content_bytes_sent"), 0);
    }
    assert_eq!(counter(summary(&ev), "sender_chunks_sent"), 0);

    // One changed chunk through a binary tree; node 3 alone also lost a
    // file, so it needs one more chunk than the others.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(src.join("bin/a"))
            .unwrap();
        f.seek(SeekFrom::Start(3 * MIB + 5)).unwrap();
        f.write_all(b"changed").unwrap();
    }
    tb.exec_ok(
        3,
        &["rm", "-rf", "/var/lib/ferry/cache", &format!("{DST}/bin/b")],
    )
    .unwrap();
    let (out, ev) = b.ferry_json(&["scp", "--topology", "tree", &src_s, DST]);
    assert!(out.status.success(), "{}", stderr(&out));
    for i in &ip[..3] {
        assert_eq!(counter(finished(&ev, i), "content_bytes_sent"), MIB);
    }
    assert_eq!(
        counter(finished(&ev, &ip[3]), "content_bytes_sent"),
        3 * MIB
    );
    let s = summary(&ev);
    assert_eq!(counter(s, "sender_content_bytes_sent"), 3 * MIB, "{s}");
    let want = sha(&tb, 0, &format!("{DST}/bin/a"));
    for i in 1..4 {
        assert_eq!(sha(&tb, i, &format!("{DST}/bin/a")), want);
    }
    assert_eq!(
        sha(&tb, 3, &format!("{DST}/bin/b")),
        sha(&tb, 0, &format!("{DST}/bin/b"))
    );
}

#[test]
fn a_mid_chain_agent_killed_is_spliced_out_and_a_rerun_completes_it() {
    let (tb, b, ip) = setup(4);
    let src_dir = tempfile::tempdir().unwrap();
    let src = src_dir.path().join("tree");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("blob"), noise(24 * MIB as usize, 5)).unwrap();
    let src_s = src.to_string_lossy().into_owned();

    // Node 1 (second in the chain) is slow, so it is mid-transfer when
    // its agent dies; its successors are re-attached to node 0.
    tb.shape(1, 40).unwrap();
    let child = b
        .command(&[
            "--output",
            "json",
            "scp",
            "--topology",
            "chain",
            &src_s,
            DST,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    while cached_chunks(&tb, 1) < 4 {
        assert!(Instant::now() < end, "node 1 never received chunks");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = serving_agent_pid(&tb, 1);
    tb.exec_ok(1, &["kill", "-KILL", &pid]).unwrap();
    let out = child.wait_with_output().unwrap();
    eprintln!("{}", stderr(&out));
    assert_eq!(out.status.code(), Some(1), "one node failed");
    let ev = json_lines(&out.stdout);
    assert_eq!(find(&ev, &ip[1], "transfer", "failed").len(), 1);
    for i in [0, 2, 3] {
        let c = finished(&ev, &ip[i]);
        assert_eq!(counter(c, "content_bytes_sent"), 24 * MIB, "{c}");
        assert_eq!(
            sha(&tb, i, &format!("{DST}/blob")),
            sha(&tb, 0, &format!("{DST}/blob"))
        );
    }
    let landed = cached_chunks(&tb, 1);
    assert!((4..24).contains(&landed), "{landed} chunks landed");

    tb.shape(1, 0).unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while !b
        .ferry(&["agent", "status", "--ips", &ip[1]])
        .status
        .success()
    {
        assert!(Instant::now() < end, "agent on node 1 did not come back");
        std::thread::sleep(Duration::from_millis(300));
    }
    let (out, ev) = b.ferry_json(&["scp", &src_s, DST]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sent = counter(finished(&ev, &ip[1]), "content_bytes_sent");
    assert!(sent > 0 && sent <= (24 - landed) * MIB, "sent {sent}");
    assert_eq!(
        counter(summary(&ev), "sender_content_bytes_sent"),
        sent,
        "only node 1's missing part left the bastion"
    );
    assert_eq!(
        sha(&tb, 1, &format!("{DST}/blob")),
        sha(&tb, 0, &format!("{DST}/blob"))
    );
}

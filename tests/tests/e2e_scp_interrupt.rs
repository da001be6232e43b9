//! End to end on the testbed: the agent of one node is SIGKILLed in the
//! middle of `ferry scp`; the other nodes finish, that node alone fails, and
//! a re-run completes it without re-sending the chunks that had landed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::agents::{cached_chunks, serving_agent_pid, wait_agent_answers};
use common::transfer::noise;
use common::{Bastion, find, json_lines, stderr};
use ferry_tests::testbed::{Testbed, TestbedConfig};

const DST: &str = "/opt/ferry-scp-interrupt";
const MIB: usize = 1 << 20;

#[test]
fn a_node_killed_mid_transfer_fails_alone_and_a_rerun_resumes_it() {
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
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("blob"), noise(24 * MIB, 11)).unwrap();
    let src_s = src.to_string_lossy().into_owned();

    // Slow node 1 down so the transfer to it is still running when killed.
    tb.shape(1, 40).unwrap();
    let child = b
        .command(&["--output", "json", "scp", &src_s, DST])
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
    for i in [&ip[0], &ip[2]] {
        assert_eq!(
            find(&ev, i, "transfer", "finished").len(),
            1,
            "{i} finished"
        );
    }
    let landed = usize::try_from(cached_chunks(&tb, 1)).unwrap();
    assert!((4..24).contains(&landed), "{landed} chunks landed");

    // The supervisor restarts the agent; the re-run sends only the rest.
    wait_agent_answers(&b, &ip[1], Duration::from_secs(30));
    let (out, ev) = b.ferry_json(&["scp", &src_s, DST]);
    assert!(out.status.success(), "{}", stderr(&out));
    let c = &find(&ev, &ip[1], "transfer", "finished")[0]["counters"];
    let sent = c["content_bytes_sent"].as_u64().unwrap();
    assert!(
        sent <= ((24 - landed) * MIB) as u64,
        "re-sent landed chunks: {c}"
    );
    assert!(sent > 0, "{c}");
    for i in [&ip[0], &ip[2]] {
        let c = &find(&ev, i, "transfer", "finished")[0]["counters"];
        assert_eq!(c["content_bytes_sent"].as_u64(), Some(0), "{c}");
    }
    let want = tb
        .exec_ok(0, &["sha256sum", &format!("{DST}/blob")])
        .unwrap();
    let got = tb
        .exec_ok(1, &["sha256sum", &format!("{DST}/blob")])
        .unwrap();
    assert_eq!(got, want);
}

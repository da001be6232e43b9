//! End to end on the testbed: `ferry agent install` over real sshd, then
//! `exec`/`status` through the agents over mTLS.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use common::{Bastion, find, stderr, stdout};
use ferry_tests::testbed::{Testbed, TestbedConfig};

fn testbed(n: usize) -> Testbed {
    Testbed::up(TestbedConfig {
        nodes: n,
        ..Default::default()
    })
    .expect("testbed up")
}

fn ips(tb: &Testbed) -> Vec<String> {
    tb.nodes().iter().map(|n| n.ip.to_string()).collect()
}

#[test]
fn password_install_exec_then_key_install_uploads_nothing() {
    let tb = testbed(3);
    let b = Bastion::new(&tb);
    let ip = ips(&tb);
    let nodes = format!("{},{}", ip[1], ip[2]);
    let pw = tb.password("root").unwrap().to_string();

    let (out, ev) = b.ferry_json(&[
        "agent",
        "install",
        "--masters",
        &ip[0],
        "--nodes",
        &nodes,
        "-p",
        &pw,
    ]);
    assert!(out.status.success(), "install failed: {}", stderr(&out));
    for i in &ip {
        assert_eq!(find(&ev, i, "ready", "finished").len(), 1, "{i} not ready");
        let up = find(&ev, i, "upload", "finished");
        assert!(
            up[0]["counters"]["uploaded_bytes"].as_u64().unwrap() > 1_000_000,
            "binary uploaded to {i}"
        );
    }
    assert!(
        !stdout(&out).contains(&pw) && !stderr(&out).contains(&pw),
        "password leaked"
    );

    // exec: every node answers with its own hostname, prefixed by its address.
    let out = b.ferry(&["exec", "--", "hostname"]);
    assert!(out.status.success());
    let text = stdout(&out);
    for (i, n) in tb.nodes().iter().enumerate() {
        let want = format!("[{}] {}", ip[i], n.hostname);
        assert!(
            text.lines().any(|l| l == want),
            "missing `{want}` in:\n{text}"
        );
    }

    // Second install with key auth: agents are current, nothing is uploaded.
    let key = tb.key_path().to_string_lossy().into_owned();
    let (out, ev) = b.ferry_json(&[
        "agent",
        "install",
        "--masters",
        &ip[0],
        "--nodes",
        &nodes,
        "-i",
        &key,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    for i in &ip {
        let up = find(&ev, i, "upload", "finished");
        assert_eq!(up.len(), 1, "{i}");
        assert_eq!(up[0]["counters"]["uploaded_bytes"], 0, "{i} re-uploaded");
        assert_eq!(up[0]["counters"]["skipped"], 1);
        assert!(find(&ev, i, "start", "started").is_empty(), "{i} restarted");
    }

    // status works without SSH credentials and reports each node's facts.
    let (out, ev) = b.ferry_json(&["agent", "status"]);
    assert!(out.status.success());
    for (i, n) in tb.nodes().iter().enumerate() {
        let f = find(&ev, &ip[i], "facts", "finished");
        let facts: serde_json::Value =
            serde_json::from_str(f[0]["message"].as_str().unwrap()).unwrap();
        assert_eq!(facts["hostname"], n.hostname.as_str());
        assert_eq!(facts["supervisor"], "daemon");
        assert_eq!(facts["arch"], "amd64");
    }

    // Every stdout line of a whole run is one JSON event of schema v1.
    for e in &ev {
        assert_eq!(e["v"], 1);
        assert!(e["phase"].is_string() && e["kind"].is_string() && e["ts_ms"].is_i64());
    }

    // A failing command on one node: non-zero exit, per-node summary.
    let cmd = format!("test \"$(hostname)\" != {}", tb.nodes()[1].hostname);
    let out = b.ferry(&["exec", "--", "sh", "-c", &cmd]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("{:<22} FAILED  exit code 1", ip[1])),
        "{text}"
    );
    assert!(text.contains("2 of 3 nodes ok"), "{text}");
}

#[test]
fn a_client_from_another_cluster_ca_is_refused() {
    let tb = testbed(1);
    let b = Bastion::new(&tb);
    let ip = ips(&tb);
    let out = b.ferry(&[
        "agent",
        "install",
        "--masters",
        &ip[0],
        "-p",
        tb.password("root").unwrap(),
    ]);
    assert!(out.status.success());
    // Same inventory, but a different cluster state => a different agent CA.
    let other = b.home().join(".ferry/other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(
        b.home().join(".ferry/default/agents.json"),
        other.join("agents.json"),
    )
    .unwrap();
    let out = b.ferry(&["-c", "other", "exec", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out) + &stderr(&out);
    assert!(
        text.contains("cannot reach the agent") && text.contains(&ip[0]),
        "{text}"
    );
    // And the legitimate client still works.
    assert!(b.ferry(&["exec", "--", "true"]).status.success());
}

#[test]
fn upgrade_replaces_a_changed_binary_and_uninstall_removes_everything() {
    let tb = testbed(2);
    let b = Bastion::new(&tb);
    let ip = ips(&tb);
    let pw = tb.password("root").unwrap().to_string();
    let nodes = ip.join(",");
    assert!(
        b.ferry(&["agent", "install", "--nodes", &nodes, "-p", &pw])
            .status
            .success()
    );

    // A different build: same program, different bytes (trailing data is ignored by the loader).
    let mut bytes = std::fs::read(common::agent_bin()).unwrap();
    bytes.extend_from_slice(b"ferry-upgrade-test");
    let newer = b.home().join("ferry-agent-newer");
    std::fs::write(&newer, &bytes).unwrap();
    let newer_s = newer.to_string_lossy().into_owned();
    let (out, ev) = b.ferry_json(&["agent", "upgrade", "-p", &pw, "--agent-bin", &newer_s]);
    assert!(out.status.success(), "{}", stderr(&out));
    for i in &ip {
        let up = find(&ev, i, "upload", "finished");
        assert!(up[0]["counters"]["uploaded_bytes"].as_u64().unwrap() >= bytes.len() as u64);
    }
    let (_, ev) = b.ferry_json(&["agent", "status"]);
    let want = sha256_hex(&bytes);
    for i in &ip {
        let f = find(&ev, i, "facts", "finished");
        let facts: serde_json::Value =
            serde_json::from_str(f[0]["message"].as_str().unwrap()).unwrap();
        assert_eq!(facts["agent_sha256"], want.as_str());
    }

    // Node 0: sshd stopped, its agent answers → removed through the agent.
    // Node 1: agent killed, sshd up → removed over SSH.
    tb.exec_ok(0, &["sh", "-c", "kill $(cat /run/sshd.pid)"])
        .unwrap();
    tb.exec_ok(
        1,
        &[
            "/var/lib/ferry/agent/ferry-agent",
            "stop",
            "--pidfile",
            "/var/lib/ferry/agent/agent.pid",
        ],
    )
    .unwrap();
    let (out, ev) = b.ferry_json(&["agent", "uninstall", "-p", &pw]);
    assert!(out.status.success(), "{}", stderr(&out));
    for (i, ssh) in [(0, 0), (1, 1)] {
        let done = find(&ev, &ip[i], "uninstall", "finished");
        assert_eq!(done.len(), 1, "{ev:?}");
        assert_eq!(done[0]["counters"]["ssh"], ssh, "node {i}: {}", done[0]);
    }
    assert!(
        find(&ev, &ip[0], "connect", "started").is_empty(),
        "no SSH to node 0"
    );
    for i in 0..ip.len() {
        let o = tb
            .exec(
                i,
                &[
                    "sh",
                    "-c",
                    "ls /var/lib/ferry 2>&1; pgrep -f ferry-agent || true",
                ],
            )
            .unwrap();
        let s = String::from_utf8_lossy(&o.stdout);
        assert!(
            s.contains("No such file"),
            "node {i} still has files or processes: {s}"
        );
    }
    let out = b.ferry(&["agent", "status"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "no agents left in the inventory"
    );
}

fn sha256_hex(data: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(data)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

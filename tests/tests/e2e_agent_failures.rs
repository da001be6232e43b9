//! End to end on the testbed: sudo users, host-key changes, bad passwords,
//! unreachable hosts (each with its own message while others succeed), and
//! cancellation of a running command.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::time::{Duration, Instant};

use common::{Bastion, find, stderr, stdout};
use ferry_tests::testbed::{Testbed, TestbedConfig};

fn testbed(n: usize) -> Testbed {
    Testbed::up(TestbedConfig {
        nodes: n,
        ..Default::default()
    })
    .expect("testbed up")
}

fn ip(tb: &Testbed, i: usize) -> String {
    tb.nodes()[i].ip.to_string()
}

fn failure<'e>(ev: &'e [serde_json::Value], node: &str) -> &'e serde_json::Value {
    ev.iter()
        .find(|e| e["node"] == node && e["kind"] == "failed")
        .unwrap_or_else(|| panic!("no failed event for {node}"))
}

#[test]
fn non_root_sudo_users() {
    let tb = testbed(3);
    let b = Bastion::new(&tb);
    let key = tb.key_path().to_string_lossy().into_owned();
    // alice: key login, passwordless sudo.
    let out = b.ferry(&[
        "agent",
        "install",
        "--nodes",
        &ip(&tb, 0),
        "-u",
        "alice",
        "-i",
        &key,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // bob: password login, sudo asks for the same password.
    let bob_pw = tb.password("bob").unwrap().to_string();
    let out = b.ferry(&[
        "agent",
        "install",
        "--nodes",
        &ip(&tb, 1),
        "-u",
        "bob",
        "-p",
        &bob_pw,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains(&bob_pw) && !stderr(&out).contains(&bob_pw));
    // The agents run as root whoever installed them.
    let out = b.ferry(&["exec", "--", "id", "-u"]);
    assert!(out.status.success());
    assert_eq!(
        stdout(&out).lines().filter(|l| l.ends_with("] 0")).count(),
        2,
        "{}",
        stdout(&out)
    );

    // carol may log in but not sudo: a sudo-phase error naming the host and the fix.
    let carol_pw = tb.password("carol").unwrap().to_string();
    let (out, ev) = b.ferry_json(&[
        "agent",
        "install",
        "--nodes",
        &ip(&tb, 2),
        "-u",
        "carol",
        "-p",
        &carol_pw,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let f = failure(&ev, &ip(&tb, 2));
    assert_eq!(f["phase"], "sudo");
    let msg = f["message"].as_str().unwrap();
    assert!(msg.contains(&ip(&tb, 2)) && msg.contains("carol"), "{msg}");
    assert!(
        !msg.contains(&carol_pw) && !stderr(&out).contains(&carol_pw),
        "password leaked: {msg}"
    );
}

#[test]
fn changed_key_wrong_password_and_unreachable_fail_alone() {
    let tb = testbed(3);
    let b = Bastion::new(&tb);
    let pw = tb.password("root").unwrap().to_string();
    let all = format!("{},{},{}", ip(&tb, 0), ip(&tb, 1), ip(&tb, 2));
    assert!(
        b.ferry(&["agent", "install", "--nodes", &all, "-p", &pw])
            .status
            .success()
    );
    let known = std::fs::read_to_string(b.home().join(".ssh/known_hosts")).unwrap();
    assert_eq!(
        known.lines().count(),
        3,
        "accept-new recorded every key:\n{known}"
    );

    // node0 is reinstalled (new host key); node2 drops off the network.
    tb.rekey_node(0).unwrap();
    tb.set_link(2, false).unwrap();
    let (out, ev) = b.ferry_json(&[
        "agent",
        "install",
        "--force",
        "--nodes",
        &all,
        "-p",
        &pw,
        "--connect-timeout",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let changed = failure(&ev, &ip(&tb, 0));
    assert_eq!(changed["phase"], "connect");
    let m = changed["message"].as_str().unwrap().to_lowercase();
    assert!(
        m.contains("host key") && m.contains("changed") && m.contains("known_hosts"),
        "{m}"
    );
    let lost = failure(&ev, &ip(&tb, 2));
    assert_eq!(lost["phase"], "connect");
    let m = lost["message"].as_str().unwrap().to_lowercase();
    assert!(
        !m.contains("host key") && m.contains(&ip(&tb, 2)) && m.contains("within 3s"),
        "{m}"
    );
    assert_eq!(
        find(&ev, &ip(&tb, 1), "ready", "finished").len(),
        1,
        "the healthy node carried on"
    );
    // The changed key was not learnt.
    assert_eq!(
        std::fs::read_to_string(b.home().join(".ssh/known_hosts")).unwrap(),
        known
    );

    // A wrong password: authentication error, password never echoed.
    let wrong = "not-the-password-42";
    let (out, ev) = b.ferry_json(&["agent", "install", "--nodes", &ip(&tb, 1), "-p", wrong]);
    assert_eq!(out.status.code(), Some(1));
    let f = failure(&ev, &ip(&tb, 1));
    assert_eq!(f["phase"], "authenticate");
    assert!(!stdout(&out).contains(wrong) && !stderr(&out).contains(wrong));

    // strict refuses unknown keys.
    let out = b.ferry(&[
        "agent",
        "install",
        "--nodes",
        &ip(&tb, 1),
        "-p",
        &pw,
        "--host-key-policy",
        "strict",
        "--known-hosts",
        "/dev/null",
    ]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn killing_ferry_exec_kills_the_remote_process_group() {
    let tb = testbed(2);
    let b = Bastion::new(&tb);
    let nodes = format!("{},{}", ip(&tb, 0), ip(&tb, 1));
    assert!(
        b.ferry(&[
            "agent",
            "install",
            "--nodes",
            &nodes,
            "-p",
            tb.password("root").unwrap()
        ])
        .status
        .success()
    );

    // A command with a background child in the same process group.
    let mut child = b
        .command(&[
            "exec",
            "--",
            "sh",
            "-c",
            "sleep 4242 & echo started; sleep 4243",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let procs = |i: usize| {
        let o = tb
            .exec(i, &["sh", "-c", "pgrep -c -f '^sleep 424[23]$' || true"])
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse::<u32>()
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    assert!(
        ferry_tests::poll_until(deadline, || procs(0) == 2 && procs(1) == 2),
        "remote commands never started"
    );
    child.kill().unwrap(); // SIGKILL: no chance to cancel politely
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    assert!(
        ferry_tests::poll_until(deadline, || procs(0) == 0 && procs(1) == 0),
        "remote process groups survived the coordinator"
    );
}

#[test]
fn an_agent_that_cannot_start_is_reported_with_its_log() {
    let tb = testbed(2);
    let b = Bastion::new(&tb);
    // Something else already listens on the agent port of node0.
    tb.exec(
        0,
        &[
            "sh",
            "-c",
            "setsid python3 -m http.server 7443 >/dev/null 2>&1 < /dev/null &",
        ],
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    assert!(ferry_tests::poll_until(deadline, || {
        let o = tb
            .exec(
                0,
                &[
                    "sh",
                    "-c",
                    "cat /proc/net/tcp | grep -ci ':1D13 00000000:0000 0A'",
                ],
            )
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim() != "0"
    }));
    let nodes = format!("{},{}", ip(&tb, 0), ip(&tb, 1));
    let (out, ev) = b.ferry_json(&[
        "agent",
        "install",
        "--nodes",
        &nodes,
        "-p",
        tb.password("root").unwrap(),
        "--ready-timeout",
        "4",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let f = failure(&ev, &ip(&tb, 0));
    assert_eq!(f["phase"], "ready");
    let m = f["message"].as_str().unwrap();
    assert!(m.contains("did not answer") && m.contains("7443"), "{m}");
    assert!(
        m.to_lowercase().contains("address"),
        "log tail shows the bind error: {m}"
    );
    assert_eq!(find(&ev, &ip(&tb, 1), "ready", "finished").len(), 1);
}

#[test]
fn exec_carries_on_when_a_node_is_down() {
    let mut tb = testbed(3);
    let b = Bastion::new(&tb);
    let all = format!("{},{},{}", ip(&tb, 0), ip(&tb, 1), ip(&tb, 2));
    assert!(
        b.ferry(&[
            "agent",
            "install",
            "--nodes",
            &all,
            "-p",
            tb.password("root").unwrap()
        ])
        .status
        .success()
    );
    tb.kill_node(1).unwrap();
    let out = b.ferry(&["exec", "--", "hostname"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains(&format!("[{}] node1", ip(&tb, 0))), "{text}");
    assert!(text.contains(&format!("[{}] node3", ip(&tb, 2))), "{text}");
    assert!(text.contains("2 of 3 nodes ok"), "{text}");
    let down = text
        .lines()
        .find(|l| l.contains(&ip(&tb, 1)) && l.contains("FAILED"))
        .unwrap();
    assert!(down.contains("cannot reach the agent"), "{down}");
}

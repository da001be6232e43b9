//! kubeadm's state outliving ferry's journal, on the fixture cluster image
//! (strict kubeadm/kubectl TEST FIXTURES):
//! - every bootstrap token deleted and the kubeadm-certs Secret gone (what
//!   a day, or two hours, does to a cluster): `ferry add --nodes` and
//!   `ferry add --masters` still join, with a fresh token per batch and
//!   the certificates re-uploaded, and no token or certificate key in
//!   ferry's output or events;
//! - the journal losing its init/join records after they ran: a re-run
//!   finds them done on the nodes and never runs `kubeadm init`/`join`
//!   again (the fixture, like kubeadm, would refuse);
//! - images listed by `kubeadm config images list` before init/join, the
//!   pre-pull skipped where no `crictl` is on the node's PATH.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use common::{Bastion, fixture_log, stage_fixture_image, stderr};
use ferry_tests::testbed::{Testbed, TestbedConfig};
use serde_json::Value;

/// How many ok records of `command` node `i`'s fixture log holds.
fn count(tb: &Testbed, i: usize, command: &str) -> usize {
    fixture_log(tb, i)
        .iter()
        .filter(|l| l["command"] == command && l["ok"] == true)
        .count()
}

fn progress<'e>(ev: &'e [Value], host: &str, needle: &str) -> Vec<&'e Value> {
    ev.iter()
        .filter(|e| e["node"] == host && e["kind"] == "progress")
        .filter(|e| e["message"].as_str().unwrap_or("").contains(needle))
        .collect()
}

/// Everything ferry printed and recorded for the cluster.
fn ferry_text(b: &Bastion, outs: &[&std::process::Output]) -> String {
    let mut text = std::fs::read_to_string(b.home().join(".ferry/default/events.jsonl")).unwrap();
    text.push_str(&std::fs::read_to_string(b.home().join(".ferry/default/journal.jsonl")).unwrap());
    for o in outs {
        text.push_str(&String::from_utf8_lossy(&o.stdout));
        text.push_str(&String::from_utf8_lossy(&o.stderr));
    }
    text
}

#[test]
fn add_after_tokens_and_certs_secret_expired() {
    let tb = Testbed::up(TestbedConfig::nodes(3)).expect("testbed up");
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
        "-p",
        pw,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count(&tb, 0, "config images list"), 1, "listed before init");
    assert_eq!(
        progress(&ev, &ip[0], "pre-pull skipped").len(),
        1,
        "no crictl"
    );

    // A day and two hours later: no token, no kubeadm-certs Secret.
    tb.exec_ok(
        0,
        &[
            "sh",
            "-c",
            "for t in $(cut -d. -f1 /var/lib/kubeadm-fixture/tokens); do kubeadm token delete $t; done; rm /var/lib/kubeadm-fixture/kubeadm-certs.json",
        ],
    )
    .unwrap();
    let live = tb
        .exec_ok(0, &["cat", "/var/lib/kubeadm-fixture/tokens"])
        .unwrap();
    assert!(live.trim().is_empty(), "tokens left: {live}");

    let (out_w, ev) = b.ferry_json(&["add", "--nodes", &ip[1], "-p", pw]);
    assert!(out_w.status.success(), "{}", stderr(&out_w));
    assert_eq!(count(&tb, 1, "join"), 1);
    assert_eq!(count(&tb, 0, "token create"), 1, "one token for the batch");
    assert_eq!(progress(&ev, &ip[0], "bootstrap token").len(), 1);

    let (out_m, _) = b.ferry_json(&["add", "--masters", &ip[2], "-p", pw]);
    assert!(out_m.status.success(), "{}", stderr(&out_m));
    let join = fixture_log(&tb, 2)
        .into_iter()
        .find(|l| l["command"] == "join" && l["ok"] == true)
        .expect("control-plane join");
    assert_eq!(join["role"], "control-plane", "{join}");
    assert_eq!(count(&tb, 0, "init phase upload-certs"), 1);
    assert_eq!(count(&tb, 0, "token create"), 2);

    // The secrets ferry made never reached its output, events or journal.
    let text = ferry_text(&b, &[&out_w, &out_m]);
    let tokens = tb
        .exec_ok(0, &["cat", "/var/lib/kubeadm-fixture/tokens"])
        .unwrap();
    let secrets: Vec<&str> = tokens
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.split('.').nth(1))
        .collect();
    assert_eq!(secrets.len(), 2, "{tokens}");
    let key = tb
        .exec_ok(
            2,
            &[
                "sh",
                "-c",
                "awk '/certificateKey:/ {print $2}' /var/lib/ferry/data/default/kubeadm/kubeadm-join.yaml",
            ],
        )
        .unwrap();
    assert_eq!(key.trim().len(), 64, "{key}");
    for s in secrets.iter().copied().chain([key.trim()]) {
        assert!(!text.contains(s), "a secret leaked into ferry's output");
    }
    let out = b.ferry(&["reset", "-p", pw]);
    assert!(out.status.success(), "{}", common::stdout(&out));
}

#[test]
fn rerun_after_journal_lost_init_and_join_records() {
    let tb = Testbed::up(TestbedConfig::nodes(2)).expect("testbed up");
    let b = Bastion::new(&tb);
    let ip: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let work = tempfile::tempdir().unwrap();
    let image = stage_fixture_image(work.path());
    let pw = tb.password("root").unwrap();
    let args = [
        "run",
        image.to_str().unwrap(),
        "--masters",
        &ip[0],
        "--nodes",
        &ip[1],
        "-p",
        pw,
    ];
    // A crictl stand-in on the worker records what ferry pre-pulls.
    tb.exec_ok(
        1,
        &[
            "sh",
            "-c",
            "printf '#!/bin/sh\\necho \"$*\" >> /var/log/crictl-stand-in.log\\n' > /usr/bin/crictl && chmod +x /usr/bin/crictl",
        ],
    )
    .unwrap();
    let (out, ev) = b.ferry_json(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count(&tb, 0, "init"), 1);
    assert_eq!(count(&tb, 1, "join"), 1);
    let pulls = tb
        .exec_ok(1, &["cat", "/var/log/crictl-stand-in.log"])
        .unwrap();
    let pulled: Vec<&str> = pulls.lines().filter(|l| l.starts_with("pull ")).collect();
    assert_eq!(
        pulled.len(),
        3,
        "worker: kube-proxy, coredns, pause: {pulls}"
    );
    for name in ["/kube-proxy:", "/coredns:", "/pause:"] {
        assert!(pulled.iter().any(|l| l.contains(name)), "{name} in {pulls}");
    }
    assert_eq!(progress(&ev, &ip[1], "pre-pulled 3 images").len(), 1);
    assert_eq!(progress(&ev, &ip[0], "pre-pull skipped").len(), 1);

    // kubeadm ran, the journal never heard (killed before the record).
    let journal = b.home().join(".ferry/default/journal.jsonl");
    let kept: Vec<String> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .filter(|l| {
            !l.contains("\"step\":\"init-master\"") && !l.contains("\"step\":\"join-worker\"")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&journal, kept.concat()).unwrap();

    let (out, ev) = b.ferry_json(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let cf = std::fs::read_to_string(b.home().join(".ferry/default/Clusterfile")).unwrap();
    assert!(cf.contains("phase: ClusterSuccess"), "{cf}");
    for (i, cmd) in [(0, "init"), (1, "join")] {
        let runs: Vec<Value> = fixture_log(&tb, i)
            .into_iter()
            .filter(|l| l["command"] == cmd)
            .collect();
        assert_eq!(runs.len(), 1, "node {i}: kubeadm {cmd} ran again: {runs:?}");
        assert_eq!(
            progress(&ev, &ip[i], "already done on the node").len(),
            1,
            "node {i} says why"
        );
    }
    // Journaled done this time: a third run skips both without asking.
    let (out, ev) = b.ferry_json(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(progress(&ev, &ip[0], "already done").is_empty());
    let out = b.ferry(&["reset", "-p", pw]);
    assert!(out.status.success(), "{}", common::stdout(&out));
}

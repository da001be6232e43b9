//! SSH only where it is needed, and a cluster that remembers how it was
//! reached, on the testbed with the fixture image (strict kubeadm/kubelet
//! TEST FIXTURES; no container runtime in that tier).
//!
//! `run` 1 master + 2 workers with `--known-hosts <own file>`; then every
//! host key in `~/.ssh/known_hosts` is made stale (a plain command reading
//! that file would fail with "host key changed") and sshd is stopped on
//! all three nodes. Through the running agents alone:
//! - `plan` of the cluster with a new host says SSH for it only, and why;
//! - `add --nodes <new>` succeeds; SSH is opened to the new host only (the
//!   Connect events' `ssh` counter), against the remembered known_hosts,
//!   which gains the new host's key;
//! - `apply -e` with an env change succeeds without SSH anywhere;
//! - `delete --nodes <one>` succeeds without SSH;
//! - `status` reports every node through its agent, and exits non-zero
//!   naming what is unhealthy (this tier has no container runtime);
//! - `reset` removes every agent through the agent itself (files, process
//!   and inventory record gone), no SSH connection at all.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Bastion, stderr, stdout};
use ferry_tests::testbed::{Testbed, TestbedConfig};
use serde_json::Value;

/// Host (ip) → the `ssh` counter of its Connect `finished` event.
fn ssh_use(events: &[Value]) -> BTreeMap<String, u64> {
    events
        .iter()
        .filter(|e| e["phase"] == "connect" && e["kind"] == "finished")
        .map(|e| {
            let node = e["node"].as_str().unwrap();
            let ip = node.rsplit_once(':').map_or(node, |(ip, _)| ip);
            (ip.to_string(), e["counters"]["ssh"].as_u64().unwrap_or(99))
        })
        .collect()
}

fn stop_sshd(tb: &Testbed, i: usize) {
    tb.exec_ok(i, &["sh", "-c", "kill $(cat /run/sshd.pid)"])
        .unwrap();
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let l = tb.exec_ok(i, &["ss", "-Hltn", "sport = :22"]).unwrap();
        if l.trim().is_empty() {
            return;
        }
        assert!(Instant::now() < end, "sshd of node {i} still listens: {l}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `~/.ssh/known_hosts` of the bastion with a wrong key for every host.
fn stale_default_known_hosts(home: &Path, ips: &[String]) {
    let dir = home.join(".ssh");
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("other");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let public: Vec<&str> = public.split_whitespace().take(2).collect();
    let lines: String = ips
        .iter()
        .map(|ip| format!("{ip} {}\n", public.join(" ")))
        .collect();
    std::fs::write(dir.join("known_hosts"), lines).unwrap();
}

#[test]
fn repeat_operations_go_through_the_agents() {
    let tb = Testbed::up(TestbedConfig::nodes(4)).expect("testbed up");
    let b = Bastion::new(&tb);
    let work = tempfile::tempdir().unwrap();
    let ip: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let pw = tb.password("root").unwrap();
    let image = common::stage_fixture_image(work.path());
    let kh = work.path().join("cluster_known_hosts");
    let workers = format!("{},{}", ip[1], ip[2]);
    let out = b.ferry(&[
        "run",
        image.to_str().unwrap(),
        "--masters",
        &ip[0],
        "--nodes",
        &workers,
        "-p",
        pw,
        "--known-hosts",
        kh.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let state = b.home().join(".ferry/default");
    let settings: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("ssh.json")).unwrap()).unwrap();
    assert_eq!(settings["known_hosts"], kh.to_str().unwrap(), "{settings}");
    assert_eq!(settings["host_key_policy"], "accept-new", "{settings}");
    let recorded = std::fs::read_to_string(&kh).unwrap();
    assert!(!recorded.contains(&ip[3]), "{recorded}");

    stale_default_known_hosts(b.home(), &ip);
    for i in 0..3 {
        stop_sshd(&tb, i);
    }

    // plan: says which hosts a run would reach over SSH, and why.
    let planned = work.path().join("Clusterfile.plan");
    let text = std::fs::read_to_string(state.join("Clusterfile")).unwrap();
    let mut lines = Vec::new();
    for l in text.lines() {
        lines.push(l.to_string());
        if l.contains(&ip[2]) {
            lines.push(l.replace(&ip[2], &ip[3]));
        }
    }
    std::fs::write(&planned, lines.join("\n") + "\n").unwrap();
    let (out, ev) = b.ferry_json(&["plan", "-f", planned.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = ev.iter().find(|v| v.get("hosts").is_some()).expect("plan");
    let reach: BTreeMap<String, (bool, String)> = plan["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let host = h["host"].as_str().unwrap().to_string();
            let r = &h["reach"];
            (
                host,
                (
                    r["ssh"].as_bool().unwrap(),
                    r["why"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect();
    assert_eq!(reach.len(), 4, "{plan}");
    for (host, (ssh, why)) in &reach {
        if host == &ip[3] {
            assert!(*ssh && why.contains("no agent recorded"), "{host}: {why}");
        } else {
            assert!(!*ssh && why.contains("answers over mTLS"), "{host}: {why}");
        }
    }
    let out = b.ferry(&["plan", "-f", planned.to_str().unwrap()]);
    let human = stdout(&out);
    assert!(human.contains("SSH is needed for 1 of 4 hosts"), "{human}");
    assert!(
        human.contains("via SSH (no agent recorded for this host)"),
        "{human}"
    );
    assert_eq!(
        std::fs::read_to_string(state.join("Clusterfile")).unwrap(),
        text,
        "plan changes nothing"
    );

    // add: SSH to the new host only, checked against the remembered file.
    let t = Instant::now();
    let (out, ev) = b.ferry_json(&["add", "--nodes", &ip[3], "-p", pw]);
    assert!(out.status.success(), "{}", stderr(&out));
    println!(
        "NOSSH-MEASURE add with sshd down on the cluster: {} ms",
        t.elapsed().as_millis()
    );
    let used = ssh_use(&ev);
    let want: BTreeMap<String, u64> = [(&ip[0], 0), (&ip[1], 0), (&ip[2], 0), (&ip[3], 1)]
        .into_iter()
        .map(|(i, n)| (i.clone(), n))
        .collect();
    assert_eq!(used, want, "SSH only for the new host");
    let reason = ev
        .iter()
        .find(|e| e["phase"] == "connect" && e["kind"] == "finished" && e["counters"]["ssh"] == 1)
        .unwrap();
    assert!(
        reason["message"]
            .as_str()
            .unwrap()
            .contains("no agent recorded"),
        "{reason}"
    );
    let recorded = std::fs::read_to_string(&kh).unwrap();
    assert!(
        recorded.contains(&ip[3]),
        "the new host's key went to the remembered file"
    );

    // apply with an env change: agents only.
    let cf = work.path().join("Clusterfile");
    std::fs::copy(state.join("Clusterfile"), &cf).unwrap();
    let (out, ev) = b.ferry_json(&["apply", "-f", cf.to_str().unwrap(), "-e", "FERRY_NO_SSH=1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let used = ssh_use(&ev);
    assert_eq!(used.len(), 4, "{used:?}");
    assert!(used.values().all(|n| *n == 0), "no SSH on apply: {used:?}");
    let stored = std::fs::read_to_string(state.join("Clusterfile")).unwrap();
    assert!(stored.contains("FERRY_NO_SSH=1"), "{stored}");

    // delete: agents only.
    let (out, ev) = b.ferry_json(&["delete", "--nodes", &ip[2]]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(ssh_use(&ev).values().all(|n| *n == 0), "no SSH on delete");
    assert!(
        !ev.iter()
            .any(|e| e["phase"] == "connect" && e["counters"]["ssh"] == 1)
    );

    // status: every remaining node through its agent.
    let (out, ev) = b.ferry_json(&["status"]);
    let nodes: BTreeMap<String, Value> = ev
        .iter()
        .filter(|e| e["phase"] == "status")
        .map(|e| {
            let node = e["node"].as_str().unwrap();
            let ip = node.rsplit_once(':').map_or(node, |(ip, _)| ip).to_string();
            (
                ip,
                serde_json::from_str(e["message"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    let keys: Vec<&String> = nodes.keys().collect();
    let mut want = vec![&ip[0], &ip[1], &ip[3]];
    want.sort();
    assert_eq!(keys, want, "the deleted node is gone from status");
    for (n, s) in &nodes {
        assert_eq!(s["agent"]["state"], "ok", "{n}: {s}");
        assert_eq!(s["registry"]["state"], "ok", "{n}: {s}");
        assert_eq!(s["kubelet"]["state"], "ok", "{n}: {s}");
        // The fixture tier has no container runtime: reported, not hidden.
        assert_eq!(s["runtime"]["state"], "failed", "{n}: {s}");
        assert_eq!(s["healthy"], false, "{n}: {s}");
    }
    assert_eq!(
        nodes[&ip[0]]["certificates"]["state"], "ok",
        "{}",
        nodes[&ip[0]]
    );
    assert_eq!(nodes[&ip[1]]["certificates"]["state"], "skipped");
    assert!(
        !out.status.success(),
        "unhealthy nodes give a non-zero exit"
    );
    let out = b.ferry(&["status"]);
    assert!(
        stdout(&out).contains("runtime: no runtime socket"),
        "{}",
        stdout(&out)
    );

    // A Clusterfile host ferry has no agent record of is listed, unhealthy.
    let inv_path = state.join("agents.json");
    let saved = std::fs::read_to_string(&inv_path).unwrap();
    let mut inv: Value = serde_json::from_str(&saved).unwrap();
    inv["nodes"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["addr"]["ip"] != ip[3].as_str());
    std::fs::write(&inv_path, inv.to_string()).unwrap();
    let (_, ev) = b.ferry_json(&["status"]);
    let row = ev
        .iter()
        .find(|e| e["phase"] == "status" && e["node"].as_str().unwrap().starts_with(&ip[3]))
        .expect("the unrecorded host has a row");
    let doc: Value = serde_json::from_str(row["message"].as_str().unwrap()).unwrap();
    assert_eq!(doc["agent"]["state"], "failed", "{doc}");
    assert!(
        doc["agent"]["detail"]
            .as_str()
            .unwrap()
            .contains("no agent recorded"),
        "{doc}"
    );
    std::fs::write(&inv_path, saved).unwrap();

    // reset: every agent removes itself, no SSH anywhere.
    stop_sshd(&tb, 3);
    let (out, ev) = b.ferry_json(&["reset", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let removed: Vec<&Value> = ev
        .iter()
        .filter(|e| e["phase"] == "uninstall" && e["kind"] == "finished")
        .collect();
    assert_eq!(removed.len(), 3, "{removed:?}");
    assert!(
        removed.iter().all(|e| e["counters"]["ssh"] == 0),
        "{removed:?}"
    );
    assert!(
        !ev.iter().any(|e| e["phase"] == "connect"),
        "no SSH connection on reset"
    );
    for i in [0, 1, 3] {
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            let left = tb
                .exec_ok(i, &["sh", "-c", "ls -d /var/lib/ferry/agent /var/lib/ferry/cache 2>/dev/null; pgrep -x ferry-agent; true"])
                .unwrap();
            if left.trim().is_empty() {
                break;
            }
            assert!(Instant::now() < end, "node {i} keeps: {left}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let inv: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("agents.json")).unwrap()).unwrap();
    let left: Vec<String> = inv["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["addr"]["ip"].to_string())
        .collect();
    assert_eq!(
        left,
        [format!("\"{}\"", ip[2])],
        "only the deleted host's agent is left in the inventory"
    );
}

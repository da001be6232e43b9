//! `ferry run` of the fixture cluster image (`packaging/fixtures/`: the
//! labring/kubernetes layout with the real registry and the strict
//! kubeadm/kubelet TEST FIXTURES) on the testbed: 1 master + 2 workers.
//! Every fixture check passes (their JSON log on each node), the registry
//! answers as `sealos.hub:5000` from every node (401 without credentials,
//! 200 with registryUsername/registryPassword), workers joined through the
//! VIP, the Clusterfile says ClusterSuccess, exec'd commands get HOME=/root;
//! a re-run with another env skips bootstrap, one with a changed rootfs runs
//! it again (and check.sh refuses the live node); then `reset` leaves no
//! ferry files, hosts entries or listening ports. Prints `RUN-MEASURE` lines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use common::{Bastion, fixture_log, stage_fixture_image, stderr, timings};
use ferry_tests::testbed::{Testbed, TestbedConfig};
use serde_json::Value;

/// The distribute step's bastion-side counters for one tree (`rootfs`...).
fn sender<'e>(ev: &'e [Value], tree: &str) -> Option<&'e Value> {
    ev.iter()
        .find(|e| {
            e["phase"] == "run"
                && e["node"] == ""
                && !e["counters"]["sender_content_bytes_sent"].is_null()
                && e["message"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with(&format!("distribute: {tree} "))
        })
        .map(|e| &e["counters"])
}

/// Content bytes the distribute step delivered to `host` (its final event).
fn distributed(ev: &[Value], host: &str) -> u64 {
    let f: Vec<&Value> = ev
        .iter()
        .filter(|e| e["phase"] == "run" && e["node"] == host && e["kind"] == "finished")
        .filter(|e| e["message"] == "distribute")
        .collect();
    assert_eq!(f.len(), 1, "one distribute finished event for {host}");
    f[0]["counters"]["content_bytes_sent"].as_u64().unwrap()
}

#[test]
fn run_fixture_image_one_master_two_workers_then_reset() {
    let tb = Testbed::up(TestbedConfig::nodes(3)).expect("testbed up");
    let b = Bastion::new(&tb);
    let ip: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let work = tempfile::tempdir().unwrap();
    let image = stage_fixture_image(work.path());
    let image = image.to_str().unwrap();
    let pw = tb.password("root").unwrap();
    let nodes = format!("{},{}", ip[1], ip[2]);
    let args = [
        "run",
        image,
        "--masters",
        &ip[0],
        "--nodes",
        &nodes,
        "-p",
        pw,
    ];

    let (out, ev) = b.ferry_json(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    println!("RUN-MEASURE fixture 1+2 {}", timings(&ev));

    // The rootfs left the bastion ONCE and was relayed along the chain:
    // each worker (rootfs only) received as many content bytes as the
    // bastion sent for all three hosts together.
    let s = sender(&ev, "rootfs").expect("rootfs sender event");
    let sent = s["sender_content_bytes_sent"].as_u64().unwrap();
    assert_eq!(s["hosts"], 3, "{s}");
    assert!(sent > 1 << 20, "rootfs content: {s}");
    for h in [&ip[1], &ip[2]] {
        assert_eq!(distributed(&ev, h), sent, "{h} got one full copy; {s}");
    }
    assert!(distributed(&ev, &ip[0]) >= sent);
    println!(
        "RUN-MEASURE fixture 1+2 distribute rootfs: bastion sent {sent} content bytes ({} on the wire) for 3 hosts, {} rounds",
        s["sender_wire_bytes_sent"], s["relay_rounds"]
    );

    let state = b.home().join(".ferry/default");
    let cf = std::fs::read_to_string(state.join("Clusterfile")).unwrap();
    assert!(cf.contains("phase: ClusterSuccess"), "{cf}");

    for i in 0..3 {
        let log = fixture_log(&tb, i);
        assert!(!log.is_empty(), "node {i}: no fixture log");
        for l in &log {
            assert_eq!(l["ok"], true, "node {i}: fixture check failed: {l}");
        }
        let cmds: Vec<&str> = log.iter().filter_map(|l| l["command"].as_str()).collect();
        if i == 0 {
            assert!(cmds.iter().any(|c| c.starts_with("init")), "{cmds:?}");
        } else {
            let join = log
                .iter()
                .find(|l| l["command"].as_str().unwrap_or("").starts_with("join"))
                .unwrap();
            assert_eq!(
                join["endpoint"], "10.103.97.2:6443",
                "worker {i} joined around the VIP: {join}"
            );
        }
        // The pipeline wrote etc/registry_htpasswd from the image's
        // registryUsername/registryPassword: auth is on and they pass.
        let code = |extra: &[&str]| {
            let mut argv = vec!["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"];
            argv.extend_from_slice(extra);
            argv.push("http://sealos.hub:5000/v2/");
            String::from_utf8_lossy(&tb.exec(i, &argv).unwrap().stdout).to_string()
        };
        assert_eq!(
            code(&[]),
            "401",
            "sealos.hub:5000 without credentials, node {i}"
        );
        assert_eq!(
            code(&["-u", "admin:passw0rd"]),
            "200",
            "sealos.hub:5000 as registryUsername/registryPassword, node {i}"
        );
    }
    let htpasswd = tb
        .exec_ok(0, &["cat", "/etc/registry/registry_htpasswd"])
        .unwrap();
    assert!(htpasswd.starts_with("admin:$2"), "bcrypt line: {htpasswd}");
    assert!(!htpasswd.contains("passw0rd"));
    let events = std::fs::read_to_string(state.join("events.jsonl")).unwrap();
    assert!(
        !events.contains("passw0rd"),
        "registryPassword in events.jsonl"
    );

    // Guest commands find root's ~/.kube: the agent (started by `ferry
    // agent install`, supervised, no systemd here) gives commands a HOME.
    let out = b.ferry(&["exec", "--ips", &ip[1], "--", "sh", "-c", "echo \"$HOME\""]);
    assert!(out.status.success(), "{}", stderr(&out));
    let home = common::stdout(&out);
    assert!(
        home.lines()
            .any(|l| l.split_whitespace().last() == Some("/root")),
        "HOME of an exec'd command: {home}"
    );

    // A re-run is a no-op per the journal.
    let (out, ev) = b.ferry_json(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    println!("RUN-MEASURE fixture 1+2 re-run {}", timings(&ev));
    let redone: Vec<&Value> = ev
        .iter()
        .filter(|e| e["phase"] == "run" && e["node"] != "" && e["kind"] == "started")
        .filter(|e| !e["message"].as_str().unwrap().starts_with("backup"))
        .collect();
    assert!(redone.is_empty(), "re-run redid: {redone:?}");
    assert!(sender(&ev, "rootfs").is_none(), "re-run distributed again");
    let moved: Vec<&Value> = ev
        .iter()
        .filter(|e| e["counters"]["content_bytes_sent"].as_u64().unwrap_or(0) > 0)
        .collect();
    assert!(moved.is_empty(), "re-run sent content: {moved:?}");

    // A changed env re-mounts and re-distributes, but bootstrap (check,
    // init-registry, init-cri, init) does not run again on live nodes —
    // check.sh would refuse their busy ports.
    let mut with_env = args.to_vec();
    with_env.extend(["-e", "ferryFixtureMarker=changed"]);
    let (out, ev) = b.ferry_json(&with_env);
    assert!(out.status.success(), "env re-run: {}", stderr(&out));
    let bootstraps = |ev: &[Value], kind: &str| -> Vec<String> {
        ev.iter()
            .filter(|e| e["phase"] == "run" && e["node"] != "" && e["kind"] == kind)
            .filter(|e| e["message"].as_str().unwrap().starts_with("bootstrap"))
            .map(|e| e["node"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        bootstraps(&ev, "started").is_empty(),
        "env change re-ran bootstrap"
    );
    let skipped = ev
        .iter()
        .filter(|e| e["message"] == "bootstrap: skipped (done)" && e["counters"]["skipped"] == 1)
        .count();
    assert_eq!(skipped, 3, "bootstrap skipped on every node");

    // A changed rootfs does run bootstrap again: master0 (the registry
    // host) first, where labring-strict check.sh refuses the running kubelet.
    std::fs::write(
        std::path::Path::new(image).join("etc/ferry-rootfs-marker"),
        "changed rootfs\n",
    )
    .unwrap();
    let (out, ev) = b.ferry_json(&args);
    assert!(!out.status.success(), "a changed rootfs on a live cluster");
    assert_eq!(bootstraps(&ev, "started"), vec![ip[0].clone()]);
    let failed: Vec<&Value> = ev
        .iter()
        .filter(|e| e["kind"] == "failed" && e["node"] == ip[0].as_str())
        .collect();
    assert!(
        failed.iter().any(|e| {
            let m = e["message"].as_str().unwrap();
            m.starts_with("bootstrap") && m.contains("port 10248 is in use")
        }),
        "{failed:?}"
    );

    let out = b.ferry(&["reset", "-p", pw]);
    assert!(out.status.success(), "{}", common::stdout(&out));
    for i in 0..3 {
        let left = tb
            .exec_ok(i, &["sh", "-c", "ls -d /var/lib/ferry /usr/bin/kubeadm /usr/bin/kubelet /usr/bin/registry /etc/kubernetes /var/lib/registry 2>/dev/null; grep '# ferry' /etc/hosts; true"])
            .unwrap();
        assert!(left.trim().is_empty(), "node {i} keeps: {left}");
        let ports = tb
            .exec_ok(i, &["sh", "-c", "ss -Hltn | awk '{print $4}'"])
            .unwrap();
        let ours: Vec<&str> = ports.lines().filter(|l| !l.ends_with(":22")).collect();
        assert!(ours.is_empty(), "node {i} still listens on {ours:?}");
    }
}

fn clean_node(tb: &Testbed, i: usize) {
    let left = tb
        .exec_ok(i, &["sh", "-c", "ls -d /var/lib/ferry/data /usr/bin/kubeadm /usr/bin/kubelet /etc/kubernetes 2>/dev/null; grep '# ferry' /etc/hosts; true"])
        .unwrap();
    assert!(left.trim().is_empty(), "node {i} keeps: {left}");
}

/// How many Node objects `kubectl get nodes` (the kubectl fixture) lists
/// on master `m`.
fn api_nodes(b: &Bastion, m: &str) -> usize {
    let out = b.ferry(&[
        "exec",
        "--ips",
        m,
        "--",
        "kubectl",
        "--kubeconfig",
        "/etc/kubernetes/admin.conf",
        "get",
        "nodes",
        "-o",
        "name",
    ]);
    assert!(out.status.success(), "{}", common::stdout(&out));
    common::stdout(&out)
        .lines()
        .filter(|l| l.contains("node/"))
        .count()
}

fn joined(tb: &Testbed, i: usize) -> bool {
    fixture_log(tb, i)
        .iter()
        .any(|l| l["ok"] == true && l["command"].as_str().unwrap_or("").starts_with("join"))
}

#[test]
fn run_fixture_three_masters_two_workers_add_delete_apply() {
    let tb = Testbed::up(TestbedConfig::nodes(6)).expect("testbed up");
    let b = Bastion::new(&tb);
    let ip: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let work = tempfile::tempdir().unwrap();
    let image = stage_fixture_image(work.path());
    let image = image.to_str().unwrap();
    let pw = tb.password("root").unwrap();
    let masters = ip[..3].join(",");
    let nodes = format!("{},{}", ip[3], ip[4]);
    let (out, ev) = b.ferry_json(&[
        "run",
        image,
        "--masters",
        &masters,
        "--nodes",
        &nodes,
        "-p",
        pw,
        "--topology",
        "tree",
        "--relay-degree",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    println!("RUN-MEASURE fixture 3+2 {}", timings(&ev));
    // A binary relay tree of 5 hosts: still one copy from the bastion.
    let s = sender(&ev, "rootfs").expect("rootfs sender event");
    assert_eq!(s["hosts"], 5, "{s}");
    for h in &ip[1..5] {
        assert_eq!(distributed(&ev, h), s["sender_content_bytes_sent"], "{h}");
    }
    let state = b.home().join(".ferry/default");
    let cf = std::fs::read_to_string(state.join("Clusterfile")).unwrap();
    assert!(cf.contains("phase: ClusterSuccess"));
    for i in 0..5 {
        for l in fixture_log(&tb, i) {
            assert_eq!(l["ok"], true, "node {i}: {l}");
        }
        if i > 0 {
            assert!(joined(&tb, i), "node {i} did not join");
        }
    }

    // Every master answers with the same Node objects (joined control
    // planes forward node requests to master0's fixture apiserver).
    for m in &ip[..3] {
        assert_eq!(api_nodes(&b, m), 5, "Nodes as seen from master {m}");
    }

    // delete a worker, then add it back.
    let out = b.ferry(&["delete", "--nodes", &ip[4], "--force"]);
    assert!(out.status.success(), "{}", common::stdout(&out));
    clean_node(&tb, 4);
    assert_eq!(api_nodes(&b, &ip[1]), 4, "worker's Node deleted");
    let (out, ev) = b.ferry_json(&["add", "--nodes", &ip[4], "-p", pw, "--topology", "star"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(joined(&tb, 4));
    // add touched only the new host (plus LB checks): masters were skipped.
    let redone: Vec<&Value> = ev
        .iter()
        .filter(|e| e["phase"] == "run" && e["kind"] == "started" && e["node"] == ip[0].as_str())
        .filter(|e| !e["message"].as_str().unwrap().starts_with("backup"))
        .collect();
    assert!(redone.is_empty(), "add redid master0 steps: {redone:?}");

    assert_eq!(api_nodes(&b, &ip[0]), 5, "re-added worker registered again");

    // delete a master: workers' LB re-synced to the two left.
    let out = b.ferry(&["delete", "--masters", &ip[2], "--force"]);
    assert!(out.status.success(), "{}", common::stdout(&out));
    clean_node(&tb, 2);
    assert_eq!(api_nodes(&b, &ip[0]), 4, "master's Node deleted");
    let (out, ev) = b.ferry_json(&["lb", "status"]);
    assert!(out.status.success());
    let st = ev.iter().filter(|e| e["phase"] == "load-balancer").count();
    assert!(st >= 2, "{ev:?}");
    // master0 cannot be deleted.
    let out = b.ferry(&["delete", "--masters", &ip[0], "--force"]);
    assert_eq!(out.status.code(), Some(2));

    // apply: one worker added (ip5) and one removed (ip3) in the same file.
    let mut text = std::fs::read_to_string(state.join("Clusterfile")).unwrap();
    text = text
        .lines()
        .map(|l| {
            let item = l.trim().trim_start_matches("- ");
            if item == ip[3] || item == format!("{}:22", ip[3]) {
                l.replace(item, &ip[5])
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let file = work.path().join("Clusterfile");
    std::fs::write(&file, &text).unwrap();
    let out = b.ferry(&["apply", "-f", file.to_str().unwrap(), "--dry-run"]);
    assert!(out.status.success());
    let plan = common::stdout(&out);
    assert!(plan.contains("remove") && plan.contains("add"), "{plan}");
    let drains_before = fixture_log(&tb, 0).len();
    let out = b.ferry(&["apply", "-f", file.to_str().unwrap(), "--drain"]);
    assert!(out.status.success(), "{}", stderr(&out));
    clean_node(&tb, 3);
    assert!(joined(&tb, 5));
    // The removed worker was drained (kubectl fixture on master0) before
    // its teardown, and its Node object is gone; the added one registered.
    let drained: Vec<Value> = fixture_log(&tb, 0)
        .into_iter()
        .skip(drains_before)
        .filter(|r| r["command"] == "kubectl drain" && r["ok"] == true)
        .collect();
    assert_eq!(drained.len(), 1, "{drained:?}");
    assert_eq!(api_nodes(&b, &ip[0]), 4, "masters ip0 ip1, workers ip4 ip5");

    let out = b.ferry(&["reset", "-p", pw]);
    assert!(out.status.success(), "{}", common::stdout(&out));
    for i in 0..6 {
        clean_node(&tb, i);
    }
}

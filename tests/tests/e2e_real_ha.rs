//! The real tier, 3 masters + 1 worker (real kubeadm, kubelet, containerd,
//! etcd and control plane on `--kube` testbed nodes):
//! - the coordinator is SIGKILLed right after `kubeadm init` returns on
//!   master0; a plain re-run completes without a second `kubeadm init`;
//! - etcd's member list equals the masters;
//! - with master0's apiserver stopped, `kubectl` on the worker (through the
//!   VIP, the agent's load balancer) still answers;
//! - `ferry delete` of a master removes its etcd member and its Node.
//!
//! Prints `REAL-MEASURE` lines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::real::{self, ADMIN, NETWORK_IMAGE, ROOTFS_IMAGE, etcd_members, kubectl};
use common::{json_lines, stderr};
use serde_json::Value;

const INIT_DONE: &str = "Your Kubernetes control-plane has initialized successfully";

#[test]
fn real_cluster_three_masters_one_worker() {
    let setup = real::Setup::new(4);
    let (tb, b, pw, kh) = (&setup.tb, &setup.b, &setup.pw, &setup.kh);
    let ip = |i: usize| setup.ip(i);
    let masters = format!("{},{},{}", ip(0), ip(1), ip(2));
    let args = [
        "--output",
        "json",
        "run",
        ROOTFS_IMAGE,
        NETWORK_IMAGE,
        "--masters",
        &masters,
        "--nodes",
        &ip(3),
        "-p",
        pw,
        "--known-hosts",
        kh,
    ];

    // 1. SIGKILL right after kubeadm init returned on master0.
    let mut child = b
        .command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut killed = false;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let ev: Value = serde_json::from_str(&line).unwrap();
        if ev["node"] == ip(0) && ev["message"].as_str().unwrap_or("").contains(INIT_DONE) {
            child.kill().unwrap();
            killed = true;
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(
        killed,
        "kubeadm init never reported success (run exited {status:?})"
    );
    assert!(!status.success());
    let out = b.command(&args).output().unwrap();
    let ev = json_lines(&out.stdout);
    assert!(
        out.status.success(),
        "re-run after SIGKILL failed: {}",
        stderr(&out)
    );
    let second_init: Vec<&Value> = ev
        .iter()
        .filter(|e| e["node"] == ip(0))
        .filter(|e| {
            let m = e["message"].as_str().unwrap_or("");
            m.contains("[init] Using Kubernetes version") || m.contains(INIT_DONE)
        })
        .collect();
    assert!(
        second_init.is_empty(),
        "kubeadm init ran again: {second_init:?}"
    );
    eprintln!(
        "REAL-MEASURE re-run 3+1 after SIGKILL: {}",
        common::timings(&ev)
    );

    real::wait_nodes_ready(tb, 0, &["node1", "node2", "node3", "node4"], 300);
    real::wait_system_pods(
        tb,
        0,
        &[
            ("etcd-node", 3),
            ("kube-apiserver-node", 3),
            ("kube-controller-manager-node", 3),
            ("kube-scheduler-node", 3),
            ("kube-proxy-", 4),
            ("coredns-", 2),
        ],
        300,
    );
    // 2. etcd members = masters.
    assert_eq!(etcd_members(tb, 0), ["node1", "node2", "node3"]);

    // 3. master0's apiserver stopped: the worker's kubectl (VIP) answers.
    tb.exec_ok(
        0,
        &[
            "mv",
            "/etc/kubernetes/manifests/kube-apiserver.yaml",
            "/etc/kubernetes/kube-apiserver.yaml.stopped",
        ],
    )
    .unwrap();
    real::wait("master0's apiserver gone", 120, || {
        let ok = tb
            .exec(
                0,
                &[
                    "curl",
                    "-sk",
                    "--max-time",
                    "2",
                    "https://127.0.0.1:6443/livez",
                ],
            )
            .unwrap()
            .status
            .success();
        if ok {
            Err("still answers".into())
        } else {
            Ok(())
        }
    });
    tb.exec_ok(3, &["mkdir", "-p", "/etc/kubernetes"]).unwrap();
    let admin = tb.exec_ok(0, &["cat", ADMIN]).unwrap();
    let mut put = tb.node_command(3, "sh").unwrap();
    put.args(["-c", "cat > /root/admin.conf"])
        .stdin(Stdio::piped());
    let mut c = put.spawn().unwrap();
    std::io::Write::write_all(&mut c.stdin.take().unwrap(), admin.as_bytes()).unwrap();
    assert!(c.wait().unwrap().success());
    let mut streak = 0;
    real::wait(
        "10 answers in a row through the VIP without master0",
        120,
        || {
            let out = tb
                .exec(
                    3,
                    &[
                        "kubectl",
                        "--kubeconfig",
                        "/root/admin.conf",
                        "--request-timeout=5s",
                        "get",
                        "nodes",
                        "-o",
                        "name",
                    ],
                )
                .unwrap();
            if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("node/node4") {
                streak += 1;
            } else {
                streak = 0;
            }
            if streak >= 10 {
                Ok(())
            } else {
                Err(format!("streak {streak}: {}", stderr(&out)))
            }
        },
    );
    tb.exec_ok(
        0,
        &[
            "mv",
            "/etc/kubernetes/kube-apiserver.yaml.stopped",
            "/etc/kubernetes/manifests/kube-apiserver.yaml",
        ],
    )
    .unwrap();
    real::wait("master0's apiserver back", 180, || {
        let (ok, text) = kubectl(tb, 0, &["get", "--raw", "/readyz"]);
        if ok { Ok(()) } else { Err(text) }
    });

    // 4. Delete a master: its etcd member and Node go.
    let out = b.ferry(&["delete", "--masters", &ip(2), "--force"]);
    assert!(out.status.success(), "delete master: {}", stderr(&out));
    assert_eq!(etcd_members(tb, 0), ["node1", "node2"]);
    let nodes = real::kubectl_json(tb, 0, &["get", "nodes"]);
    let mut names: Vec<&str> = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["node1", "node2", "node4"]);
    eprintln!(
        "REAL-MEASURE peak memory used on the machine: {} MiB",
        setup.mem.peak_mib()
    );
}

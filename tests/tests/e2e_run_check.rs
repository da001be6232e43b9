//! The run pipeline's check step and per-host rendering on the testbed
//! (1 master + 1 node, the fixture cluster image plus one template that
//! uses the host env and `SEALOS_SYS_RUN_MODE`, hosts with different
//! Clusterfile `env`):
//! - ports the cluster needs are taken on both hosts (real listeners in the
//!   node namespaces): the run fails in step `check` naming every host and
//!   port with the owning process, in one report, and no ferry data dir
//!   appears on any node;
//! - a VIP inside the service subnet fails before any node changes;
//! - the ports freed, a re-run passes check and finishes; each host holds
//!   its own rendering of the template (zone from its env, its run mode),
//!   written with the template's mode.
//!
//! Clock skew is not tested here: the nodes share the host kernel's clock
//! (namespaces have no clock of their own); the skew computation is unit
//! tested in `ferry_shared::pipeline::check`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{Bastion, stage_fixture_image, stderr};
use ferry_tests::testbed::{Testbed, TestbedConfig};
use ferry_tests::wait_until;
use serde_json::Value;

const CLUSTER: &str = "default";
const TEMPLATE: &str = "etc/ferry-e2e-host.conf";

/// Starts a listener on `port` inside node `i`; returns its pid (node pid
/// namespace) once the port is listening.
fn occupy(tb: &Testbed, i: usize, port: u16) -> String {
    let pid = tb
        .exec_ok(
            i,
            &[
                "sh",
                "-c",
                "mkdir -p /tmp/occupy && busybox httpd -f -p \"$1\" -h /tmp/occupy </dev/null >/dev/null 2>&1 & echo $!",
                "sh",
                &port.to_string(),
            ],
        )
        .unwrap()
        .trim()
        .to_string();
    wait_until(
        &format!("node {i} listening on {port}"),
        Duration::from_secs(20),
        || listening(tb, i, port),
    )
    .unwrap();
    pid
}

fn listening(tb: &Testbed, i: usize, port: u16) -> bool {
    tb.exec_ok(i, &["ss", "-Hltn"])
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .any(|a| a.ends_with(&format!(":{port}")))
}

fn free(tb: &Testbed, i: usize, pid: &str, port: u16) {
    tb.exec_ok(i, &["kill", pid]).unwrap();
    wait_until(
        &format!("node {i} port {port} free"),
        Duration::from_secs(20),
        || !listening(tb, i, port),
    )
    .unwrap();
}

fn clusterfile(image: &str, pw: &str, master: &str, node: &str) -> String {
    format!(
        r#"apiVersion: apps.sealos.io/v1beta1
kind: Cluster
metadata:
  name: {CLUSTER}
spec:
  image: ["{image}"]
  ssh: {{user: root, passwd: "{pw}", port: 22}}
  hosts:
  - ips: [{master}]
    roles: [master]
    env: [zone=zone-a]
  - ips: [{node}]
    roles: [node]
    env: [zone=zone-b]
"#
    )
}

fn check_failure(ev: &[Value]) -> String {
    ev.iter()
        .find(|e| {
            e["phase"] == "run"
                && e["kind"] == "failed"
                && e["message"].as_str().unwrap_or("").starts_with("check:")
        })
        .map(|e| e["message"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[test]
fn check_reports_busy_ports_of_all_hosts_then_hosts_render_their_own_templates() {
    let tb = Testbed::up(TestbedConfig::nodes(2)).expect("testbed up");
    let b = Bastion::new(&tb);
    let ip: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let work = tempfile::tempdir().unwrap();
    let image = stage_fixture_image(work.path());
    let tmpl = image.join(format!("{TEMPLATE}.tmpl"));
    std::fs::write(
        &tmpl,
        "zone={{ .zone }} mode={{ .SEALOS_SYS_RUN_MODE }} domain={{ .registryDomain }}\n",
    )
    .unwrap();
    std::fs::set_permissions(&tmpl, std::fs::Permissions::from_mode(0o640)).unwrap();
    let pw = tb.password("root").unwrap();
    let file = work.path().join("Clusterfile");
    std::fs::write(
        &file,
        clusterfile(image.to_str().unwrap(), pw, &ip[0], &ip[1]),
    )
    .unwrap();
    let args = ["apply", "-f", file.to_str().unwrap()];

    // etcd's port on the master, the kubelet's on the worker.
    let busy = [(0, 2379u16), (1, 10250u16)];
    let pids: Vec<String> = busy.iter().map(|&(i, p)| occupy(&tb, i, p)).collect();
    let (out, ev) = b.ferry_json(&args);
    assert!(!out.status.success(), "the run must fail in check");
    let msg = check_failure(&ev);
    for (i, port) in busy {
        let want = format!("{}: port {port} (needed by", ip[i]);
        assert!(
            msg.contains(&want),
            "`{want}` missing in the check event: {msg}"
        );
    }
    assert!(
        msg.contains("in use by busybox (pid"),
        "owner not named: {msg}"
    );
    assert!(msg.contains("2 problems"), "{msg}");
    let later: Vec<&Value> = ev
        .iter()
        .filter(|e| {
            let m = e["message"].as_str().unwrap_or("");
            e["phase"] == "run" && (m.starts_with("images") || m.starts_with("distribute"))
        })
        .collect();
    assert!(later.is_empty(), "steps after check ran: {later:?}");
    for i in 0..2 {
        let left = tb
            .exec_ok(
                i,
                &["sh", "-c", "ls -d /var/lib/ferry/data 2>/dev/null; true"],
            )
            .unwrap();
        assert!(left.trim().is_empty(), "node {i} has {left}");
    }

    // Ports freed; a VIP inside the service subnet (10.96.0.0/22) is
    // refused once the kubeadm configuration is known, still before any
    // node changes.
    for ((i, port), pid) in busy.iter().zip(&pids) {
        free(&tb, *i, pid, *port);
    }
    let mut bad_vip = args.to_vec();
    bad_vip.extend(["-e", "defaultVIP=10.96.0.7"]);
    let (out, ev) = b.ferry_json(&bad_vip);
    assert!(
        !out.status.success(),
        "a VIP in the service subnet must fail"
    );
    assert!(check_failure(&ev).is_empty(), "check itself passes");
    let failed = ev
        .iter()
        .find(|e| {
            e["phase"] == "run"
                && e["kind"] == "failed"
                && e["message"].as_str().unwrap_or("").starts_with("images:")
        })
        .map(|e| e["message"].as_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(
        failed.contains("VIP 10.96.0.7 is inside the service subnet 10.96.0.0/22"),
        "{failed}"
    );
    for i in 0..2 {
        let left = tb
            .exec_ok(
                i,
                &["sh", "-c", "ls -d /var/lib/ferry/data 2>/dev/null; true"],
            )
            .unwrap();
        assert!(left.trim().is_empty(), "node {i} has {left}");
    }

    // The same command as first passes check and finishes.
    let (out, ev) = b.ferry_json(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(check_failure(&ev).is_empty());
    let rootfs = format!("/var/lib/ferry/data/{CLUSTER}/rootfs");
    for (i, want) in [
        (0, "zone=zone-a mode=master,amd64 domain=sealos.hub"),
        (1, "zone=zone-b mode=node,amd64 domain=sealos.hub"),
    ] {
        let path = format!("{rootfs}/{TEMPLATE}");
        let got = tb.exec_ok(i, &["cat", &path]).unwrap();
        assert_eq!(got.trim(), want, "node {i}");
        let mode = tb.exec_ok(i, &["stat", "-c", "%a", &path]).unwrap();
        assert_eq!(mode.trim(), "640", "node {i} mode");
        let stage = tb
            .exec_ok(
                i,
                &[
                    "sh",
                    "-c",
                    &format!("ls -d {rootfs}/.ferry-render 2>/dev/null; true"),
                ],
            )
            .unwrap();
        assert!(stage.trim().is_empty(), "node {i} keeps the render stage");
    }
    // The cluster-wide rendering on the bastion has no host values.
    let mounted = std::fs::read_to_string(
        b.home()
            .join(format!(".ferry/{CLUSTER}/mounts/rootfs/{TEMPLATE}")),
    )
    .unwrap();
    assert!(mounted.starts_with("zone=<no value>"), "{mounted}");
}

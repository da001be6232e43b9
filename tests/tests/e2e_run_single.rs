//! `ferry run --single` run ON a testbed node (sealos: "no hosts ⇒ the
//! local IP is the only master"): ferry inside the node's namespaces finds
//! the node's own address (source of its default route), installs its agent
//! over SSH to itself and brings the one-node cluster up: ClusterSuccess,
//! the stored Clusterfile has exactly that IP as its only master, and the
//! kubeadm init config leaves the control-plane taint off (`taints: []`).
//! Also: `gen --single` prints the same, `--single --masters` is a usage
//! error, and a run failing in a step (a VIP inside the service CIDR, step
//! images) prints timings that include the failing step.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::path::Path;
use std::process::{Output, Stdio};

use common::{agent_bin, ferry_bin, json_lines, stage_fixture_image, stderr, stdout};
use ferry_tests::testbed::{Testbed, TestbedConfig};
use serde_json::Value;

/// A fresh HOME on the node's own /tmp (a tmpfs: nothing of the host's
/// ~/.ferry or known_hosts leaks in through the overlay root).
const HOME: &str = "/tmp/single-home";

/// Where the binaries and the image are copied inside node 0: the host's
/// checkout may live under /tmp, which the node does not share.
const STAGE: &str = "/opt/ferry-single";

/// Runs `argv` in node 0 with `stdin` fed from `input`; asserts success.
fn node_with_stdin(tb: &Testbed, argv: &[&str], input: &Path) {
    let mut c = tb.node_command(0, argv[0]).unwrap();
    c.args(&argv[1..])
        .stdin(std::fs::File::open(input).unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let out = c.output().unwrap();
    assert!(out.status.success(), "{argv:?}: {}", stderr(&out));
}

/// Copies ferry, the agent and the staged image into node 0.
fn stage_in_node(tb: &Testbed, image: &Path, work: &Path) -> String {
    tb.exec_ok(0, &["mkdir", "-p", HOME, &format!("{STAGE}/image")])
        .unwrap();
    for (src, name) in [(ferry_bin(), "ferry"), (agent_bin(), "ferry-agent")] {
        let dst = format!("{STAGE}/{name}");
        node_with_stdin(
            tb,
            &["sh", "-c", &format!("cat > {dst} && chmod 0755 {dst}")],
            Path::new(&src),
        );
    }
    let tar = work.join("image.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(image)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    node_with_stdin(
        tb,
        &["tar", "-C", &format!("{STAGE}/image"), "-xf", "-"],
        &tar,
    );
    format!("{STAGE}/image")
}

/// ferry inside node 0.
fn ferry_in_node(tb: &Testbed, args: &[&str]) -> Output {
    let mut c = tb.node_command(0, format!("{STAGE}/ferry")).unwrap();
    c.env("HOME", HOME)
        .env("FERRY_HOME", format!("{HOME}/.ferry"))
        .env("FERRY_AGENT_BIN", format!("{STAGE}/ferry-agent"))
        .args(args);
    let out = c.output().unwrap();
    eprintln!(
        "[node1]$ ferry {}\n-- exit {:?}\n-- stdout:\n{}\n-- stderr:\n{}",
        args.join(" "),
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    out
}

fn timings(ev: &[Value]) -> &str {
    common::timings_event(ev)
        .and_then(|e| e["message"].as_str())
        .unwrap()
}

#[test]
fn run_single_on_the_node_itself() {
    let tb = Testbed::up(TestbedConfig::nodes(1)).expect("testbed up");
    let ip = tb.nodes()[0].ip.to_string();
    let pw = tb.password("root").unwrap();
    let work = tempfile::tempdir().unwrap();
    let image = stage_fixture_image(work.path());
    let image = stage_in_node(&tb, &image, work.path());
    let image = image.as_str();

    // --single with hosts is a usage error.
    let out = ferry_in_node(&tb, &["run", "--single", image, "--masters", &ip]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--single"), "{}", stderr(&out));

    // gen: the node's own address as the only master, untainted.
    let out = ferry_in_node(&tb, &["gen", "--single", image, "-p", pw]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(&format!("  - {ip}\n")), "{text}");
    assert!(text.contains("taints: []"), "{text}");
    assert!(text.contains(&format!("advertiseAddress: {ip}")), "{text}");

    // A run failing in step images: its timings include that step.
    let (out, ev) = {
        let out = ferry_in_node(
            &tb,
            &[
                "--output",
                "json",
                "run",
                "--single",
                image,
                "-p",
                pw,
                "-e",
                "defaultVIP=10.96.0.7",
            ],
        );
        let ev = json_lines(&out.stdout);
        (out, ev)
    };
    assert!(!out.status.success());
    let t = timings(&ev);
    assert!(
        t.contains("check ") && t.contains("images ") && !t.contains("distribute"),
        "the failing step's time is in the timings: {t}"
    );

    let (out, ev) = {
        let out = ferry_in_node(
            &tb,
            &["--output", "json", "run", "--single", image, "-p", pw],
        );
        let ev = json_lines(&out.stdout);
        (out, ev)
    };
    assert!(out.status.success(), "{}", stderr(&out));
    println!("RUN-MEASURE single {}", timings(&ev));

    let cf = tb
        .exec_ok(0, &["cat", &format!("{HOME}/.ferry/default/Clusterfile")])
        .unwrap();
    assert!(cf.contains("phase: ClusterSuccess"), "{cf}");
    let parsed = ferry_shared::clusterfile::Clusterfile::parse(&cf).unwrap();
    let hosts = &parsed.cluster.spec.hosts;
    assert_eq!(hosts.len(), 1, "{cf}");
    assert_eq!(hosts[0].ips, std::slice::from_ref(&ip), "{cf}");
    assert_eq!(hosts[0].roles, ["master"], "{cf}");

    // kubeadm init ran with the untainted config.
    let init = tb
        .exec_ok(
            0,
            &[
                "cat",
                "/var/lib/ferry/data/default/kubeadm/kubeadm-init.yaml",
            ],
        )
        .unwrap();
    assert!(init.contains("taints: []"), "{init}");
    let log = common::fixture_log(&tb, 0);
    assert!(
        log.iter()
            .any(|l| l["command"].as_str().unwrap_or("").starts_with("init") && l["ok"] == true),
        "kubeadm init fixture ran: {log:?}"
    );
}

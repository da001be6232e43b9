//! Scale figures (a benchmark, not a pass/fail timing test): one testbed of
//! N + 1 nodes (default N = 50, `BENCH_SCALE_NODES`), printed as a table
//! next to a sealos-style baseline from the same run (one SSH connection
//! per host and command, files over SSH):
//! - agent install to N;
//! - `exec -- true` on N (best of 3) | N parallel `ssh host true`;
//! - `agent status` on N | N parallel `ssh host uname -a`;
//! - `scp --topology tree` of a `BENCH_SCALE_MB` (default 400) tree to N |
//!   N parallel `scp -r` of the same tree;
//! - the fixture cluster (1 master + N-1 workers): `add` of one worker and
//!   a no-op `apply`, and the same `add` to a 3-node cluster for the ratio.
//!
//! Run (root):
//!   cargo test -p ferry-tests --test bench_scale -- --ignored --nocapture

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::{Bastion, stderr, stdout};
use ferry_tests::testbed::{Testbed, TestbedConfig};
use serde_json::Value;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Seconds `f` took, asserting it succeeded.
fn timed(what: &str, f: impl FnOnce() -> bool) -> f64 {
    let t = Instant::now();
    assert!(f(), "{what} failed");
    t.elapsed().as_secs_f64()
}

fn ok(b: &Bastion, args: &[&str]) -> bool {
    let out = b.ferry(args);
    if !out.status.success() {
        eprintln!("{}{}", stdout(&out), stderr(&out));
    }
    out.status.success()
}

/// The baseline: one new SSH connection (or scp) per host, all hosts at
/// once, from the bastion's namespace; `cmd(i)` builds host `i`'s.
fn baseline(n: usize, cmd: impl Fn(usize) -> Command) -> bool {
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let mut c = cmd(i);
            std::thread::spawn(move || c.output().map(|o| o.status.success()).unwrap_or(false))
        })
        .collect();
    handles.into_iter().all(|h| h.join().unwrap_or(false))
}

/// A tree of `mb` MiB in 4 MiB files of random bytes (incompressible).
fn make_tree(dir: &Path, mb: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..mb.div_ceil(4) {
        let st = Command::new("dd")
            .args([
                "if=/dev/urandom",
                &format!("of={}/f{i:04}", dir.display()),
                "bs=1M",
                "count=4",
                "status=none",
            ])
            .status()
            .unwrap();
        assert!(st.success());
    }
}

/// `ferry run` of the fixture image: node 0 master, `workers` workers.
fn run_cluster(b: &Bastion, image: &Path, ips: &[String], pw: &str) -> f64 {
    let workers = ips[1..].join(",");
    timed("run", || {
        ok(
            b,
            &[
                "run",
                image.to_str().unwrap(),
                "--masters",
                &ips[0],
                "--nodes",
                &workers,
                "-p",
                pw,
            ],
        )
    })
}

/// (add one worker, no-op apply) on a fixture cluster of `ips` (the last
/// one is the worker added), SSH opened to how many hosts during the add.
fn cluster_ops(tb: &Testbed, b: &Bastion, image: &Path, ips: &[String]) -> (f64, f64, f64, usize) {
    let pw = tb.password("root").unwrap();
    let (members, new) = ips.split_at(ips.len() - 1);
    let run = run_cluster(b, image, members, pw);
    let t = Instant::now();
    let (out, ev) = b.ferry_json(&["add", "--nodes", &new[0], "-p", pw]);
    let add = t.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", stderr(&out));
    let ssh = ev
        .iter()
        .filter(|e: &&Value| e["phase"] == "connect" && e["counters"]["ssh"] == 1)
        .count();
    let cf = b.home().join(".ferry/default/Clusterfile");
    let copy = b.home().join("Clusterfile.copy");
    std::fs::copy(&cf, &copy).unwrap();
    let apply = timed("no-op apply", || {
        ok(b, &["apply", "-f", copy.to_str().unwrap()])
    });
    (run, add, apply, ssh)
}

#[test]
#[ignore = "benchmark: prints figures"]
fn bench_scale() {
    let n = env_usize("BENCH_SCALE_NODES", 50);
    let mb = env_usize("BENCH_SCALE_MB", 400);
    let work = tempfile::tempdir().unwrap();
    let image = common::stage_fixture_image(work.path());
    let tree = work.path().join("tree");
    make_tree(&tree, mb);

    let tb = Testbed::up(TestbedConfig::nodes(n + 1)).expect("testbed up");
    let b = Bastion::new(&tb);
    let all: Vec<String> = tb.nodes().iter().map(|x| x.ip.to_string()).collect();
    let ips = &all[..n];
    let list = ips.join(",");
    let pw = tb.password("root").unwrap();
    let key = tb.key_path().to_path_buf();

    let install = timed("agent install", || {
        ok(&b, &["agent", "install", "--nodes", &list, "-p", pw])
    });
    let exec = (0..3)
        .map(|_| timed("exec", || ok(&b, &["exec", "--", "true"])))
        .fold(f64::MAX, f64::min);
    let exec_base = timed("ssh true", || {
        baseline(n, |i| {
            let mut c = tb.ssh_command(i, "root").unwrap();
            c.arg("true");
            c
        })
    });
    let status = timed("agent status", || ok(&b, &["agent", "status"]));
    let status_base = timed("ssh uname", || {
        baseline(n, |i| {
            let mut c = tb.ssh_command(i, "root").unwrap();
            c.arg("uname -a; cat /proc/uptime");
            c
        })
    });
    let scp = timed("scp tree", || {
        ok(
            &b,
            &[
                "scp",
                "--topology",
                "tree",
                tree.to_str().unwrap(),
                "/opt/bench",
            ],
        )
    });
    // The disk holds one copy per node at a time: ferry's goes first.
    let _ = ok(&b, &["exec", "--", "rm", "-rf", "/opt/bench"]);
    let scp_base = timed("scp -r", || {
        baseline(n, |i| {
            let mut c = tb.bastion_command("scp");
            c.args(["-q", "-r", "-o", "StrictHostKeyChecking=no", "-o"])
                .args(["UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-i"])
                .arg(&key)
                .arg(&tree)
                .arg(format!("root@{}:/opt/bench-scp", ips[i]));
            c
        })
    });
    // Free the nodes' disk before the cluster.
    let _ = ok(&b, &["exec", "--", "rm", "-rf", "/opt/bench-scp"]);
    let (run_n, add_n, apply_n, ssh_n) = cluster_ops(&tb, &b, &image, &all);
    drop(tb);

    let small = Testbed::up(TestbedConfig::nodes(4)).expect("small testbed up");
    let sb = Bastion::new(&small);
    let sips: Vec<String> = small.nodes().iter().map(|x| x.ip.to_string()).collect();
    let (run_3, add_3, apply_3, ssh_3) = cluster_ops(&small, &sb, &image, &sips);

    println!(
        "SCALE N={n}, tree {mb} MiB, {} cores",
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    println!(
        "SCALE {:<44} {:>10} {:>16}",
        "operation", "ferry s", "ssh baseline s"
    );
    println!(
        "SCALE {:<44} {install:>10.2} {:>16}",
        format!("agent install to {n}"),
        "-"
    );
    println!(
        "SCALE {:<44} {exec:>10.2} {exec_base:>16.2}",
        format!("exec -- true on {n}")
    );
    println!(
        "SCALE {:<44} {status:>10.2} {status_base:>16.2}",
        format!("agent status on {n}")
    );
    println!(
        "SCALE {:<44} {scp:>10.2} {scp_base:>16.2}",
        format!("scp {mb} MiB tree to {n} (tree topology)")
    );
    println!(
        "SCALE {:<44} {run_n:>10.2} {:>16}",
        format!("run fixture cluster of {n}"),
        "-"
    );
    println!(
        "SCALE {:<44} {add_n:>10.2} {:>16}",
        format!("add 1 worker to {n} (SSH to {ssh_n} host)"),
        "-"
    );
    println!(
        "SCALE {:<44} {apply_n:>10.2} {:>16}",
        format!("no-op apply on {}", n + 1),
        "-"
    );
    println!(
        "SCALE {:<44} {run_3:>10.2} {:>16}",
        "run fixture cluster of 3", "-"
    );
    println!(
        "SCALE {:<44} {add_3:>10.2} {:>16}",
        format!("add 1 worker to 3 (SSH to {ssh_3} host)"),
        "-"
    );
    println!(
        "SCALE {:<44} {apply_3:>10.2} {:>16}",
        "no-op apply on 4", "-"
    );
    println!("SCALE add ratio {n}:3 = {:.2}", add_n / add_3);
}

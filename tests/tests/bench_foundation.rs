//! Foundation figures (not a pass/fail timing test): wall time of
//! `agent install` to 3 and 8 testbed nodes, of `exec -- true` on 8 nodes
//! with agents running, and agent RSS. Run with:
//!   cargo nextest run -p ferry-tests --run-ignored only -E 'test(bench_)' --no-capture

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::time::Instant;

use common::Bastion;
use ferry_tests::testbed::{Testbed, TestbedConfig};

fn install_time(n: usize) -> (f64, f64, f64, Vec<u64>) {
    let tb = Testbed::up(TestbedConfig {
        nodes: n,
        ..Default::default()
    })
    .unwrap();
    let b = Bastion::new(&tb);
    let list: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let list = list.join(",");
    let t = Instant::now();
    let out = b.ferry(&[
        "agent",
        "install",
        "--nodes",
        &list,
        "-p",
        tb.password("root").unwrap(),
    ]);
    let install = t.elapsed().as_secs_f64();
    assert!(out.status.success());
    let t = Instant::now();
    assert!(
        b.ferry(&[
            "agent",
            "install",
            "--nodes",
            &list,
            "-p",
            tb.password("root").unwrap()
        ])
        .status
        .success()
    );
    let noop = t.elapsed().as_secs_f64();
    let mut exec = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        assert!(b.ferry(&["exec", "--", "true"]).status.success());
        exec = exec.min(t.elapsed().as_secs_f64());
    }
    let rss = (0..n)
        .map(|i| {
            let o = tb
                .exec(
                    i,
                    &[
                        "sh",
                        "-c",
                        "grep VmRSS /proc/$(pgrep -f 'ferry-agent serve' | head -1)/status",
                    ],
                )
                .unwrap();
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .nth(1)
                .and_then(|k| k.parse().ok())
                .unwrap_or(0)
        })
        .collect();
    (install, noop, exec, rss)
}

#[test]
#[ignore = "benchmark: prints figures"]
fn bench_foundation() {
    let size = std::fs::metadata(common::agent_bin()).unwrap().len();
    println!(
        "agent binary: {:.2} MB (static, stripped)",
        size as f64 / 1e6
    );
    println!(
        "{:>5} {:>12} {:>14} {:>12} {:>14}",
        "nodes", "install s", "re-install s", "exec true s", "agent RSS KiB"
    );
    for n in [3, 8] {
        let (i, r, e, rss) = install_time(n);
        let max = rss.iter().max().copied().unwrap_or(0);
        println!("{n:>5} {i:>12.2} {r:>14.2} {e:>12.3} {max:>14}");
    }
}

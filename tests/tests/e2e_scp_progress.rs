//! End to end on the testbed: how `ferry scp` shows progress to a human.
//! Under a pseudo-terminal (util-linux `script`) each node's line is a byte
//! bar (`[====>  ] 3.2/6.0 MiB ...`) that ends with its summary, and the
//! total's bar sits below them; without a terminal the same counters are
//! plain, throttled lines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::transfer::noise;
use common::{Bastion, agent_bin, ferry_bin, stderr};
use ferry_tests::testbed::{Testbed, TestbedConfig};

const MIB: usize = 1 << 20;
/// Per-node link rate while copying: 6 MiB take about 2 s.
const MBIT: u32 = 24;
/// The pseudo-terminal's width.
const COLS: usize = 200;

/// Three files, 6 MiB in all, incompressible.
fn tree(root: &Path, seed: u64) {
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("a.bin"), noise(3 * MIB, seed)).unwrap();
    std::fs::write(root.join("sub/b.bin"), noise(3 * MIB - 100, seed + 2)).unwrap();
    std::fs::write(root.join("sub/c.txt"), noise(100, seed + 4)).unwrap();
}

/// Drops ANSI escape sequences; what remains are the drawn texts.
fn strip_ansi(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if it.peek() == Some(&'[') {
            it.next();
            for d in it.by_ref() {
                if ('@'..='~').contains(&d) {
                    break;
                }
            }
        } else {
            it.next();
        }
    }
    out
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `ferry args...` in the bastion namespace with a terminal on its
/// stdin/stdout/stderr; returns (exit success, everything drawn).
fn ferry_on_tty(tb: &Testbed, b: &Bastion, args: &[&str]) -> (bool, Vec<u8>) {
    let mut cmd = vec![quote(&ferry_bin().to_string_lossy())];
    cmd.extend(args.iter().map(|a| quote(a)));
    let line = format!("stty cols {COLS} rows 50; exec {}", cmd.join(" "));
    let out = Command::new("ip")
        .args(["netns", "exec", tb.bastion_netns(), "script", "-qfec"])
        .arg(&line)
        .arg("/dev/null")
        .env("HOME", b.home())
        .env("FERRY_HOME", b.home().join(".ferry"))
        .env("FERRY_AGENT_BIN", agent_bin())
        .env("TERM", "xterm")
        .env_remove("FERRY_SSH_PASSWD")
        .env_remove("FERRY_CLUSTER")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    eprintln!(
        "$ [tty] ferry {}\n-- exit {:?}\n-- drawn:\n{}",
        args.join(" "),
        out.status.code(),
        strip_ansi(&out.stdout)
    );
    (out.status.success(), out.stdout)
}

/// Every drawn line: frames start after `\r` (and cursor moves); within a
/// frame indicatif pads each line to the terminal's width.
fn drawn_lines(raw: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for seg in strip_ansi(raw).split(['\r', '\n']) {
        let chars: Vec<char> = seg.chars().collect();
        for line in chars.chunks(COLS) {
            let line: String = line.iter().collect();
            if !line.trim().is_empty() {
                out.push(line.trim_end().to_string());
            }
        }
    }
    out
}

/// `x/6.0 MiB` with x < 6.0 in `line`.
fn partial(line: &str) -> bool {
    line.split_whitespace().any(|w| {
        w.strip_suffix("/6.0")
            .and_then(|d| d.parse::<f64>().ok())
            .is_some_and(|d| d < 6.0)
    })
}

#[test]
fn scp_draws_byte_bars_on_a_terminal_and_plain_lines_otherwise() {
    let tb = Testbed::up(TestbedConfig {
        nodes: 2,
        ..Default::default()
    })
    .expect("testbed up");
    let b = Bastion::new(&tb);
    let ip: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let pw = tb.password("root").unwrap().to_string();
    let out = b.ferry(&["agent", "install", "--masters", &ip.join(","), "-p", &pw]);
    assert!(out.status.success(), "install: {}", stderr(&out));
    for i in 0..ip.len() {
        tb.shape(i, MBIT).unwrap();
    }
    let src_dir = tempfile::tempdir().unwrap();

    // A terminal: byte bars.
    let src = src_dir.path().join("tty");
    tree(&src, 11);
    let (ok, raw) = ferry_on_tty(
        &tb,
        &b,
        &["scp", &src.to_string_lossy(), "/opt/progress-tty"],
    );
    assert!(ok, "scp on a terminal failed");
    let lines = drawn_lines(&raw);
    let last = |needle: &dyn Fn(&str) -> bool| lines.iter().rposition(|l| needle(l));
    let mut node_ends = Vec::new();
    for addr in &ip {
        let bar = |l: &str| l.contains(&format!(" {addr} [")) && l.contains('=');
        assert!(
            lines
                .iter()
                .any(|l| bar(l) && l.contains("transfer progress: ") && partial(l)),
            "no intermediate bar frame for {addr}"
        );
        let end = last(&|l: &str| {
            bar(l)
                && l.contains("transfer finished: 6.0/6.0 MiB in ")
                && l.contains("MiB/s (files 3 sent, 0 skipped)")
        });
        node_ends.push(end.unwrap_or_else(|| panic!("no final summary bar for {addr}")));
    }
    let total_bar = |l: &str| l.contains(" - [") && l.contains("/12.0 MiB");
    assert!(
        lines
            .iter()
            .any(|l| total_bar(l) && l.contains("transfer progress: ")),
        "no total bar"
    );
    let total_end = last(&|l: &str| {
        total_bar(l)
            && l.contains("transfer finished: 12.0/12.0 MiB in ")
            && l.ends_with("(files 6, 0 skipped) — topology chain")
    })
    .expect("the total bar ends with the run's summary");
    assert!(
        node_ends.iter().all(|e| *e < total_end),
        "the total bar is drawn below the nodes' bars"
    );

    // No terminal: plain lines with the same counters.
    let src = src_dir.path().join("plain");
    tree(&src, 21);
    let out = b.ferry(&["scp", &src.to_string_lossy(), "/opt/progress-plain"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains('\u{1b}'), "escape codes without a terminal");
    for addr in &ip {
        let mine: Vec<&str> = err
            .lines()
            .filter(|l| l.trim_start().starts_with(&format!("{addr}  transfer ")))
            .collect();
        let progress: Vec<&&str> = mine
            .iter()
            .filter(|l| l.contains("transfer progress: "))
            .collect();
        assert!(
            progress.iter().any(|l| partial(l)
                && l.contains(" MiB/s eta ")
                && l.ends_with("(files 3 to send, 0 skipped)")),
            "no readable progress line for {addr}: {mine:#?}"
        );
        // Throttled: about 2 per second of a ~2-4 s copy.
        assert!(progress.len() <= 20, "{} progress lines", progress.len());
        assert!(
            mine.iter()
                .any(|l| l.contains("transfer finished: 6.0/6.0 MiB in ")
                    && l.ends_with("(files 3 sent, 0 skipped)")),
            "no summary line for {addr}: {mine:#?}"
        );
    }
}

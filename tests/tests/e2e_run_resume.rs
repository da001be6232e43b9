//! A run whose coordinator is SIGKILLed mid-way (right after the first
//! host finished distribution) resumes with a plain re-run: it finishes
//! with ClusterSuccess and never redoes a step the journal recorded done.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::{Bastion, stage_fixture_image, stderr};
use ferry_tests::testbed::{Testbed, TestbedConfig};
use serde_json::Value;

/// (host, step) of every per-host step that finished (not skipped).
fn finished(ev: &[Value]) -> BTreeSet<(String, String)> {
    ev.iter()
        .filter(|e| e["phase"] == "run" && e["kind"] == "finished" && e["node"] != "")
        .filter(|e| e["counters"]["skipped"].is_null())
        .filter_map(|e| {
            let step = e["message"].as_str()?.split(':').next()?.to_string();
            Some((e["node"].as_str()?.to_string(), step))
        })
        .collect()
}

#[test]
fn run_killed_during_distribution_resumes_without_redoing_steps() {
    let tb = Testbed::up(TestbedConfig::nodes(3)).expect("testbed up");
    let b = Bastion::new(&tb);
    let ip: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let work = tempfile::tempdir().unwrap();
    let image = stage_fixture_image(work.path());
    let pw = tb.password("root").unwrap();
    let nodes = format!("{},{}", ip[1], ip[2]);
    let args = [
        "--output",
        "json",
        "run",
        image.to_str().unwrap(),
        "--masters",
        &ip[0],
        "--nodes",
        &nodes,
        "-p",
        pw,
    ];

    let mut child = b
        .command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let e: Value = serde_json::from_str(&line.unwrap()).unwrap();
        let stop = e["phase"] == "run" && e["kind"] == "finished" && e["message"] == "distribute";
        first.push(e);
        if stop {
            child.kill().unwrap(); // SIGKILL
            break;
        }
    }
    child.wait().unwrap();
    let done_before = finished(&first);
    assert!(!done_before.is_empty(), "killed before any step finished");
    let state = b.home().join(".ferry/default");
    assert!(state.join("journal.jsonl").is_file());

    let (out, ev) = b.ferry_json(&args[2..]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cf = std::fs::read_to_string(state.join("Clusterfile")).unwrap();
    assert!(cf.contains("phase: ClusterSuccess"));
    let started: BTreeSet<(String, String)> = ev
        .iter()
        .filter(|e| e["phase"] == "run" && e["kind"] == "started" && e["node"] != "")
        .filter_map(|e| {
            Some((
                e["node"].as_str()?.to_string(),
                e["message"].as_str()?.split(':').next()?.to_string(),
            ))
        })
        .collect();
    let redone: Vec<_> = done_before.intersection(&started).collect();
    assert!(redone.is_empty(), "re-run redid finished steps: {redone:?}");
    let out = b.ferry(&["reset", "-p", pw]);
    assert!(out.status.success());
}

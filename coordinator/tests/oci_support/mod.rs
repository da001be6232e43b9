//! Support for the `oci_*` tests: a real `docker-registry` server and test
//! images written programmatically into a store.
#![allow(dead_code)]

pub mod images;
pub mod registry;

use std::path::Path;
use std::process::{Command, Output};

/// Runs the ferry binary with `FERRY_HOME`/`FERRY_DATA_ROOT` set.
pub fn ferry(home: &Path, data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .env("FERRY_HOME", home)
        .env("FERRY_DATA_ROOT", data)
        .env("HOME", home)
        .env_remove("DOCKER_CONFIG")
        .args(args)
        .output()
        .expect("run ferry")
}

/// Like [`ferry`] but the command must succeed; returns stdout.
pub fn ferry_ok(home: &Path, data: &Path, args: &[&str]) -> String {
    let out = ferry(home, data, args);
    assert!(
        out.status.success(),
        "ferry {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The counters of the last JSON event of `phase`/`kind` in `stdout`.
pub fn last_event(stdout: &str, phase: &str, kind: &str) -> serde_json::Value {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .rfind(|v| v["phase"] == phase && v["kind"] == kind)
        .unwrap_or_else(|| panic!("no {phase} {kind} event in:\n{stdout}"))
}

//! Helpers shared by the end-to-end tests: locating the built binaries,
//! running `ferry` in the bastion namespace with a private HOME, and reading
//! its JSON events.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test code

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ferry_tests::testbed::Testbed;
use serde_json::Value;

pub mod agents;
pub mod certs;
pub mod real;
pub mod transfer;
pub mod webdriver;

/// `target/debug/ferry`, or `FERRY_BIN`.
pub fn ferry_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("FERRY_BIN") {
        return PathBuf::from(p);
    }
    // target/debug/deps/<test> -> target/debug/ferry
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().parent().unwrap().join("ferry");
    assert!(
        p.is_file(),
        "ferry binary not found at {}; run `cargo build -p ferry-coordinator` or set FERRY_BIN",
        p.display()
    );
    p
}

/// The static agent, or `FERRY_AGENT_BIN`.
pub fn agent_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("FERRY_AGENT_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap();
    let p = target.join("x86_64-unknown-linux-musl/agent/ferry-agent");
    assert!(
        p.is_file(),
        "static agent not found at {}; run `bash packaging/build-agent.sh` or set FERRY_AGENT_BIN",
        p.display()
    );
    p
}

/// A private HOME (ssh known_hosts, ~/.ferry) for one test.
pub struct Bastion {
    netns: String,
    pub home: tempfile::TempDir,
}

impl Bastion {
    pub fn new(tb: &Testbed) -> Self {
        Self {
            netns: tb.bastion_netns().to_string(),
            home: tempfile::tempdir().unwrap(),
        }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.netns]).arg(ferry_bin());
        c.env("HOME", self.home.path())
            .env("FERRY_HOME", self.home.path().join(".ferry"))
            .env("FERRY_AGENT_BIN", agent_bin())
            .env_remove("FERRY_SSH_PASSWD")
            .env_remove("FERRY_CLUSTER")
            .args(args);
        c
    }

    /// Runs ferry to completion.
    pub fn ferry(&self, args: &[&str]) -> Output {
        logged(args, self.command(args))
    }

    /// Runs ferry to completion with the image store `store`
    /// (`FERRY_DATA_ROOT`).
    pub fn ferry_store(&self, store: &Path, args: &[&str]) -> Output {
        let mut c = self.command(args);
        c.env("FERRY_DATA_ROOT", store);
        logged(args, c)
    }

    /// Runs `ferry --output json ...` and parses every stdout line.
    pub fn ferry_json(&self, args: &[&str]) -> (Output, Vec<Value>) {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        let out = self.ferry(&all);
        let events = json_lines(&out.stdout);
        (out, events)
    }
}

/// Runs `c` (ferry with `args`) to completion, echoing its output to the
/// test log.
fn logged(args: &[&str], mut c: Command) -> Output {
    let out = c.output().unwrap();
    eprintln!(
        "$ ferry {}\n-- exit {:?}\n-- stdout:\n{}\n-- stderr:\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Parses stdout as JSON lines, failing the test on any non-JSON line.
pub fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))
        })
        .collect()
}

pub fn find<'e>(events: &'e [Value], node: &str, phase: &str, kind: &str) -> Vec<&'e Value> {
    events
        .iter()
        .filter(|e| e["node"] == node && e["phase"] == phase && e["kind"] == kind)
        .collect()
}

/// The run's `timings ...` summary event (per-step wall time), if any.
pub fn timings_event(ev: &[Value]) -> Option<&Value> {
    ev.iter().rev().find(|e| {
        e["phase"] == "run"
            && e["node"] == ""
            && e["message"].as_str().unwrap_or("").starts_with("timings")
    })
}

/// `total_ms=N timings: ...` of a run, for measurement lines.
pub fn timings(ev: &[Value]) -> String {
    let e = timings_event(ev).expect("a timings event");
    format!("total_ms={} {}", e["counters"]["duration_ms"], e["message"])
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Stages the fixture cluster image (`packaging/fixtures/build-kubernetes.sh`)
/// under `out/kubernetes`, with the fixture binaries built beside `ferry`
/// (or `KUBE_FIXTURE_BIN_DIR`).
pub fn stage_fixture_image(out: &Path) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let bins = std::env::var_os("KUBE_FIXTURE_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| ferry_bin().parent().unwrap().to_path_buf());
    let dst = out.join("kubernetes");
    let st = Command::new("bash")
        .arg(repo.join("packaging/fixtures/build-kubernetes.sh"))
        .arg(&dst)
        .env("KUBE_FIXTURE_BIN_DIR", &bins)
        .status()
        .unwrap();
    assert!(st.success(), "staging the fixture image failed");
    dst
}

/// `ferry run` of the fixture image (staged under `work`) with node 0 as
/// master and every other testbed node as worker, as root with its
/// password; asserts it succeeded. Returns the nodes' IPs.
pub fn run_fixture_cluster(tb: &Testbed, b: &Bastion, work: &Path) -> Vec<String> {
    let ip: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let image = stage_fixture_image(work);
    let workers = ip[1..].join(",");
    let out = b.ferry(&[
        "run",
        image.to_str().unwrap(),
        "--masters",
        &ip[0],
        "--nodes",
        &workers,
        "-p",
        tb.password("root").unwrap(),
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    ip
}

/// The JSON records the kubeadm/kubelet fixtures logged on node `i`.
pub fn fixture_log(tb: &Testbed, i: usize) -> Vec<Value> {
    let text = tb
        .exec_ok(
            i,
            &[
                "sh",
                "-c",
                "cat /var/log/kubeadm-fixture.log 2>/dev/null; true",
            ],
        )
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Closes root login on node `i` (sshd re-reads its config on SIGHUP) and
/// waits until root is refused while alice still gets in.
pub fn close_root_login(tb: &Testbed, i: usize) {
    tb.exec_ok(
        i,
        &[
            "sh",
            "-c",
            "sed -i 's/^PermitRootLogin .*/PermitRootLogin no/' /etc/ssh/ferry-testbed/sshd_config && kill -HUP \"$(cat /run/sshd.pid)\"",
        ],
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let closed = ferry_tests::poll_until(deadline, || {
        let root = tb.ssh(i, "root", "true").unwrap();
        let alice = tb.ssh(i, "alice", "true").unwrap();
        !root.status.success() && alice.status.success()
    });
    assert!(closed, "node{}: root login still open", i + 1);
}

/// Runs `argv` on node `i` with `data` on its stdin; requires success.
pub fn node_stdin(tb: &Testbed, i: usize, argv: &[&str], data: &[u8]) {
    use std::io::Write;
    use std::process::Stdio;
    let mut cmd = tb.node_command(i, argv[0]).unwrap();
    cmd.args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{argv:?} on node {i}: {}",
        stderr(&out)
    );
}

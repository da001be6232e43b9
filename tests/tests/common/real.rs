//! The real tier: real Kubernetes (built from the Go module proxy by
//! `packaging/real/build-binaries.sh`, cached by version), the labring-layout
//! cluster image and the pod network image built with `ferry build` by
//! `packaging/real/build-image.sh`, on `--kube` testbed nodes. Helpers to
//! build the images into a bastion's store, query the cluster with the real
//! kubectl on a node, and wait for its state.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_tests::poll::poll_until;
use ferry_tests::testbed::{Testbed, TestbedConfig};
use serde_json::Value;

use super::{Bastion, ferry_bin};

pub const KUBE_VERSION: &str = "v1.34.4";
pub const ROOTFS_IMAGE: &str = "localhost/ferry/kubernetes:v1.34.4";
pub const NETWORK_IMAGE: &str = "localhost/ferry/network:v1";
/// labring/helm's layout: `opt/helm`, CMD copies it to /usr/bin.
pub const HELM_IMAGE: &str = "localhost/ferry/helm:v3.21.4";
/// Chart apps with the canonical `helm upgrade -i $(NAME) ...` CMD and
/// different NAME/NAMESPACE/CHARTS/HELM_OPTS.
pub const HELLO_A: &str = "localhost/ferry/hello-a:v1";
pub const HELLO_B: &str = "localhost/ferry/hello-b:v1";
pub const VIP: &str = "10.103.97.2";
pub const ADMIN: &str = "/etc/kubernetes/admin.conf";

/// One real-tier cluster at a time on this machine (2 cores): a lock file
/// held for the life of the guard, so parallel test runners queue.
pub struct RealLock(#[allow(dead_code)] std::fs::File);

pub fn lock() -> RealLock {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/run/ferry-real-tier.lock")
        .unwrap();
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).unwrap();
    RealLock(f)
}

/// A real-tier test's world: the machine lock, a memory watch, `n` kube
/// testbed nodes, a bastion with both images in its store, root's password
/// and the known_hosts path.
pub struct Setup {
    pub tb: Testbed,
    pub b: Bastion,
    pub pw: String,
    pub kh: String,
    pub mem: MemWatch,
    _stage: tempfile::TempDir,
    _lock: RealLock,
}

impl Setup {
    pub fn new(nodes: usize) -> Self {
        let lock = lock();
        let mem = MemWatch::start();
        let tb = Testbed::up(TestbedConfig {
            nodes,
            kube: true,
            ..Default::default()
        })
        .expect("testbed up");
        let b = Bastion::new(&tb);
        let stage = tempfile::tempdir().unwrap();
        build_images(&b, &stage.path().join("stage"));
        let pw = tb.password("root").unwrap().to_string();
        let kh = b.home().join("known_hosts").to_str().unwrap().to_string();
        Self {
            tb,
            b,
            pw,
            kh,
            mem,
            _stage: stage,
            _lock: lock,
        }
    }

    /// Node `i`'s address.
    pub fn ip(&self, i: usize) -> String {
        self.tb.node(i).unwrap().ip.to_string()
    }

    /// `ferry --output json run ROOTFS NETWORK` with nodes `masters` and
    /// `nodes` (indexes); asserts success, prints the step timings as
    /// `REAL-MEASURE run <what>` and returns the events.
    pub fn run_cluster(&self, masters: &[usize], nodes: &[usize], what: &str) -> Vec<Value> {
        let list = |ix: &[usize]| ix.iter().map(|i| self.ip(*i)).collect::<Vec<_>>().join(",");
        let (m, n) = (list(masters), list(nodes));
        let mut args = vec!["run", ROOTFS_IMAGE, NETWORK_IMAGE, "--masters", &m];
        if !nodes.is_empty() {
            args.extend(["--nodes", &n]);
        }
        args.extend(["-p", &self.pw, "--known-hosts", &self.kh]);
        let (out, ev) = self.b.ferry_json(&args);
        assert!(
            out.status.success(),
            "ferry run failed: {}",
            super::stderr(&out)
        );
        eprintln!("REAL-MEASURE run {what}: {}", super::timings(&ev));
        ev
    }
}

/// Names of the bootstrap-token Secrets in kube-system.
pub fn token_secrets(tb: &Testbed, via: usize) -> Vec<String> {
    let v = kubectl_json(
        tb,
        via,
        &[
            "-n",
            "kube-system",
            "get",
            "secrets",
            "--field-selector",
            "type=bootstrap.kubernetes.io/token",
        ],
    );
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Builds (or takes from the cache) the real binaries and both images into
/// the bastion's image store.
pub fn build_images(b: &Bastion, stage: &Path) {
    build_images_of(b, stage, KUBE_VERSION);
}

/// [`build_images`] for another Kubernetes version (`v1.35.4`: the
/// upgrade's target, built and cached like the first).
pub fn build_images_of(b: &Bastion, stage: &Path, version: &str) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let t = Instant::now();
    let st = Command::new("bash")
        .arg(repo.join("packaging/real/build-image.sh"))
        .arg(version)
        .arg(stage)
        .env("FERRY_BIN", ferry_bin())
        .env("FERRY_HOME", b.home().join(".ferry"))
        .env_remove("FERRY_DATA_ROOT")
        .status()
        .unwrap();
    assert!(st.success(), "packaging/real/build-image.sh failed");
    eprintln!(
        "REAL-MEASURE images built in {:.1}s",
        t.elapsed().as_secs_f64()
    );
}

/// Runs the real kubectl on node `i` with admin.conf; returns (ok, stdout+stderr).
pub fn kubectl(tb: &Testbed, i: usize, args: &[&str]) -> (bool, String) {
    let mut argv = vec!["kubectl", "--kubeconfig", ADMIN, "--request-timeout=20s"];
    argv.extend_from_slice(args);
    let out = tb.exec(i, &argv).unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub fn kubectl_ok(tb: &Testbed, i: usize, args: &[&str]) -> String {
    let (ok, text) = kubectl(tb, i, args);
    assert!(ok, "kubectl {} on node {i} failed:\n{text}", args.join(" "));
    text
}

pub fn kubectl_json(tb: &Testbed, i: usize, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&kubectl_ok(tb, i, &a)).unwrap()
}

/// Waits until `cond` holds, printing the last state on timeout.
pub fn wait(what: &str, secs: u64, mut cond: impl FnMut() -> Result<(), String>) {
    let t = Instant::now();
    let mut last = String::new();
    let ok = poll_until(t + Duration::from_secs(secs), || match cond() {
        Ok(()) => true,
        Err(e) => {
            last = e;
            false
        }
    });
    assert!(
        ok,
        "timed out after {secs}s waiting for {what}; last:\n{last}"
    );
    eprintln!("REAL-MEASURE {what}: {:.1}s", t.elapsed().as_secs_f64());
}

fn ready(node: &Value) -> bool {
    node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Every listed node registered and Ready.
pub fn wait_nodes_ready(tb: &Testbed, via: usize, names: &[&str], secs: u64) {
    wait(&format!("nodes {names:?} Ready"), secs, || {
        let (ok, text) = kubectl(tb, via, &["get", "nodes", "-o", "json"]);
        if !ok {
            return Err(text);
        }
        let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        for n in names {
            let node = items.iter().find(|i| i["metadata"]["name"] == *n);
            match node {
                Some(node) if ready(node) => {}
                _ => return Err(format!("{n} not Ready yet")),
            }
        }
        Ok(())
    });
}

/// Pods of kube-system whose name starts with `prefix`: (name, phase, ready).
pub fn system_pods(tb: &Testbed, via: usize) -> Vec<(String, String, bool)> {
    let v = kubectl_json(tb, via, &["-n", "kube-system", "get", "pods"]);
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let ready = p["status"]["containerStatuses"]
                .as_array()
                .is_some_and(|c| !c.is_empty() && c.iter().all(|s| s["ready"] == true));
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                p["status"]["phase"].as_str().unwrap_or("").to_string(),
                ready,
            )
        })
        .collect()
}

/// Waits until every pod named with one of `prefixes` exists, is Running
/// and ready (`counts[i]` pods at least for `prefixes[i]`).
pub fn wait_system_pods(tb: &Testbed, via: usize, want: &[(&str, usize)], secs: u64) {
    wait(&format!("kube-system pods {want:?} Running"), secs, || {
        let pods = system_pods(tb, via);
        for (prefix, n) in want {
            let running = pods
                .iter()
                .filter(|(name, phase, ready)| {
                    name.starts_with(prefix) && phase == "Running" && *ready
                })
                .count();
            if running < *n {
                return Err(format!("{prefix}: {running}/{n} running; pods: {pods:?}"));
            }
        }
        Ok(())
    });
}

/// Image references in containerd's k8s.io namespace on node `i`, and the
/// registries its content was fetched from (distribution.source labels).
pub fn containerd_sources(tb: &Testbed, i: usize) -> (Vec<String>, Vec<String>) {
    let images = tb
        .exec_ok(i, &["ctr", "-n", "k8s.io", "images", "ls", "-q"])
        .unwrap();
    let content = tb
        .exec_ok(i, &["ctr", "-n", "k8s.io", "content", "ls"])
        .unwrap();
    // Labels are comma-separated key=value pairs in one column.
    let mut sources: Vec<String> = content
        .split_whitespace()
        .flat_map(|w| w.split(','))
        .filter_map(|l| l.strip_prefix("containerd.io/distribution.source."))
        .filter_map(|l| l.split_once('=').map(|(registry, _)| registry.to_string()))
        .collect();
    sources.sort();
    sources.dedup();
    (
        images
            .lines()
            .filter(|l| !l.starts_with("sha256:"))
            .map(str::to_string)
            .collect(),
        sources,
    )
}

/// The bastion-side memory high-water mark while alive (MemTotal -
/// MemAvailable of the machine, sampled every 500 ms).
pub struct MemWatch {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<()>>,
    pub samples: Arc<Mutex<u64>>,
}

fn used_kib() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |k: &str| {
        text.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field("MemTotal:").saturating_sub(field("MemAvailable:"))
}

impl MemWatch {
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(used_kib()));
        let samples = Arc::new(Mutex::new(0));
        let (s, p, n) = (stop.clone(), peak.clone(), samples.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(used_kib(), Ordering::Relaxed);
                *n.lock().unwrap() += 1;
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        Self {
            stop,
            peak,
            handle: Some(handle),
            samples,
        }
    }

    /// Peak used memory in MiB so far.
    pub fn peak_mib(&self) -> u64 {
        self.peak.load(Ordering::Relaxed) / 1024
    }
}

impl Drop for MemWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// What `reset` (or, with `agent_stays`, `delete`, which keeps the host's
/// agent for a later add) must leave on node `i`: no kubelet/containerd/
/// etcd/apiserver processes, no /etc/kubernetes, no kube-proxy rules, no
/// mounts of the cluster, no ferry files. Returns the problems found.
pub fn leftovers(tb: &Testbed, i: usize, agent_stays: bool) -> Vec<String> {
    let mut bad = Vec::new();
    let ps = tb.exec_ok(i, &["ps", "-eo", "comm"]).unwrap();
    for p in [
        "kubelet",
        "containerd",
        "containerd-shim",
        "etcd",
        "kube-apiserver",
        "kube-proxy",
        "registry",
        if agent_stays {
            "kubelet"
        } else {
            "ferry-agent"
        },
    ] {
        if ps.lines().any(|l| l.trim() == p) {
            bad.push(format!("process {p} still runs"));
        }
    }
    for path in [
        "/etc/kubernetes",
        "/var/lib/kubelet",
        "/var/lib/etcd",
        "/etc/cni/net.d",
        if agent_stays {
            "/var/lib/ferry/data"
        } else {
            "/var/lib/ferry"
        },
        "/etc/containerd",
        "/usr/bin/kubelet",
        "/root/.kube",
    ] {
        if tb.exec(i, &["test", "-e", path]).unwrap().status.success() {
            bad.push(format!("{path} still exists"));
        }
    }
    let nft = tb.exec_ok(i, &["nft", "list", "tables"]).unwrap();
    if nft.contains("kube-proxy") {
        bad.push(format!("nftables still has kube-proxy's tables: {nft}"));
    }
    let ipt = tb
        .exec(i, &["iptables-save"])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if ipt.contains("KUBE-") {
        bad.push("iptables still has KUBE- chains".into());
    }
    let mounts = tb.exec_ok(i, &["cat", "/proc/self/mounts"]).unwrap();
    for m in mounts.lines() {
        let target = m.split_whitespace().nth(1).unwrap_or("");
        if [
            "/var/lib/kubelet",
            "/run/containerd",
            "/run/netns",
            "/var/lib/ferry",
        ]
        .iter()
        .any(|p| target.starts_with(p))
            || target.starts_with("/var/lib/containerd/")
        {
            bad.push(format!("mount left: {target}"));
        }
    }
    let hosts = tb.exec_ok(i, &["cat", "/etc/hosts"]).unwrap();
    if hosts.contains("# ferry") || hosts.contains("sealos.hub") {
        bad.push("/etc/hosts still has ferry's lines".into());
    }
    bad
}

/// Names of etcd's members, asked on master `i` over etcd's gRPC gateway
/// with the healthcheck client certificate.
pub fn etcd_members(tb: &Testbed, i: usize) -> Vec<String> {
    let out = tb
        .exec_ok(
            i,
            &[
                "curl",
                "-sS",
                "--cacert",
                "/etc/kubernetes/pki/etcd/ca.crt",
                "--cert",
                "/etc/kubernetes/pki/etcd/healthcheck-client.crt",
                "--key",
                "/etc/kubernetes/pki/etcd/healthcheck-client.key",
                "-X",
                "POST",
                "-d",
                "{}",
                "https://127.0.0.1:2379/v3/cluster/member/list",
            ],
        )
        .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    let mut names: Vec<String> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap_or("").to_string())
        .collect();
    names.sort();
    names
}

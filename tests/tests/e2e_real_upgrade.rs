//! The real tier: a Kubernetes upgrade by running a newer cluster image.
//! A 1.34 cluster of 3 masters + 1 worker (real kubeadm, kubelet, etcd,
//! control plane; three so etcd keeps quorum while one member restarts)
//! is upgraded to 1.35 by `ferry run <1.35 image>`:
//! - `ferry plan` says so beforehand; 1.34 → 1.36 is refused before any
//!   host changes (the stored Clusterfile byte for byte the same);
//! - the coordinator is SIGKILLed once master0 is done; a plain re-run
//!   finishes without running master0's `kubeadm upgrade apply` again;
//! - the apiserver and every kubelet report 1.35; a Deployment behind a
//!   Service (and the apiserver VIP) answered throughout — a client loop
//!   on the worker counts the failed requests (REAL-MEASURE);
//! - a downgrade back to 1.34 is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::real::{self, NETWORK_IMAGE, ROOTFS_IMAGE};
use common::stderr;
use ferry_shared::clusterfile::Clusterfile;
use ferry_tests::testbed::Testbed;
use serde_json::Value;

const TARGET: &str = "v1.35.4";
const TARGET_IMAGE: &str = "localhost/ferry/kubernetes:v1.35.4";

const WORKLOAD: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      tolerations: [{key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}]
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: web}}}
      containers:
      - name: web
        image: sealos.hub:5000/ferry/busybox:1
        command: ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: default}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: web}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"#;

fn apply_workload(tb: &Testbed) {
    let mut cmd = tb.node_command(0, "kubectl").unwrap();
    cmd.args(["--kubeconfig", real::ADMIN, "apply", "-f", "-"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(WORKLOAD.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "kubectl apply: {}", stderr(&out));
    real::wait("3 web pods ready", 240, || {
        let v = real::kubectl_json(tb, 0, &["get", "deployment", "web"]);
        (v["status"]["readyReplicas"] == 3)
            .then_some(())
            .ok_or_else(|| v["status"].to_string())
    });
}

/// Failures of one target of the client loop: how many, and the outage
/// windows (wall-clock ms of the first and last failed request in a row).
#[derive(Default)]
struct Outages {
    failed: u64,
    windows: Vec<(u64, u64)>,
    open: Option<(u64, u64)>,
}

impl Outages {
    fn note(&mut self, ok: bool) {
        let now = now_ms();
        match (ok, self.open) {
            (true, Some(w)) => {
                self.windows.push(w);
                self.open = None;
            }
            (true, None) => {}
            (false, w) => {
                self.failed += 1;
                self.open = Some((w.map_or(now, |w| w.0), now));
            }
        }
    }

    /// `N failed, longest Xs, windows [start+len ...]` (starts as ms since
    /// the epoch, to line up with the events' ts_ms).
    fn report(mut self) -> (u64, String) {
        if let Some(w) = self.open.take() {
            self.windows.push(w);
        }
        let longest = self.windows.iter().map(|(a, b)| b - a).max().unwrap_or(0);
        let w: Vec<String> = self
            .windows
            .iter()
            .map(|(a, b)| format!("{a}+{:.1}s", (b - a) as f64 / 1000.0))
            .collect();
        (
            self.failed,
            format!(
                "{} failed, longest outage {:.1}s, windows [{}]",
                self.failed,
                longest as f64 / 1000.0,
                w.join(" ")
            ),
        )
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Requests from the worker's host to the Service and to the apiserver
/// VIP, one pair per round, until stopped.
struct ClientLoop {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<(u64, Outages, Outages)>>,
}

impl ClientLoop {
    fn start(tb: &Testbed, node: usize, cluster_ip: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let mut web = tb.node_command(node, "curl").unwrap();
        web.args([
            "-sf",
            "-m",
            "2",
            "-o",
            "/dev/null",
            &format!("http://{cluster_ip}/"),
        ]);
        // On each change of the Service's state (answering ↔ failing), the
        // node's view of it is saved: the failing request verbosely, the
        // nftables ruleset kube-proxy wrote, iptables and routes.
        let mut snap = tb.node_command(node, "sh").unwrap();
        snap.args([
            "-c",
            &format!(
                "curl -sv -m 2 -o /dev/null http://{cluster_ip}/ 2>&1; echo '--- nft'; nft list ruleset 2>&1; \
                 echo '--- iptables'; iptables-save 2>&1; echo '--- routes'; ip route 2>&1; ip rule 2>&1; \
                 echo '--- conntrack'; cat /proc/net/nf_conntrack 2>/dev/null | grep -c . "
            ),
        ]);
        let mut vip = tb.node_command(node, "curl").unwrap();
        vip.args(["-sk", "-m", "2", "-o", "/dev/null", "-w", "%{http_code}"]);
        vip.arg(format!("https://{}:6443/livez", real::VIP));
        let handle = std::thread::spawn(move || {
            let (mut rounds, mut svc, mut api) = (0, Outages::default(), Outages::default());
            let mut last_ok = false;
            let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("real-upgrade-diag");
            let _ = std::fs::create_dir_all(&dir);
            while !s.load(Ordering::Relaxed) {
                rounds += 1;
                let ok = web.status().map(|st| st.success()).unwrap_or(false);
                svc.note(ok);
                if ok != last_ok {
                    last_ok = ok;
                    if let Ok(o) = snap.output() {
                        let f = dir.join(format!(
                            "{}-{}.txt",
                            now_ms(),
                            if ok { "ok" } else { "failing" }
                        ));
                        let _ = std::fs::write(&f, &o.stdout);
                        eprintln!(
                            "REAL-DIAG Service {} at {}: {}",
                            if ok { "answers" } else { "fails" },
                            now_ms(),
                            f.display()
                        );
                    }
                }
                // Any HTTP answer (401/403/200) means an apiserver answered.
                let code = vip
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).to_string());
                api.note(code.is_ok_and(|c| c.starts_with(['2', '4'])));
            }
            (rounds, svc, api)
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }

    /// (rounds, failed requests, a report per target).
    fn finish(mut self) -> (u64, u64, String) {
        self.stop.store(true, Ordering::Relaxed);
        let Some((rounds, svc, api)) = self.handle.take().map(|h| h.join().unwrap()) else {
            return (0, 0, String::new());
        };
        let (f1, r1) = svc.report();
        let (f2, r2) = api.report();
        (rounds, f1 + f2, format!("Service: {r1}; VIP: {r2}"))
    }
}

/// `nft monitor` on a node during the upgrade: every table, chain, set
/// and map change with the wall-clock ms it was seen at, saved beside the
/// Service snapshots (who deletes or flushes what, and when).
struct NftTrace {
    child: std::process::Child,
    reader: Option<std::thread::JoinHandle<()>>,
    /// Stops the monitor inside the node (`nsenter -p` forks: killing the
    /// nsenter child leaves `nft` holding the pipe).
    stop: Command,
}

impl NftTrace {
    fn start(tb: &Testbed, node: usize) -> Self {
        // Line-buffered: a killed `nft monitor` keeps nothing it buffered.
        let mut cmd = tb.node_command(node, "stdbuf").unwrap();
        cmd.args(["-oL", "nft", "monitor"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("real-upgrade-diag");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("nft-monitor.txt");
        let reader = std::thread::spawn(move || {
            use std::io::{BufRead, Write};
            let Ok(mut f) = std::fs::File::create(&path) else {
                return;
            };
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = writeln!(f, "{} {line}", now_ms());
            }
        });
        let mut stop = tb.node_command(node, "pkill").unwrap();
        stop.args(["-f", "^nft monitor"]);
        Self {
            child,
            reader: Some(reader),
            stop,
        }
    }

    fn finish(mut self) {
        let _ = self.stop.status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// What the worker's Service path went through (for outages in the
/// measurement): its kube-proxy's logs (current and previous container),
/// the web pods' placement and the cluster's recent events.
fn diagnose_service_path(tb: &Testbed) {
    let pods = real::kubectl(tb, 0, &["get", "pods", "-A", "-o", "wide"]).1;
    eprintln!("REAL-DIAG pods:\n{pods}");
    let proxy = pods
        .lines()
        .find(|l| l.contains("kube-proxy-") && l.contains("node4"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("")
        .to_string();
    for prev in [false, true] {
        let mut args = vec!["logs", "-n", "kube-system", proxy.as_str(), "--tail", "40"];
        if prev {
            args.push("--previous");
        }
        let (_, logs) = real::kubectl(tb, 0, &args);
        eprintln!("REAL-DIAG {proxy} logs (previous: {prev}):\n{logs}");
    }
    let events = real::kubectl(tb, 0, &["get", "events", "-A", "--sort-by=.lastTimestamp"]).1;
    let tail: Vec<&str> = events.lines().rev().take(60).collect();
    eprintln!("REAL-DIAG events (newest first):\n{}", tail.join("\n"));
}

/// The upgrade's per-host parts as (ts_ms, host, kind, message) lines.
fn upgrade_timeline(ev: &[Value]) -> String {
    ev.iter()
        .filter(|e| {
            e["node"] != ""
                && (e["kind"] == "started" || e["kind"] == "finished")
                && e["message"].as_str().unwrap_or("").starts_with("upgrade")
        })
        .map(|e| {
            format!(
                "{} {} {} {}",
                e["ts_ms"], e["node"], e["kind"], e["message"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn versions(tb: &Testbed) -> (String, Vec<String>) {
    let v = real::kubectl_json(tb, 0, &["version"]);
    let server = v["serverVersion"]["gitVersion"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let n = real::kubectl_json(tb, 0, &["get", "nodes"]);
    let kubelets = n["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["status"]["nodeInfo"]["kubeletVersion"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    (server, kubelets)
}

/// `ferry run <image>` in the background until master0's kubelet part of
/// the upgrade is done, then SIGKILL.
fn run_until_master0_done(b: &common::Bastion, args: &[&str], master0: &str) -> Vec<Value> {
    let mut cmd = b.command(&[&["--output", "json"], args].concat());
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        let Ok(ev) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let done =
            ev["node"] == master0 && ev["kind"] == "finished" && ev["message"] == "upgrade kubelet";
        seen.push(ev);
        if done {
            child.kill().unwrap();
            break;
        }
    }
    let st = child.wait().unwrap();
    assert!(!st.success(), "the run was to be killed mid-upgrade");
    seen
}

#[test]
fn real_upgrade_1_34_to_1_35_with_a_kill_in_the_middle() {
    let setup = real::Setup::new(4);
    let (tb, b, pw, kh) = (&setup.tb, &setup.b, &setup.pw, setup.kh.as_str());
    let stage = tempfile::tempdir().unwrap();
    real::build_images_of(b, &stage.path().join("next"), TARGET);
    let (m0, m1, m2, w) = (setup.ip(0), setup.ip(1), setup.ip(2), setup.ip(3));
    let run = [
        "run",
        ROOTFS_IMAGE,
        NETWORK_IMAGE,
        "--masters",
        &format!("{m0},{m1},{m2}"),
        "--nodes",
        &w,
        "-p",
        pw,
        "--known-hosts",
        kh,
    ];
    let (out, ev) = b.ferry_json(&run);
    assert!(out.status.success(), "ferry run: {}", stderr(&out));
    eprintln!("REAL-MEASURE run 3+1 v1.34.4: {}", common::timings(&ev));
    real::wait_nodes_ready(tb, 0, &["node1", "node2", "node3", "node4"], 300);
    apply_workload(tb);
    let cf_path = b.home().join(".ferry/default/Clusterfile");
    let stored = std::fs::read_to_string(&cf_path).unwrap();

    // 1.34 → 1.36 skips a minor: refused, nothing changed.
    let work = tempfile::tempdir().unwrap();
    let skip = work.path().join("skip");
    std::fs::create_dir_all(&skip).unwrap();
    std::fs::write(
        skip.join("Kubefile"),
        format!("FROM {ROOTFS_IMAGE}\nLABEL version=\"v1.36.1\"\n"),
    )
    .unwrap();
    let out = b.ferry(&[
        "build",
        "-t",
        "localhost/test/kubernetes:v1.36.1",
        skip.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (out, ev) = b.ferry_json(&[
        "run",
        "localhost/test/kubernetes:v1.36.1",
        "-p",
        pw,
        "--known-hosts",
        kh,
    ]);
    assert!(!out.status.success());
    let text = format!("{}{}", common::stdout(&out), stderr(&out));
    assert!(text.contains("skips a minor version"), "{text}");
    assert!(
        !ev.iter().any(|e| e["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("distribute:")),
        "a refused upgrade touched hosts"
    );
    assert_eq!(
        std::fs::read_to_string(&cf_path).unwrap(),
        stored,
        "Clusterfile kept"
    );

    // The plan of the upgrade, beforehand.
    let mut cf = Clusterfile::parse(&stored).unwrap();
    cf.cluster.spec.image[0] = TARGET_IMAGE.to_string();
    let plan_file = work.path().join("Clusterfile.upgrade");
    std::fs::write(&plan_file, cf.to_yaml(true).unwrap()).unwrap();
    let out = b.ferry(&["plan", "-f", plan_file.to_str().unwrap()]);
    let plan = common::stdout(&out);
    assert!(out.status.success(), "{plan}{}", stderr(&out));
    assert!(
        plan.contains(&format!("upgrade {} → {TARGET}", real::KUBE_VERSION)),
        "{plan}"
    );
    assert!(
        plan.contains(&format!("kubeadm upgrade apply {TARGET}")),
        "{plan}"
    );
    eprintln!("{plan}");

    // The upgrade, killed after master0, then resumed.
    let svc = real::kubectl_json(tb, 0, &["get", "service", "web"]);
    let client = ClientLoop::start(tb, 3, svc["spec"]["clusterIP"].as_str().unwrap());
    let trace = NftTrace::start(tb, 3);
    let t = std::time::Instant::now();
    let up = ["run", TARGET_IMAGE, "-p", pw, "--known-hosts", kh];
    let first = run_until_master0_done(b, &up, &m0);
    let applied = |ev: &[Value]| {
        ev.iter().any(|e| {
            e["node"] == m0.as_str() && e["kind"] == "started" && e["message"] == "upgrade: kubeadm"
        })
    };
    assert!(
        applied(&first),
        "master0's kubeadm part ran in the first run; its last events: {:#?}",
        &first[first.len().saturating_sub(15)..]
    );
    let (out, ev) = b.ferry_json(&up);
    let took = t.elapsed().as_secs_f64();
    let (rounds, failed, outages) = client.finish();
    trace.finish();
    assert!(out.status.success(), "resumed upgrade: {}", stderr(&out));
    assert!(!applied(&ev), "master0's kubeadm upgrade apply ran again");
    eprintln!(
        "REAL-MEASURE upgrade 3+1 {} -> {TARGET} resumed: {}",
        real::KUBE_VERSION,
        common::timings(&ev)
    );
    eprintln!(
        "REAL-MEASURE upgrade wall {took:.1}s (kill + resume); client rounds {rounds}, failed requests {failed} (Service + VIP)"
    );
    eprintln!("REAL-MEASURE upgrade outages: {outages}");
    diagnose_service_path(tb);
    eprintln!(
        "REAL-MEASURE upgrade timeline:\n{}\n{}",
        upgrade_timeline(&first),
        upgrade_timeline(&ev)
    );
    let (server, kubelets) = versions(tb);
    assert_eq!(server, TARGET);
    assert_eq!(kubelets, vec![TARGET.to_string(); 4]);
    let v = real::kubectl_json(tb, 0, &["get", "deployment", "web"]);
    assert_eq!(v["status"]["readyReplicas"], 3, "{}", v["status"]);
    let nodes = real::kubectl_json(tb, 0, &["get", "nodes"]);
    for n in nodes["items"].as_array().unwrap() {
        assert!(
            n["spec"]["unschedulable"].is_null(),
            "left cordoned: {}",
            n["metadata"]["name"]
        );
    }

    // A downgrade is refused.
    let (out, _) = b.ferry_json(&["run", ROOTFS_IMAGE, "-p", pw, "--known-hosts", kh]);
    assert!(!out.status.success());
    let text = format!("{}{}", common::stdout(&out), stderr(&out));
    assert!(text.contains("downgrade"), "{text}");
    assert_eq!(versions(tb).0, TARGET);
    eprintln!(
        "REAL-MEASURE upgrade peak memory {} MiB",
        setup.mem.peak_mib()
    );
}

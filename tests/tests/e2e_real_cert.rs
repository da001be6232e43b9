//! The real tier, 2 masters + 1 worker (real kubeadm, kubelet, containerd,
//! stacked etcd and control plane): `ferry cert --renew`
//! - renews every leaf certificate and kubeconfig client certificate on
//!   both masters (newer notBefore, new serial, same subject/SANs/usages),
//!   the CAs unchanged, each leaf verified by openssl against its CA;
//! - restarts etcd, kube-apiserver, kube-controller-manager and
//!   kube-scheduler (their restart counts grow), and the apiserver and etcd
//!   then serve the renewed certificates (s_client serials);
//! - the cluster keeps working: nodes Ready, a new Deployment (controller-
//!   manager + scheduler) runs;
//! - the refreshed admin kubeconfig: `kubectl --kubeconfig
//!   /etc/kubernetes/admin.conf get nodes` on master0 works, master0's
//!   /root/.kube/config and the bastion's `etc/admin.conf` equal it, and the
//!   bastion's copy works from the worker through the VIP;
//! - `--check-expiration` reports the nodes' new dates, same as the bastion.
//!
//! A probe on the worker asks `/readyz` through the VIP every 0.5 s during
//! the renewal. Prints `REAL-MEASURE` lines (renew wall time, per master
//! the time from etcd's stop to the apiserver's readiness, the probe's
//! failures and longest outage).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::certs::{assert_renewed, node_certs, served_serial, trim_serial};
use common::real::{self, ADMIN, kubectl, kubectl_ok};
use common::stderr;
use ferry_shared::pki::kube::RENEWABLE;
use ferry_tests::testbed::Testbed;
use serde_json::Value;

const STATIC: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: after-renew, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: after-renew}}
  template:
    metadata: {labels: {app: after-renew}}
    spec:
      containers:
      - name: c
        image: sealos.hub:5000/ferry/busybox:1
        command: ["sleep", "100000"]
"#;

fn put(tb: &Testbed, i: usize, argv: &[&str], data: &str) {
    common::node_stdin(tb, i, argv, data.as_bytes());
}

/// Restart counts of the static pods (`<component>-<node>` -> count).
fn restarts(tb: &Testbed) -> BTreeMap<String, u64> {
    let v = real::kubectl_json(tb, 0, &["-n", "kube-system", "get", "pods"]);
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            let name = p["metadata"]["name"].as_str()?.to_string();
            STATIC
                .iter()
                .any(|s| name.starts_with(&format!("{s}-node")))
                .then(|| {
                    (
                        name,
                        p["status"]["containerStatuses"][0]["restartCount"]
                            .as_u64()
                            .unwrap_or(0),
                    )
                })
        })
        .collect()
}

/// `/readyz` through the VIP on the worker every 0.5 s until `stop`:
/// (probes, failures, longest run of failures in seconds).
fn probe(tb: &Testbed, worker: usize, stop: &AtomicBool) -> (u32, u32, f64) {
    let (mut n, mut failed, mut longest) = (0, 0, 0.0f64);
    let mut down_since: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let ok = tb
            .exec(
                worker,
                &[
                    "kubectl",
                    "--kubeconfig",
                    "/root/admin.conf",
                    "--request-timeout=2s",
                    "get",
                    "--raw=/readyz",
                ],
            )
            .map(|o| o.status.success())
            .unwrap_or(false);
        n += 1;
        match (ok, down_since) {
            (false, None) => {
                failed += 1;
                down_since = Some(t);
            }
            (false, Some(_)) => failed += 1,
            (true, Some(s)) => {
                longest = longest.max(s.elapsed().as_secs_f64());
                down_since = None;
            }
            (true, None) => {}
        }
        std::thread::sleep(Duration::from_millis(500).saturating_sub(t.elapsed()));
    }
    if let Some(s) = down_since {
        longest = longest.max(s.elapsed().as_secs_f64());
    }
    (n, failed, longest)
}

#[test]
fn real_cert_renew_two_masters_one_worker() {
    let setup = real::Setup::new(3);
    let (tb, b) = (&setup.tb, &setup.b);
    let ip = |i: usize| setup.ip(i);
    setup.run_cluster(&[0, 1], &[2], "2+1");
    real::wait_nodes_ready(tb, 0, &["node1", "node2", "node3"], 300);
    let pods = [
        ("etcd-node", 2),
        ("kube-apiserver-node", 2),
        ("kube-controller-manager-node", 2),
        ("kube-scheduler-node", 2),
    ];
    real::wait_system_pods(tb, 0, &pods, 300);

    let before = [node_certs(tb, 0), node_certs(tb, 1)];
    assert_eq!(
        before[0].len(),
        RENEWABLE.len() + 3,
        "master0: every renewable + 3 CAs"
    );
    assert!(!before[1].contains_key("super-admin.conf"), "master0 only");
    let restarts_before = restarts(tb);
    let state = b.home().join(".ferry/default");
    let old_admin = std::fs::read_to_string(state.join("etc/admin.conf")).unwrap();
    put(tb, 2, &["sh", "-c", "cat > /root/admin.conf"], &old_admin);

    // The renewal, probed through the VIP.
    let stop = AtomicBool::new(false);
    let (out, ev, renew_s, probed) = std::thread::scope(|s| {
        let h = s.spawn(|| probe(tb, 2, &stop));
        std::thread::sleep(Duration::from_secs(2));
        let t = Instant::now();
        let (out, ev) = b.ferry_json(&["cert", "--renew"]);
        let renew_s = t.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        (out, ev, renew_s, h.join().unwrap())
    });
    assert!(out.status.success(), "cert --renew: {}", stderr(&out));
    eprintln!("REAL-MEASURE cert --renew (2 masters): {renew_s:.1}s");
    for m in [ip(0), ip(1)] {
        let ready: Vec<u64> = ev
            .iter()
            .filter(|e| e["node"] == m.as_str())
            .filter_map(|e| e["counters"]["apiserver_ready_ms"].as_u64())
            .collect();
        assert_eq!(ready.len(), 1, "{m}: one readiness measure: {ev:?}");
        eprintln!(
            "REAL-MEASURE {m}: apiserver ready {:.1}s after etcd was stopped",
            ready[0] as f64 / 1000.0
        );
    }
    let (n, failed, longest) = probed;
    eprintln!(
        "REAL-MEASURE /readyz through the VIP during the renewal: {failed} of {n} probes failed, longest outage {longest:.1}s"
    );
    assert!(
        !ev.iter().any(|e| e.to_string().contains("PRIVATE KEY")),
        "no key in events"
    );

    // 1. Every leaf renewed, CAs unchanged, each leaf verified by its CA.
    for (i, before) in before.iter().enumerate() {
        let after = node_certs(tb, i);
        assert_renewed(&format!("master{i}"), before, &after);
        let verify = "set -e; cd /etc/kubernetes/pki
            openssl verify -CAfile ca.crt apiserver.crt apiserver-kubelet-client.crt
            openssl verify -CAfile front-proxy-ca.crt front-proxy-client.crt
            openssl verify -CAfile etcd/ca.crt apiserver-etcd-client.crt etcd/server.crt etcd/peer.crt etcd/healthcheck-client.crt
            for k in apiserver apiserver-kubelet-client front-proxy-client apiserver-etcd-client etcd/server etcd/peer etcd/healthcheck-client; do
              [ \"$(openssl x509 -noout -pubkey -in $k.crt)\" = \"$(openssl pkey -pubout -in $k.key)\" ] || { echo \"$k: key mismatch\"; exit 1; }
            done";
        tb.exec_ok(i, &["bash", "-c", verify]).unwrap();
        // 2. The restarted apiserver and etcd serve the new certificates.
        real::wait(
            &format!("master{i} serves the renewed certificates"),
            120,
            || {
                let api = served_serial(tb, i, &format!("{}:6443", ip(i)));
                let etcd = served_serial(tb, i, "127.0.0.1:2379");
                let want = (
                    trim_serial(&after["pki/apiserver.crt"].serial),
                    trim_serial(&after["pki/etcd/server.crt"].serial),
                );
                if (api.clone(), etcd.clone()) == want {
                    Ok(())
                } else {
                    Err(format!("served {api} / {etcd}, renewed {want:?}"))
                }
            },
        );
    }

    // 3. The static pods came back, restarted.
    real::wait_system_pods(tb, 0, &pods, 300);
    let restarts_after = restarts(tb);
    for (pod, n) in &restarts_before {
        assert!(
            restarts_after[pod] > *n,
            "{pod} restarted: {n} -> {}",
            restarts_after[pod]
        );
    }
    assert_eq!(restarts_before.len(), 8, "{restarts_before:?}");

    // 4. The refreshed admin kubeconfig, on master0 and from the bastion.
    let names = kubectl_ok(tb, 0, &["get", "nodes", "-o", "name"]);
    assert_eq!(names.lines().count(), 3, "{names}");
    let cat = |i: usize, p: &str| tb.exec_ok(i, &["cat", p]).unwrap();
    let admin = cat(0, ADMIN);
    assert_eq!(cat(0, "/root/.kube/config"), admin);
    let bastion = std::fs::read_to_string(state.join("etc/admin.conf")).unwrap();
    assert_eq!(
        bastion, admin,
        "the bastion's admin.conf is master0's new one"
    );
    assert_ne!(bastion, old_admin);
    put(tb, 2, &["sh", "-c", "cat > /root/admin-new.conf"], &bastion);
    let out = tb
        .exec_ok(
            2,
            &[
                "kubectl",
                "--kubeconfig",
                "/root/admin-new.conf",
                "get",
                "nodes",
                "-o",
                "name",
            ],
        )
        .unwrap();
    assert!(out.contains("node/node3"), "{out}");
    let (ok, text) = kubectl(tb, 1, &["get", "--raw", "/readyz"]);
    assert!(ok, "master1's own renewed admin.conf: {text}");

    // 5. The cluster keeps working: a new Deployment is scheduled and runs.
    put(
        tb,
        0,
        &["kubectl", "--kubeconfig", ADMIN, "apply", "-f", "-"],
        DEPLOYMENT,
    );
    real::wait("a Deployment made after the renewal runs", 240, || {
        let v = real::kubectl_json(tb, 0, &["get", "pods", "-l", "app=after-renew"]);
        let running = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["status"]["phase"] == "Running");
        running.then_some(()).ok_or_else(|| v.to_string())
    });
    real::wait_nodes_ready(tb, 0, &["node1", "node2", "node3"], 120);

    // 6. --check-expiration reads the nodes' new dates.
    let (out, ev) = b.ferry_json(&["cert", "--check-expiration"]);
    assert!(out.status.success(), "check: {}", stderr(&out));
    for i in 0..2 {
        for (rel, f) in node_certs(tb, i) {
            let hit: Vec<&Value> = ev
                .iter()
                .filter(|e| e["node"] == ip(i).as_str())
                .filter(|e| {
                    e["counters"]["not_before_unix"].as_u64()
                        == Some(f.not_before.unix_timestamp() as u64)
                })
                .collect();
            assert!(
                !hit.is_empty(),
                "master{i} {rel}: the node's notBefore: {ev:?}"
            );
            for e in hit {
                assert_eq!(e["counters"]["differs_from_bastion"], 0, "{e}");
            }
        }
    }
    eprintln!(
        "REAL-MEASURE peak memory used on the machine: {} MiB",
        setup.mem.peak_mib()
    );
}

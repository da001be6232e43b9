//! The real tier, 1 master + 2 workers: `ferry run` of the real cluster
//! image (real kubeadm, kubelet, containerd, etcd, control plane, kube-proxy,
//! coredns built from the Go module proxy) and the bridge CNI image on
//! `--kube` testbed nodes, proven with the real kubectl:
//! - every node Ready; the static pods, kube-proxy and coredns Running;
//! - a 2-replica Deployment spread over both workers answers through a
//!   ClusterIP Service (by IP and by DNS name) from a pod on the master;
//! - the workers reach the apiserver only through the VIP (agent LB);
//! - containerd holds only images from `sealos.hub:5000`;
//! - with every bootstrap token and the kubeadm-certs Secret deleted,
//!   `ferry add --nodes` and `ferry add --masters` still succeed;
//! - `ferry delete` of the worker and of the master removes their Node
//!   (and the master's etcd member); `ferry reset` leaves nothing.
//!
//! Prints `REAL-MEASURE` lines (per-step wall time, peak memory).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use common::real::{
    self, ADMIN, NETWORK_IMAGE, ROOTFS_IMAGE, VIP, etcd_members, kubectl, kubectl_ok,
};
use common::stderr;
use ferry_tests::testbed::Testbed;

const WORKLOAD: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: web}}}
      containers:
      - name: web
        image: sealos.hub:5000/ferry/busybox:1
        command: ["sh", "-c", "mkdir -p /www && echo \"hello from $NODE\" > /www/index.html && exec httpd -f -p 8080 -h /www"]
        env:
        - name: NODE
          valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 2}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default}
spec:
  nodeName: node1
  tolerations: [{operator: Exists}]
  containers:
  - name: client
    image: sealos.hub:5000/ferry/busybox:1
    command: ["sleep", "100000"]
"#;

fn node_names(tb: &Testbed, via: usize) -> Vec<String> {
    let v = real::kubectl_json(tb, via, &["get", "nodes"]);
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// The peers of established connections to :6443 on node `i`.
fn apiserver_peers(tb: &Testbed, i: usize) -> Vec<String> {
    let out = tb
        .exec_ok(
            i,
            &["ss", "-Htn", "state", "established", "( dport = :6443 )"],
        )
        .unwrap();
    out.lines()
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect()
}

fn workload_checks(tb: &Testbed) {
    // The manifest reaches node1 on stdin of kubectl.
    let mut cmd = tb.node_command(0, "kubectl").unwrap();
    cmd.args(["--kubeconfig", ADMIN, "apply", "-f", "-"]);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
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
    real::wait("web Deployment available on both workers", 240, || {
        let v = real::kubectl_json(tb, 0, &["get", "pods", "-l", "app=web"]);
        let mut nodes: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| {
                p["status"]["containerStatuses"]
                    .as_array()
                    .is_some_and(|c| c.iter().all(|s| s["ready"] == true))
            })
            .map(|p| p["spec"]["nodeName"].as_str().unwrap_or("").to_string())
            .collect();
        nodes.sort();
        if nodes == ["node2", "node3"] {
            Ok(())
        } else {
            Err(format!("ready web pods on {nodes:?}"))
        }
    });
    real::wait("client pod on the master running", 180, || {
        let v = real::kubectl_json(tb, 0, &["get", "pod", "client"]);
        (v["status"]["phase"] == "Running")
            .then_some(())
            .ok_or_else(|| v["status"].to_string())
    });
    let svc = real::kubectl_json(tb, 0, &["get", "service", "web"]);
    let ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    // HTTP/1.0 by hand through busybox nc (its static wget crashes in
    // some option combinations); the name goes through the pod's resolver.
    for target in [ip.clone(), "web.default.svc.cluster.local".to_string()] {
        let get = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {target} 80 | tail -n 1");
        let mut seen: Vec<String> = Vec::new();
        real::wait(
            &format!("both backends answer {target} from the master's pod"),
            120,
            || {
                let (ok, text) = kubectl(tb, 0, &["exec", "client", "--", "sh", "-c", &get]);
                if ok {
                    let line = text.trim().to_string();
                    if !seen.contains(&line) {
                        seen.push(line);
                    }
                }
                seen.sort();
                if seen == ["hello from node2", "hello from node3"] {
                    Ok(())
                } else {
                    Err(format!("answers so far: {seen:?}; last: {text}"))
                }
            },
        );
    }
}

#[test]
fn real_cluster_one_master_two_workers() {
    let setup = real::Setup::new(5);
    let (tb, b, pw, kh) = (&setup.tb, &setup.b, &setup.pw, setup.kh.as_str());
    let ip = |i: usize| setup.ip(i);
    let masters = ip(0);
    let nodes = format!("{},{}", ip(1), ip(2));
    let run = [
        "run",
        ROOTFS_IMAGE,
        NETWORK_IMAGE,
        "--masters",
        &masters,
        "--nodes",
        &nodes,
        "-p",
        pw,
        "--known-hosts",
        kh,
    ];
    let (out, ev) = b.ferry_json(&run);
    assert!(out.status.success(), "ferry run failed: {}", stderr(&out));
    eprintln!("REAL-MEASURE run 1+2: {}", common::timings(&ev));

    // 1. Nodes Ready; control plane, kube-proxy, coredns and the CNI Running.
    real::wait_nodes_ready(tb, 0, &["node1", "node2", "node3"], 300);
    real::wait_system_pods(
        tb,
        0,
        &[
            ("etcd-node1", 1),
            ("kube-apiserver-node1", 1),
            ("kube-controller-manager-node1", 1),
            ("kube-scheduler-node1", 1),
            ("kube-proxy-", 3),
            ("coredns-", 2),
            ("ferry-bridge-cni-", 3),
        ],
        300,
    );
    // 2. A Deployment over both workers, through a ClusterIP Service.
    workload_checks(tb);
    // 3. Workers talk to the apiserver through the VIP only.
    for w in [1, 2] {
        let conf = tb
            .exec_ok(w, &["cat", "/etc/kubernetes/kubelet.conf"])
            .unwrap();
        assert!(
            conf.contains("server: https://apiserver.cluster.local:6443"),
            "{conf}"
        );
        let hosts = tb
            .exec_ok(w, &["getent", "hosts", "apiserver.cluster.local"])
            .unwrap();
        assert!(
            hosts.starts_with(VIP),
            "worker {w} resolves the API to {hosts}"
        );
        let peers = apiserver_peers(tb, w);
        assert!(!peers.is_empty(), "worker {w} has no apiserver connection");
        assert!(
            peers.iter().all(|p| p == &format!("{VIP}:6443")),
            "worker {w} reaches the apiserver other than through the VIP: {peers:?}"
        );
    }
    // 4. Images only from the cluster registry.
    for i in 0..3 {
        let (images, sources) = real::containerd_sources(tb, i);
        assert!(!images.is_empty(), "node {i} has no images");
        for im in &images {
            assert!(im.starts_with("sealos.hub:5000/"), "node {i} holds {im}");
        }
        // containerd keys the label by host name (url.Hostname: no port).
        assert_eq!(sources, ["sealos.hub"], "node {i} content sources");
    }

    // 4b. A re-run with another env on the live cluster: the real check.sh
    // refuses the busy ports of a running node, so bootstrap must not run
    // again (it did before: any env change re-ran it).
    let mut rerun = run.to_vec();
    rerun.extend_from_slice(&["-e", "ferryMarker=changed"]);
    let (out, ev) = b.ferry_json(&rerun);
    assert!(
        out.status.success(),
        "re-run with another env: {}",
        stderr(&out)
    );
    let bootstrap = |kind: &str| {
        ev.iter()
            .filter(|e| e["kind"] == kind && e["node"] != "")
            .filter(|e| e["message"].as_str().unwrap_or("").starts_with("bootstrap"))
            .count()
    };
    assert_eq!(
        bootstrap("started"),
        0,
        "bootstrap ran again on a live node"
    );
    let skipped = ev
        .iter()
        .filter(|e| e["message"] == "bootstrap: skipped (done)")
        .count();
    assert_eq!(skipped, 3, "bootstrap skipped on every node");
    eprintln!(
        "REAL-MEASURE re-run 1+2 with another env: {}",
        common::timings(&ev)
    );

    // 5. Expired join credentials: delete every bootstrap token and the
    // kubeadm-certs Secret; adds still work.
    for name in real::token_secrets(tb, 0) {
        kubectl_ok(tb, 0, &["-n", "kube-system", "delete", "secret", &name]);
    }
    let certs = ["-n", "kube-system", "delete", "secret", "kubeadm-certs"];
    let _ = kubectl(tb, 0, &certs);
    assert!(real::token_secrets(tb, 0).is_empty());
    assert!(
        !kubectl(
            tb,
            0,
            &["-n", "kube-system", "get", "secret", "kubeadm-certs"]
        )
        .0
    );
    let (out, ev) = b.ferry_json(&["add", "--nodes", &ip(3), "-p", pw, "--known-hosts", kh]);
    assert!(out.status.success(), "add --nodes failed: {}", stderr(&out));
    eprintln!("REAL-MEASURE add worker: {}", common::timings(&ev));
    let (out, ev) = b.ferry_json(&["add", "--masters", &ip(4), "-p", pw, "--known-hosts", kh]);
    assert!(
        out.status.success(),
        "add --masters failed: {}",
        stderr(&out)
    );
    eprintln!("REAL-MEASURE add master: {}", common::timings(&ev));
    real::wait_nodes_ready(tb, 0, &["node1", "node2", "node3", "node4", "node5"], 300);
    real::wait_system_pods(
        tb,
        0,
        &[("etcd-node5", 1), ("kube-apiserver-node5", 1)],
        300,
    );

    // 6. Delete the added worker and master: their Node and etcd member go.
    let out = b.ferry(&["delete", "--nodes", &ip(3), "--force"]);
    assert!(out.status.success(), "delete worker: {}", stderr(&out));
    let out = b.ferry(&["delete", "--masters", &ip(4), "--force"]);
    assert!(out.status.success(), "delete master: {}", stderr(&out));
    let names = node_names(tb, 0);
    assert_eq!(
        names,
        ["node1", "node2", "node3"],
        "Nodes after the deletes"
    );
    let members = etcd_members(tb, 0);
    assert_eq!(members, ["node1"], "etcd members after deleting node5");

    // `ferry status` on the real cluster: every member healthy through its
    // agent (kubelet healthz, containerd over crictl, the registry, Node
    // Ready, the workers' VIP members, master certificates), exit 0.
    let (out, ev) = b.ferry_json(&["status"]);
    let rows: Vec<&serde_json::Value> = ev.iter().filter(|e| e["phase"] == "status").collect();
    assert_eq!(rows.len(), 3, "one status row per member: {ev:?}");
    for e in &rows {
        let s: serde_json::Value = serde_json::from_str(e["message"].as_str().unwrap()).unwrap();
        assert_eq!(s["healthy"], true, "{}: {s}", e["node"]);
        assert_eq!(s["runtime"]["state"], "ok", "{s}");
        assert_eq!(s["node_ready"]["state"], "ok", "{s}");
    }
    assert!(out.status.success(), "status: {}", stderr(&out));

    // 7. Reset leaves nothing of the cluster on any node.
    let out = b.ferry(&["reset", "--force", "-p", pw, "--known-hosts", kh]);
    assert!(out.status.success(), "reset: {}", stderr(&out));
    for i in 0..5 {
        // node4 and node5 left with `delete`, which keeps their agents.
        let bad = real::leftovers(tb, i, i >= 3);
        assert!(bad.is_empty(), "node {i} after reset: {bad:#?}");
    }
    eprintln!(
        "REAL-MEASURE peak memory used on the machine: {} MiB",
        setup.mem.peak_mib()
    );
}

//! `ferry apply --dry-run` / `ferry plan` on an unmodified sealos docs
//! Clusterfile: accepted, per-host plan printed, nothing changed (no node
//! is contacted, no state written but the cluster directory; images the
//! local store lacks are named with "ferry pull it first", never pulled).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::process::Command;

use common::{ferry_bin, json_lines};

/// From sealos' docs (reference §2), unmodified.
const SEALOS_DOCS_CLUSTERFILE: &str = r#"apiVersion: apps.sealos.io/v1beta1
kind: Cluster
metadata: {name: default}
spec:
  hosts:
  - ips: [192.168.0.2:22, 192.168.0.3:22, 192.168.0.4:22]
    roles: [master, amd64]
  - ips: [192.168.0.5:22, 192.168.0.6:2222]
    roles: [node, amd64]
    env: [criData=/data/containerd]
    ssh: {user: root, pk: /root/.ssh/node_key}
  image: [labring/kubernetes:v1.27.7, labring/helm:v3.9.4, labring/calico:v3.26.1]
  ssh: {user: root, passwd: "xxx", port: 22}
  env: [registryPassword=S3cret]
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
networking: {podSubnet: 10.160.0.0/12, serviceSubnet: 10.96.0.0/22}
apiServer: {certSANs: [k8s.example.com]}
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
maxPods: 200
---
apiVersion: apps.sealos.io/v1beta1
kind: Config
metadata: {name: calico}
spec:
  match: labring/calico:v3.26.1
  path: charts/calico/values.yaml
  strategy: merge
  data: |
    installation: {calicoNetwork: {ipPools: [{cidr: 10.160.0.0/12}]}}
"#;

fn ferry(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(ferry_bin())
        .env("HOME", home)
        .env("FERRY_HOME", home.join(".ferry"))
        .env_remove("FERRY_CLUSTER")
        .args(args)
        .output()
        .unwrap();
    eprintln!(
        "$ ferry {}\nexit {:?}\n{}\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn apply_dry_run_accepts_unmodified_sealos_docs_clusterfile() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("Clusterfile");
    std::fs::write(&file, SEALOS_DOCS_CLUSTERFILE).unwrap();
    let f = file.to_str().unwrap();

    let out = ferry(home.path(), &["apply", "-f", f, "--dry-run"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for ip in [
        "192.168.0.2",
        "192.168.0.3",
        "192.168.0.4",
        "192.168.0.5",
        "192.168.0.6:2222",
    ] {
        assert!(text.contains(ip), "{ip} missing from the plan:\n{text}");
    }
    assert!(text.contains("init-master"), "{text}");
    assert!(
        text.contains("join-master") && text.contains("join-worker"),
        "{text}"
    );
    // Image references the local store lacks: named, with the next step;
    // never pulled (the store is not even created).
    for image in ["labring/kubernetes:v1.27.7", "labring/calico:v3.26.1"] {
        assert!(
            text.contains(&format!("image {image}: not in the local store")),
            "{text}"
        );
    }
    assert!(text.contains("ferry pull"), "{text}");
    assert!(!home.path().join(".ferry/images").exists());

    // JSON plan: master0 inits, workers get the VIP before joining.
    let out = ferry(home.path(), &["--output", "json", "plan", "-f", f]);
    assert!(out.status.success());
    let plan = &json_lines(&out.stdout)[0];
    assert_eq!(plan["notes"].as_array().unwrap().len(), 3, "{plan}");
    let hosts = plan["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 5);
    assert!(hosts.iter().all(|h| h["change"] == "add"));
    let steps = |i: usize| -> Vec<String> {
        hosts[i]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    assert!(steps(0).contains(&"init-master".to_string()));
    let w = steps(3);
    let lb = w.iter().position(|s| s == "lb-sync").unwrap();
    assert!(lb < w.iter().position(|s| s == "join-worker").unwrap());

    // Nothing changed: no Clusterfile, journal or inventory written.
    let dir = home.path().join(".ferry/default");
    for f in ["Clusterfile", "journal.jsonl", "agents.json"] {
        assert!(!dir.join(f).exists(), "{f} written by a dry run");
    }

    // A broken Clusterfile is refused with the reason.
    std::fs::write(
        &file,
        SEALOS_DOCS_CLUSTERFILE.replace("roles: [node, amd64]", "roles: [master, node]"),
    )
    .unwrap();
    let out = ferry(home.path(), &["apply", "-f", f, "--dry-run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("both the master and the node role"));
}

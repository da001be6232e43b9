//! The real tier with application images as labring users run them:
//! `ferry run <k8s> <helm> <cni> <chart app> <second chart app>` in one
//! command on `--kube` testbed nodes (1 master + 1 worker), proven with the
//! real kubectl and helm:
//! - both helm releases are deployed with their own NAME/NAMESPACE (the
//!   canonical `helm upgrade -i $(NAME) $(CHARTS) -n $(NAMESPACE) ...` CMD,
//!   expanded per image) and their pods serve, with images from
//!   `sealos.hub:5000` only;
//! - a plain re-run runs no command and sends no byte;
//! - a manifests app installed later from an oci-archive runs only its CMD:
//!   no hook on any node, no rootfs bytes;
//! - a failing app (from a docker-archive) keeps ClusterSuccess with an
//!   ApplyCommandError condition; once the image is fixed, a re-run runs
//!   that CMD alone;
//! - `-e defaultVIP=...` given once is kept: `ferry add -u alice -p ...` of a
//!   node whose root login is closed joins it through that VIP.
//!
//! Prints `REAL-MEASURE` lines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::path::Path;

use common::real::{self, HELLO_A, HELLO_B, HELM_IMAGE, NETWORK_IMAGE, ROOTFS_IMAGE};
use common::{Bastion, stderr};

/// A VIP other than the default, given with `-e` on the first run only.
const VIP: &str = "10.103.97.9";
use ferry_tests::testbed::Testbed;
use serde_json::Value;

/// (node, message) of run events of `kind` whose message starts with `prefix`.
fn events<'e>(ev: &'e [Value], kind: &str, prefix: &str) -> Vec<(&'e str, &'e str)> {
    ev.iter()
        .filter(|e| e["phase"] == "run" && e["kind"] == kind)
        .filter_map(|e| {
            let m = e["message"].as_str()?;
            m.starts_with(prefix)
                .then(|| (e["node"].as_str().unwrap_or(""), m))
        })
        .collect()
}

fn content_bytes(ev: &[Value]) -> u64 {
    ev.iter()
        .filter(|e| e["phase"] == "run" && e["kind"] == "finished")
        .filter_map(|e| e["counters"]["content_bytes_sent"].as_u64())
        .sum()
}

/// Per-host steps that started (backup, which runs after every run, aside).
fn started(ev: &[Value]) -> Vec<(&str, &str)> {
    events(ev, "started", "")
        .into_iter()
        .filter(|(n, m)| !n.is_empty() && !m.starts_with("backup"))
        .collect()
}

/// Ready pods of the release's chart in `ns`, and what one serves.
fn release_pods(tb: &Testbed, ns: &str) -> (usize, String) {
    let v = real::kubectl_json(tb, 0, &["-n", ns, "get", "pods"]);
    let ready: Vec<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["status"]["containerStatuses"]
                .as_array()
                .is_some_and(|c| !c.is_empty() && c.iter().all(|s| s["ready"] == true))
        })
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let page = ready.first().map_or(String::new(), |pod| {
        let get = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 127.0.0.1 8080 | tail -n 1";
        real::kubectl(tb, 0, &["-n", ns, "exec", pod, "--", "sh", "-c", get])
            .1
            .trim()
            .to_string()
    });
    (ready.len(), page)
}

/// An application image built here with `ferry build`: `manifests/` and a CMD.
fn build_app(b: &Bastion, dir: &Path, tag: &str, manifests: &[(&str, &str)], cmd: &str) {
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    for (name, text) in manifests {
        std::fs::write(dir.join("manifests").join(name), text).unwrap();
    }
    let kubefile = format!(
        "FROM scratch\nLABEL sealos.io.type=\"application\"\nLABEL sealos.io.version=\"v1beta1\"\nENV NAME=ferry-settings\nCOPY manifests manifests\nCMD [\"{cmd}\"]\n"
    );
    std::fs::write(dir.join("Kubefile"), kubefile).unwrap();
    let out = b.ferry(&["build", "-t", tag, dir.to_str().unwrap()]);
    assert!(out.status.success(), "ferry build {tag}: {}", stderr(&out));
}

fn save(b: &Bastion, tag: &str, format: &str, tar: &Path) {
    let out = b.ferry(&["save", "-m", format, "-f", tar.to_str().unwrap(), tag]);
    assert!(out.status.success(), "ferry save {tag}: {}", stderr(&out));
}

const CONFIGMAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ferry-settings, namespace: default}\ndata: {answer: \"42\"}\n";

#[test]
fn real_chart_apps_with_their_own_env_then_installs_on_the_running_cluster() {
    let setup = real::Setup::new(3);
    let (tb, b, pw, kh) = (&setup.tb, &setup.b, &setup.pw, setup.kh.as_str());
    let (m, w) = (setup.ip(0), setup.ip(1));
    let master0 = m.clone();
    let run = [
        "run",
        ROOTFS_IMAGE,
        HELM_IMAGE,
        NETWORK_IMAGE,
        HELLO_A,
        HELLO_B,
        "--masters",
        &m,
        "--nodes",
        &w,
        "-p",
        pw,
        "--known-hosts",
        kh,
        "-e",
        &format!("defaultVIP={VIP}"),
    ];
    let (out, ev) = b.ferry_json(&run);
    assert!(out.status.success(), "ferry run failed: {}", stderr(&out));
    eprintln!(
        "REAL-MEASURE run 1+1 with helm and two charts: {}",
        common::timings(&ev)
    );

    // 1. Both releases, each with its own NAME/NAMESPACE, serving.
    let list = tb
        .exec_ok(
            0,
            &[
                "helm",
                "list",
                "-A",
                "-o",
                "json",
                "--kubeconfig",
                real::ADMIN,
            ],
        )
        .unwrap();
    let releases: Vec<Value> = serde_json::from_str(&list).unwrap();
    let mut got: Vec<(String, String, String)> = releases
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["namespace"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let deployed = |n: &str, ns: &str| (n.to_string(), ns.to_string(), "deployed".to_string());
    assert_eq!(
        got,
        vec![
            deployed("hello-a", "ferry-hello-a"),
            deployed("hello-b", "ferry-hello-b")
        ]
    );
    for (ns, replicas, page) in [
        (
            "ferry-hello-a",
            1,
            "hello-a-says-hi from release hello-a in namespace ferry-hello-a",
        ),
        (
            "ferry-hello-b",
            2,
            "hello-b-says-hi from release hello-b in namespace ferry-hello-b",
        ),
    ] {
        real::wait(
            &format!("{replicas} ready pods serving in {ns}"),
            180,
            || {
                let (n, text) = release_pods(tb, ns);
                if n == replicas && text == page {
                    Ok(())
                } else {
                    Err(format!("{n} ready, page `{text}`"))
                }
            },
        );
        let v = real::kubectl_json(tb, 0, &["-n", ns, "get", "pods"]);
        for p in v["items"].as_array().unwrap() {
            for c in p["spec"]["containers"].as_array().unwrap() {
                let image = c["image"].as_str().unwrap();
                assert!(image.starts_with("sealos.hub:5000/"), "{ns}: {image}");
            }
        }
    }
    for i in 0..2 {
        let (_, sources) = real::containerd_sources(tb, i);
        assert_eq!(sources, vec!["sealos.hub".to_string()], "node {i}");
    }

    // 2. A plain re-run: no command, no byte.
    let (out, ev) = b.ferry_json(&run);
    assert!(out.status.success(), "re-run: {}", stderr(&out));
    assert!(started(&ev).is_empty(), "re-run started {:?}", started(&ev));
    assert_eq!(content_bytes(&ev), 0, "re-run moved bytes");

    // 3. A manifests app from an oci-archive: its tree to master0 and its
    //    CMD there, nothing else (no hook, no rootfs).
    let work = tempfile::tempdir().unwrap();
    let settings = "localhost/test/settings:v1";
    build_app(
        b,
        &work.path().join("settings"),
        settings,
        &[("cm.yaml", CONFIGMAP)],
        "kubectl apply -f manifests/cm.yaml",
    );
    let oci = work.path().join("settings.tar");
    save(b, settings, "oci-archive", &oci);
    let (out, ev) = b.ferry_json(&["run", oci.to_str().unwrap(), "-p", pw, "--known-hosts", kh]);
    assert!(out.status.success(), "run settings.tar: {}", stderr(&out));
    let s = started(&ev);
    assert!(
        s.iter().all(|(n, msg)| *n == master0
            && (msg.starts_with("distribute: app:") || msg.starts_with("guest: "))),
        "{s:?}"
    );
    assert_eq!(s.len(), 2, "{s:?}");
    assert!(events(&ev, "started", "bootstrap").is_empty());
    assert!(!ev.iter().any(|e| {
        e["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("distribute: rootfs")
    }));
    let cm = real::kubectl_json(tb, 0, &["get", "configmap", "ferry-settings"]);
    assert_eq!(cm["data"]["answer"], "42");

    // 4. A failing app from a docker-archive, then the fixed image.
    let broken = "localhost/test/broken:v1";
    let dir = work.path().join("broken");
    build_app(
        b,
        &dir,
        broken,
        &[],
        "kubectl apply -f manifests/missing.yaml",
    );
    let docker = work.path().join("broken.tar");
    save(b, broken, "docker-archive", &docker);
    let (out, ev) = b.ferry_json(&[
        "run",
        docker.to_str().unwrap(),
        "-p",
        pw,
        "--known-hosts",
        kh,
    ]);
    assert!(!out.status.success(), "a failing app CMD fails the run");
    let failed = events(&ev, "failed", "guest");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, master0);
    assert!(
        failed[0].1.contains(broken) && failed[0].1.contains("manifests/missing.yaml"),
        "{failed:?}"
    );
    let cf_path = b.home().join(".ferry/default/Clusterfile");
    let cf = std::fs::read_to_string(&cf_path).unwrap();
    let status = cf.split("\nstatus:").nth(1).unwrap_or("");
    assert!(status.contains("phase: ClusterSuccess"), "{cf}");
    assert!(status.contains("type: ApplyCommandError"), "{cf}");
    std::fs::write(
        dir.join("manifests/missing.yaml"),
        CONFIGMAP.replace("ferry-settings", "ferry-fixed"),
    )
    .unwrap();
    let out = b.ferry(&["build", "-t", broken, dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (out, ev) = b.ferry_json(&["run", broken, "-p", pw, "--known-hosts", kh]);
    assert!(out.status.success(), "fixed image: {}", stderr(&out));
    let guests = events(&ev, "started", "guest");
    assert_eq!(guests.len(), 1, "only the fixed image's CMD: {guests:?}");
    assert!(guests[0].1.ends_with(broken), "{guests:?}");
    real::kubectl_ok(tb, 0, &["get", "configmap", "ferry-fixed"]);

    // 5. `-e` survived into the stored Clusterfile: `ferry add` of a node
    //    whose root login is closed, as alice with her own password, joins
    //    through the same (non-default) VIP; the host records its SSH user.
    let cf = std::fs::read_to_string(&cf_path).unwrap();
    assert!(cf.contains(&format!("defaultVIP={VIP}")), "{cf}");
    common::close_root_login(tb, 2);
    let alice_pw = tb.password("alice").unwrap();
    let (out, ev) = b.ferry_json(&[
        "add",
        "--nodes",
        &setup.ip(2),
        "-u",
        "alice",
        "-p",
        alice_pw,
        "--known-hosts",
        kh,
    ]);
    assert!(out.status.success(), "add as alice: {}", stderr(&out));
    eprintln!("REAL-MEASURE add worker as alice: {}", common::timings(&ev));
    real::wait_nodes_ready(tb, 0, &["node1", "node2", "node3"], 240);
    real::wait("node3's kubelet on the VIP given by -e", 60, || {
        let peers = tb
            .exec_ok(
                2,
                &["ss", "-Htn", "state", "established", "( dport = :6443 )"],
            )
            .unwrap();
        if peers.contains(&format!("{VIP}:6443")) {
            Ok(())
        } else {
            Err(peers)
        }
    });
    let cf = std::fs::read_to_string(&cf_path).unwrap();
    assert!(cf.contains("user: alice"), "{cf}");
    assert!(!common::stdout(&out).contains(alice_pw) && !stderr(&out).contains(alice_pw));
    // No app or hook ran again on the old hosts.
    assert!(
        events(&ev, "started", "guest")
            .iter()
            .all(|(n, _)| *n == setup.ip(2))
    );
    eprintln!("REAL-MEASURE apps peak memory {} MiB", setup.mem.peak_mib());
}

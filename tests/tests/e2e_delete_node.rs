//! `ferry delete` and the Node objects, on the testbed with the fixture
//! image (strict kubeadm/kubelet/kubectl TEST FIXTURES, a fixture apiserver
//! on master0 that learns nodes as they register): after `run` 1 master + 2
//! workers the API lists 3 nodes; `delete --nodes n2 --drain` drains
//! (cordon PATCH + pod list) and deletes n2's Node through kubectl on
//! master0 (both recorded in the fixture log), 2 nodes left; a drain that
//! fails (n1's Node already gone) stops n1's delete with host + step + next
//! action and loses nothing; a plain delete then succeeds
//! (ignore-not-found). Prints `DELETE-MEASURE` lines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::time::Instant;

use common::{Bastion, fixture_log, stderr, stdout};
use ferry_tests::testbed::{Testbed, TestbedConfig};
use serde_json::Value;

const ADMIN: &str = "/etc/kubernetes/admin.conf";

/// `kubectl get nodes -o name` through `ferry exec` on master0.
fn api_nodes(b: &Bastion, m0: &str) -> Vec<String> {
    let out = b.ferry(&[
        "exec",
        "--ips",
        m0,
        "--",
        "kubectl",
        "--kubeconfig",
        ADMIN,
        "get",
        "nodes",
        "-o",
        "name",
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let mut names: Vec<String> = stdout(&out)
        .lines()
        .filter_map(|l| l.split("node/").nth(1))
        .map(|n| n.trim().to_string())
        .collect();
    names.sort();
    names
}

fn hostname(tb: &Testbed, i: usize) -> String {
    tb.exec_ok(i, &["hostname"])
        .unwrap()
        .trim()
        .to_ascii_lowercase()
}

/// master0's fixture log records of `command`, from index `from` on.
fn records(tb: &Testbed, from: usize, command: &str) -> Vec<Value> {
    fixture_log(tb, 0)
        .into_iter()
        .skip(from)
        .filter(|r| r["command"] == command)
        .collect()
}

fn requests(r: &Value) -> Vec<String> {
    r["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn has_kubelet(tb: &Testbed, i: usize) -> bool {
    tb.exec_ok(i, &["sh", "-c", "ls /usr/bin/kubeadm /var/lib/kubelet/config.yaml /var/lib/ferry/data >/dev/null 2>&1 && echo yes || true"])
        .unwrap()
        .trim()
        == "yes"
}

#[test]
fn delete_drains_and_removes_the_node_object() {
    let tb = Testbed::up(TestbedConfig::nodes(3)).expect("testbed up");
    let b = Bastion::new(&tb);
    let work = tempfile::tempdir().unwrap();
    let ip = common::run_fixture_cluster(&tb, &b, work.path());
    let pw = tb.password("root").unwrap();
    let names: Vec<String> = (0..3).map(|i| hostname(&tb, i)).collect();
    let mut all = names.clone();
    all.sort();
    assert_eq!(api_nodes(&b, &ip[0]), all, "every host registered its Node");
    let cf_path = b.home().join(".ferry/default/Clusterfile");

    // delete --drain: drained and deleted through kubectl on master0.
    let mark = fixture_log(&tb, 0).len();
    let t = Instant::now();
    let out = b.ferry(&["delete", "--nodes", &ip[2], "--drain", "--force"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    println!(
        "DELETE-MEASURE delete --drain of one worker: {} ms",
        t.elapsed().as_millis()
    );
    let n2 = &names[2];
    let drain = records(&tb, mark, "kubectl drain");
    assert_eq!(drain.len(), 1, "{drain:?}");
    assert_eq!(drain[0]["ok"], true, "{}", drain[0]);
    assert_eq!(
        requests(&drain[0]),
        [
            format!("GET /api/v1/nodes/{n2} 200"),
            format!("PATCH /api/v1/nodes/{n2} 200"),
            format!("GET /api/v1/pods?fieldSelector=spec.nodeName%3D{n2} 200"),
        ]
    );
    let argv = drain[0]["argv"].to_string();
    for a in [
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=300s",
        ADMIN,
    ] {
        assert!(argv.contains(a), "{a} in {argv}");
    }
    assert!(!argv.contains("--force"), "drain without --force: {argv}");
    let del = records(&tb, mark, "kubectl delete node");
    assert_eq!(del.len(), 1, "{del:?}");
    assert_eq!(
        requests(&del[0]),
        [format!("DELETE /api/v1/nodes/{n2} 200")]
    );
    assert!(del[0]["argv"].to_string().contains("--ignore-not-found"));
    assert!(
        del[0]["user"]
            .as_str()
            .unwrap()
            .contains("CN=kubernetes-admin")
    );
    // The drain came first, then the host's kubeadm reset, then the delete.
    let kinds: Vec<String> = fixture_log(&tb, 0)
        .into_iter()
        .skip(mark)
        .filter(|r| r["command"] == "apiserver")
        .map(|r| {
            format!(
                "{} {}",
                r["request"].as_str().unwrap(),
                r["user"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            format!("PATCH /api/v1/nodes/{n2} kubernetes-admin"),
            format!("DELETE /api/v1/nodes/{n2} kubernetes-admin"),
        ]
    );
    let mut left = vec![names[0].clone(), names[1].clone()];
    left.sort();
    assert_eq!(api_nodes(&b, &ip[0]), left);
    assert!(!has_kubelet(&tb, 2), "node 2 torn down");

    // A drain that fails (n1's Node is already gone) stops n1's delete.
    let out = b.ferry(&[
        "exec",
        "--ips",
        &ip[0],
        "--",
        "kubectl",
        "--kubeconfig",
        ADMIN,
        "delete",
        "node",
        &names[1],
    ]);
    assert!(out.status.success(), "{}", stdout(&out));
    let out = b.ferry(&[
        "delete",
        "--nodes",
        &ip[1],
        "--drain",
        "--drain-timeout",
        "20",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    for want in [
        format!("drain of node `{}`", names[1]),
        ip[1].clone(),
        "not found".to_string(),
        "nothing was removed".to_string(),
        "without --drain".to_string(),
    ] {
        assert!(text.contains(&want), "{want} in {text}");
    }
    assert!(has_kubelet(&tb, 1), "node 1 untouched after a failed drain");
    let cf = std::fs::read_to_string(&cf_path).unwrap();
    assert!(cf.contains(&ip[1]), "node 1 still in the Clusterfile");
    assert!(!cf.contains(&ip[2]), "node 2 gone from the Clusterfile");

    // Without --drain, the delete succeeds: the Node is already gone.
    let mark = fixture_log(&tb, 0).len();
    let out = b.ferry(&["delete", "--nodes", &ip[1]]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let del = records(&tb, mark, "kubectl delete node");
    assert_eq!(del.len(), 1);
    assert_eq!(del[0]["ok"], true);
    assert_eq!(
        requests(&del[0]),
        [format!("DELETE /api/v1/nodes/{} 404", names[1])]
    );
    assert!(records(&tb, mark, "kubectl drain").is_empty());
    assert!(!has_kubelet(&tb, 1));
    assert_eq!(api_nodes(&b, &ip[0]), [names[0].clone()]);
    assert!(!std::fs::read_to_string(&cf_path).unwrap().contains(&ip[1]));

    let out = b.ferry(&["reset", "-p", pw]);
    assert!(out.status.success(), "{}", stdout(&out));
}

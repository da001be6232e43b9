//! `ferry cert --alt-names` on a cluster made by `ferry run` (fixture image,
//! 1 master): the re-issued apiserver certificate lands in the bastion
//! state and, through the agent, in the node's /etc/kubernetes/pki (key
//! 0600), where openssl sees the new SANs and verifies it against the
//! unchanged CA; no runtime, so nothing is restarted and the summary says
//! so. The SANs are recorded in the stored Clusterfile (0600) as the
//! ClusterConfiguration's apiServer.certSANs, so a master added later
//! (`ferry add --masters`) gets them in its own certificate.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Bastion, stage_fixture_image, stderr, stdout};
use ferry_tests::testbed::{Testbed, TestbedConfig};

const ADDED: [&str; 2] = ["DNS:k8s.added.example.com", "IP Address:172.16.9.9"];

fn sans_on(tb: &Testbed, i: usize) -> String {
    tb.exec_ok(
        i,
        &[
            "openssl",
            "x509",
            "-noout",
            "-ext",
            "subjectAltName",
            "-in",
            "/etc/kubernetes/pki/apiserver.crt",
        ],
    )
    .unwrap()
}

/// 2 testbed nodes, the fixture image run with the first `masters` of
/// them as masters.
struct Fixture {
    tb: Testbed,
    b: Bastion,
    ip: Vec<String>,
    pw: String,
    _work: tempfile::TempDir,
}

fn fixture_cluster(masters: usize) -> Fixture {
    let tb = Testbed::up(TestbedConfig::nodes(2)).expect("testbed up");
    let b = Bastion::new(&tb);
    let ip: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let pw = tb.password("root").unwrap().to_string();
    let work = tempfile::tempdir().unwrap();
    let image = stage_fixture_image(work.path());
    let m = ip[..masters].join(",");
    let out = b.ferry(&["run", image.to_str().unwrap(), "--masters", &m, "-p", &pw]);
    assert!(out.status.success(), "run: {}", stderr(&out));
    Fixture {
        tb,
        b,
        ip,
        pw,
        _work: work,
    }
}

#[test]
fn cert_alt_names_pushes_the_apiserver_cert_to_masters() {
    let f = fixture_cluster(1);
    let (tb, b, ip, pw) = (&f.tb, &f.b, &f.ip, &f.pw);
    let dir = b.home().join(".ferry/default/pki/kubernetes").join(&ip[0]);
    let before = sans_on(tb, 0);
    assert!(!before.contains(ADDED[0]), "{before}");

    let out = b.ferry(&["cert", "--alt-names", "k8s.added.example.com,172.16.9.9"]);
    assert!(out.status.success(), "cert: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("pushed"), "{text}");
    assert!(
        text.contains("restart the apiserver"),
        "no runtime: says what is left: {text}"
    );

    let sans = sans_on(tb, 0);
    for want in [
        ADDED[0],
        ADDED[1],
        "DNS:apiserver.cluster.local",
        &format!("IP Address:{}", ip[0]),
    ] {
        assert!(sans.contains(want), "{want} in {sans}");
    }
    tb.exec_ok(
        0,
        &[
            "openssl",
            "verify",
            "-CAfile",
            "/etc/kubernetes/pki/ca.crt",
            "/etc/kubernetes/pki/apiserver.crt",
        ],
    )
    .unwrap();
    let mode = tb
        .exec_ok(
            0,
            &["stat", "-c", "%a", "/etc/kubernetes/pki/apiserver.key"],
        )
        .unwrap();
    assert_eq!(mode.trim(), "600");
    let same = tb
        .exec_ok(0, &["bash", "-c", "[ \"$(openssl x509 -noout -pubkey -in /etc/kubernetes/pki/apiserver.crt)\" = \"$(openssl pkey -pubout -in /etc/kubernetes/pki/apiserver.key)\" ] && echo match"])
        .unwrap();
    assert_eq!(same.trim(), "match");
    let local = std::fs::read_to_string(dir.join("pki/apiserver.crt")).unwrap();
    let remote = tb
        .exec_ok(0, &["cat", "/etc/kubernetes/pki/apiserver.crt"])
        .unwrap();
    assert_eq!(local, remote, "bastion state and node agree");

    // Recorded in the stored Clusterfile (still 0600) for later masters.
    let path = b.home().join(".ferry/default/Clusterfile");
    let cf = std::fs::read_to_string(&path).unwrap();
    let parsed = ferry_shared::clusterfile::Clusterfile::parse(&cf).unwrap();
    let cc = parsed
        .kube_config_docs()
        .find(|d| d.kind == "ClusterConfiguration")
        .unwrap_or_else(|| panic!("no ClusterConfiguration in {cf}"));
    let listed: Vec<&str> = cc.value["apiServer"]["certSANs"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(listed, ["k8s.added.example.com", "172.16.9.9"], "{cf}");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // A master added later gets them in its own certificate.
    let out = b.ferry(&["add", "--masters", &ip[1], "-p", pw]);
    assert!(out.status.success(), "add: {}", stderr(&out));
    let sans = sans_on(tb, 1);
    for want in ADDED
        .iter()
        .copied()
        .chain([format!("IP Address:{}", ip[1]).as_str()])
    {
        assert!(sans.contains(want), "new master: {want} in {sans}");
    }
    tb.exec_ok(
        1,
        &[
            "openssl",
            "verify",
            "-CAfile",
            "/etc/kubernetes/pki/ca.crt",
            "/etc/kubernetes/pki/apiserver.crt",
        ],
    )
    .unwrap();
    let log = common::fixture_log(tb, 1);
    assert!(
        log.iter()
            .any(|l| l["command"].as_str().unwrap_or("").starts_with("join") && l["ok"] == true),
        "control-plane join ran: {log:?}"
    );
}

const AGENT_BIN: &str = "/var/lib/ferry/agent/ferry-agent";
const AGENT_PID: &str = "/var/lib/ferry/agent/agent.pid";

/// `ferry cert --renew` on 2 fixture masters, the second one's agent down
/// at first: master0 is renewed (every leaf and kubeconfig client
/// certificate newer, CAs unchanged, /root/.kube/config and the bastion's
/// admin.conf refreshed), the failure names the host, the step and the
/// next action, and the second master's renewed set stays staged; with
/// the agent back, a plain re-run pushes exactly that set to it alone.
/// `--check-expiration` then reads the nodes' (new) dates through the
/// agents, equal to the bastion copy. No runtime here: the summary says
/// which static pods to restart.
#[test]
fn cert_renew_resumes_after_a_master_fails() {
    use common::certs::{assert_renewed, node_certs};
    let f = fixture_cluster(2);
    let (tb, b, ip, pw) = (&f.tb, &f.b, &f.ip, &f.pw);
    let masters = ip.join(",");
    let before = [node_certs(tb, 0), node_certs(tb, 1)];
    assert!(before[0].contains_key("admin.conf") && before[0].contains_key("pki/etcd/peer.crt"));
    let state = b.home().join(".ferry/default");
    let stage = state.join("pki/kubernetes/.renew");

    tb.exec_ok(1, &[AGENT_BIN, "stop", "--pidfile", AGENT_PID])
        .unwrap();
    let out = b.ferry(&["cert", "--renew"]);
    assert!(!out.status.success(), "a master failed: {}", stdout(&out));
    let text = stdout(&out);
    let failed = text
        .lines()
        .find(|l| l.contains(&ip[1]) && l.contains("FAILED"))
        .unwrap_or_else(|| panic!("no failure row for {}: {text}", ip[1]));
    assert!(
        failed.contains("connect") && failed.contains("next:"),
        "{failed}"
    );
    assert!(text.contains("re-run `ferry cert --renew`"), "{text}");
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    assert!(
        text.contains("no crictl on the node: restart etcd"),
        "{text}"
    );
    let mid = node_certs(tb, 0);
    assert_renewed("master0", &before[0], &mid);
    let cat = |i: usize, p: &str| tb.exec_ok(i, &["cat", p]).unwrap();
    let admin = cat(0, "/etc/kubernetes/admin.conf");
    assert_eq!(
        cat(0, "/root/.kube/config"),
        admin,
        "~/.kube/config refreshed"
    );
    let bastion_admin = std::fs::read_to_string(state.join("etc/admin.conf")).unwrap();
    assert_eq!(bastion_admin, admin, "the bastion's admin.conf refreshed");
    assert!(!stage.join(&ip[0]).exists(), "master0 committed");
    let staged = std::fs::read_to_string(stage.join(&ip[1]).join("pki/apiserver.crt")).unwrap();
    assert_eq!(node_certs(tb, 1), before[1], "master1 untouched");

    let out = b.ferry(&["agent", "install", "--masters", &masters, "-p", pw]);
    assert!(out.status.success(), "agent install: {}", stderr(&out));
    let out = b.ferry(&["cert", "--renew"]);
    assert!(out.status.success(), "re-run: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("continuing the renewal"), "{text}");
    assert!(text.contains("1 of 1 nodes ok"), "master1 alone: {text}");
    assert_eq!(node_certs(tb, 0), mid, "master0 not renewed twice");
    assert_renewed("master1", &before[1], &node_certs(tb, 1));
    assert_eq!(
        cat(1, "/etc/kubernetes/pki/apiserver.crt"),
        staged,
        "the staged set"
    );
    assert!(!stage.exists(), "stage removed");
    let dir1 = state.join("pki/kubernetes").join(&ip[1]);
    assert_eq!(
        std::fs::read_to_string(dir1.join("pki/apiserver.crt")).unwrap(),
        staged
    );
    tb.exec_ok(
        1,
        &[
            "openssl",
            "verify",
            "-CAfile",
            "/etc/kubernetes/pki/etcd/ca.crt",
            "/etc/kubernetes/pki/etcd/peer.crt",
        ],
    )
    .unwrap();

    // --check-expiration reads the nodes.
    let (out, ev) = b.ferry_json(&["cert", "--check-expiration"]);
    assert!(out.status.success(), "check: {}", stderr(&out));
    for (i, host) in ip.iter().enumerate() {
        let now = node_certs(tb, i);
        for (rel, f) in &now {
            let e = ev
                .iter()
                .filter(|e| e["node"] == host.as_str())
                .filter(|e| {
                    e["counters"]["not_before_unix"].as_u64()
                        == Some(f.not_before.unix_timestamp() as u64)
                })
                .find(|e| {
                    e["counters"]["not_after_unix"].as_u64()
                        == Some(f.not_after.unix_timestamp() as u64)
                })
                .unwrap_or_else(|| panic!("{host} {rel}: no event with the node's dates: {ev:?}"));
            let m = e["message"].as_str().unwrap();
            assert!(m.contains("read on the node; bastion copy: same"), "{m}");
            assert_eq!(e["counters"]["differs_from_bastion"], 0);
        }
    }
    assert!(
        !ev.iter()
            .any(|e| e["message"].as_str().unwrap_or("").contains("kubelet.conf")),
        "kubelet.conf is the kubelet's"
    );
}

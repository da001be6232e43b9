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

#[test]
fn cert_alt_names_pushes_the_apiserver_cert_to_masters() {
    let tb = Testbed::up(TestbedConfig::nodes(2)).expect("testbed up");
    let b = Bastion::new(&tb);
    let ip: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let pw = tb.password("root").unwrap().to_string();
    let work = tempfile::tempdir().unwrap();
    let image = stage_fixture_image(work.path());
    let out = b.ferry(&[
        "run",
        image.to_str().unwrap(),
        "--masters",
        &ip[0],
        "-p",
        &pw,
    ]);
    assert!(out.status.success(), "run: {}", stderr(&out));
    let dir = b.home().join(".ferry/default/pki/kubernetes").join(&ip[0]);
    let before = sans_on(&tb, 0);
    assert!(!before.contains(ADDED[0]), "{before}");

    let out = b.ferry(&["cert", "--alt-names", "k8s.added.example.com,172.16.9.9"]);
    assert!(out.status.success(), "cert: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("pushed"), "{text}");
    assert!(
        text.contains("restart the apiserver"),
        "no runtime: says what is left: {text}"
    );

    let sans = sans_on(&tb, 0);
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
    let out = b.ferry(&["add", "--masters", &ip[1], "-p", &pw]);
    assert!(out.status.success(), "add: {}", stderr(&out));
    let sans = sans_on(&tb, 1);
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
    let log = common::fixture_log(&tb, 1);
    assert!(
        log.iter()
            .any(|l| l["command"].as_str().unwrap_or("").starts_with("join") && l["ok"] == true),
        "control-plane join ran: {log:?}"
    );
}

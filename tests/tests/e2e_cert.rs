//! `ferry cert --alt-names` on a testbed master: the re-issued apiserver
//! certificate lands in the bastion state and, through the agent, in the
//! node's /etc/kubernetes/pki (key 0600), where openssl sees the new SANs
//! and verifies it against the unchanged CA; no runtime, so nothing is
//! restarted and the summary says so.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use common::{Bastion, stderr, stdout};
use ferry_shared::pki::kube::{KubePkiSpec, SEALOS_VALIDITY_YEARS, generate_all};
use ferry_tests::testbed::{Testbed, TestbedConfig};

#[test]
fn cert_alt_names_pushes_the_apiserver_cert_to_masters() {
    let tb = Testbed::up(TestbedConfig::nodes(1)).expect("testbed up");
    let b = Bastion::new(&tb);
    let ip = tb.nodes()[0].ip.to_string();
    let pw = tb.password("root").unwrap().to_string();
    let out = b.ferry(&["agent", "install", "--masters", &ip, "-p", &pw]);
    assert!(out.status.success(), "install: {}", stderr(&out));

    // The PKI as `ferry run` keeps it, and on the node as pushed by it.
    let spec = KubePkiSpec {
        node_name: "node1".into(),
        node_ip: ip.parse().unwrap(),
        control_plane_host: "apiserver.cluster.local".into(),
        control_plane_port: 6443,
        cert_sans: vec!["127.0.0.1".into(), "10.103.97.2".into()],
        service_cidr: "10.96.0.0/22".into(),
        dns_domain: "cluster.local".into(),
        validity_years: SEALOS_VALIDITY_YEARS,
        kube_minor: 27,
    };
    let dir = b.home().join(".ferry/default/pki/kubernetes").join(&ip);
    for f in generate_all(&spec, time::OffsetDateTime::now_utc()).unwrap() {
        let p = dir.join(&f.path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &f.contents).unwrap();
        if f.path == "pki/ca.crt" || f.path == "pki/apiserver.crt" {
            let target = format!("/etc/kubernetes/{}", f.path);
            tb.exec_ok(0, &["mkdir", "-p", "/etc/kubernetes/pki"])
                .unwrap();
            let mut c = tb.node_command(0, "tee").unwrap();
            c.arg(&target)
                .stdout(std::process::Stdio::null())
                .stdin(std::process::Stdio::piped());
            let mut child = c.spawn().unwrap();
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), f.contents.as_bytes())
                .unwrap();
            assert!(child.wait().unwrap().success());
        }
    }

    let out = b.ferry(&["cert", "--alt-names", "k8s.added.example.com,172.16.9.9"]);
    assert!(out.status.success(), "cert: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("pushed"), "{text}");
    assert!(
        text.contains("restart the apiserver"),
        "no runtime: says what is left: {text}"
    );

    let sans = tb
        .exec_ok(
            0,
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
        .unwrap();
    for want in [
        "DNS:k8s.added.example.com",
        "IP Address:172.16.9.9",
        "DNS:apiserver.cluster.local",
        &format!("IP Address:{ip}"),
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
}

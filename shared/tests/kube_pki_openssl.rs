//! The generated Kubernetes PKI checked by OpenSSL: chains, SANs, key
//! usages, and a real TLS handshake with the apiserver certificate.
#![cfg(feature = "kube-pki")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_shared::pki::kube::{KubePkiSpec, SEALOS_VALIDITY_YEARS, generate_all};
use time::OffsetDateTime;

fn write_all(dir: &Path) {
    let spec = KubePkiSpec {
        node_name: "master0".into(),
        node_ip: "127.0.0.1".parse().unwrap(),
        control_plane_host: "apiserver.cluster.local".into(),
        control_plane_port: 6443,
        cert_sans: vec!["10.103.97.2".into(), "k8s.example.com".into()],
        service_cidr: "10.96.0.0/22".into(),
        dns_domain: "cluster.local".into(),
        validity_years: SEALOS_VALIDITY_YEARS,
        kube_minor: 30,
    };
    for f in generate_all(&spec, OffsetDateTime::now_utc()).unwrap() {
        let p = dir.join(&f.path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, f.contents).unwrap();
    }
}

fn openssl(args: &[&str], dir: &Path) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "openssl {args:?} failed:\n{text}");
    text
}

#[test]
fn chains_sans_usages_and_validity() {
    let d = tempfile::tempdir().unwrap();
    write_all(d.path());
    let pki = d.path().join("pki");
    for (ca, leaf) in [
        ("ca.crt", "apiserver.crt"),
        ("ca.crt", "apiserver-kubelet-client.crt"),
        ("front-proxy-ca.crt", "front-proxy-client.crt"),
        ("etcd/ca.crt", "apiserver-etcd-client.crt"),
        ("etcd/ca.crt", "etcd/server.crt"),
        ("etcd/ca.crt", "etcd/peer.crt"),
        ("etcd/ca.crt", "etcd/healthcheck-client.crt"),
    ] {
        let out = openssl(&["verify", "-CAfile", ca, leaf], &pki);
        assert!(out.contains(": OK"), "{leaf}: {out}");
    }
    let san = openssl(
        &[
            "x509",
            "-in",
            "apiserver.crt",
            "-noout",
            "-ext",
            "subjectAltName,extendedKeyUsage,keyUsage",
        ],
        &pki,
    );
    for want in [
        "DNS:kubernetes.default.svc.cluster.local",
        "DNS:apiserver.cluster.local",
        "DNS:master0",
        "DNS:k8s.example.com",
        "IP Address:10.96.0.1",
        "IP Address:10.103.97.2",
        "IP Address:127.0.0.1",
        "TLS Web Server Authentication",
        "Digital Signature",
        "Key Encipherment",
    ] {
        assert!(san.contains(want), "apiserver lacks {want}:\n{san}");
    }
    let etcd = openssl(
        &[
            "x509",
            "-in",
            "etcd/server.crt",
            "-noout",
            "-ext",
            "subjectAltName,extendedKeyUsage",
        ],
        &pki,
    );
    for want in [
        "DNS:localhost",
        "IP Address:0:0:0:0:0:0:0:1",
        "TLS Web Client Authentication",
        "TLS Web Server Authentication",
    ] {
        assert!(etcd.contains(want), "etcd server lacks {want}:\n{etcd}");
    }
    let subj = openssl(
        &[
            "x509",
            "-in",
            "apiserver-kubelet-client.crt",
            "-noout",
            "-subject",
        ],
        &pki,
    );
    assert!(
        subj.contains("O = kubeadm:cluster-admins")
            && subj.contains("CN = kube-apiserver-kubelet-client"),
        "{subj}"
    );
    let key = openssl(&["rsa", "-in", "ca.key", "-noout", "-text"], &pki);
    assert!(key.contains("2048 bit"), "{key}");
    // 100 years, like sealos.
    let end = openssl(
        &[
            "x509",
            "-in",
            "ca.crt",
            "-noout",
            "-checkend",
            &(99u64 * 365 * 86400).to_string(),
        ],
        &pki,
    );
    assert!(end.contains("will not expire"), "{end}");
    openssl(&["rsa", "-pubin", "-in", "sa.pub", "-noout"], &pki);
}

#[test]
fn apiserver_cert_serves_a_verified_tls_handshake() {
    let d = tempfile::tempdir().unwrap();
    write_all(d.path());
    let pki = d.path().join("pki");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &port.to_string(),
            "-cert",
            "apiserver.crt",
            "-key",
            "apiserver.key",
            "-www",
            "-quiet",
        ])
        .current_dir(&pki)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "s_server never listened");
        std::thread::yield_now();
    }
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-CAfile",
            "ca.crt",
            "-verify_return_error",
            "-verify_hostname",
            "apiserver.cluster.local",
        ])
        .current_dir(&pki)
        .stdin(Stdio::null())
        .output();
    let _ = server.kill();
    let _ = server.wait();
    let out = out.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Verify return code: 0 (ok)"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

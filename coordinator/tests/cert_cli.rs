//! `ferry cert` on a bastion state holding a cluster PKI (as the pipeline
//! stores it: `<home>/<cluster>/pki/kubernetes/<master-ip>/`):
//! `--check-expiration` prints kubeadm's table; `--alt-names` re-issues the
//! apiserver certificate with the new SANs under the same CA (checked with
//! openssl), keeping the old SANs; bad input is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ferry_shared::pki::kube::{KubePkiSpec, SEALOS_VALIDITY_YEARS, generate_all};

fn ferry(home: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .env("HOME", home)
        .env("FERRY_HOME", home.join(".ferry"))
        .env_remove("FERRY_CLUSTER")
        .args(args)
        .output()
        .unwrap();
    eprintln!(
        "$ ferry {}\n-- {:?}\n{}{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn openssl(args: &[&str], file: &Path) -> String {
    let out = Command::new("openssl")
        .args(args)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn state_pki(home: &Path, ip: &str) -> PathBuf {
    let dir = home.join(".ferry/default/pki/kubernetes").join(ip);
    let spec = KubePkiSpec {
        node_name: "master0".into(),
        node_ip: ip.parse().unwrap(),
        control_plane_host: "apiserver.cluster.local".into(),
        control_plane_port: 6443,
        cert_sans: vec!["127.0.0.1".into(), "10.103.97.2".into()],
        service_cidr: "10.96.0.0/22".into(),
        dns_domain: "cluster.local".into(),
        validity_years: SEALOS_VALIDITY_YEARS,
        kube_minor: 29,
    };
    for f in generate_all(&spec, time::OffsetDateTime::now_utc()).unwrap() {
        let p = dir.join(&f.path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &f.contents).unwrap();
    }
    dir
}

#[test]
fn check_expiration_and_alt_names_on_the_bastion_state() {
    let home = tempfile::tempdir().unwrap();
    let out = ferry(home.path(), &["cert", "--check-expiration"]);
    assert_eq!(out.status.code(), Some(2), "no PKI yet");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Kubernetes PKI"));

    let dir = state_pki(home.path(), "10.0.0.2");
    let out = ferry(home.path(), &["cert", "--check-expiration"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "CERTIFICATE",
        "RESIDUAL TIME",
        "admin.conf",
        "super-admin.conf",
        "apiserver-etcd-client",
        "etcd-server",
        "front-proxy-ca",
        "etcd-ca",
        "100y",
        "[10.0.0.2]",
    ] {
        assert!(text.contains(want), "{want} in\n{text}");
    }

    let api = dir.join("pki/apiserver.crt");
    let before = openssl(&["x509", "-noout", "-ext", "subjectAltName", "-in"], &api);
    assert!(!before.contains("k8s.new.example.com"));
    let old_key = std::fs::read_to_string(dir.join("pki/apiserver.key")).unwrap();
    let out = ferry(
        home.path(),
        &["cert", "--alt-names", "k8s.new.example.com,192.168.50.5"],
    );
    assert!(out.status.success());
    let after = openssl(&["x509", "-noout", "-ext", "subjectAltName", "-in"], &api);
    for want in [
        "DNS:k8s.new.example.com",
        "IP Address:192.168.50.5",
        "DNS:apiserver.cluster.local",
        "IP Address:10.103.97.2",
        "IP Address:10.96.0.1",
        "DNS:kubernetes.default.svc.cluster.local",
    ] {
        assert!(after.contains(want), "{want} in {after}");
    }
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(dir.join("pki/ca.crt"))
        .arg(&api)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let usage = openssl(&["x509", "-noout", "-ext", "extendedKeyUsage", "-in"], &api);
    assert!(usage.contains("TLS Web Server Authentication"), "{usage}");
    let key = dir.join("pki/apiserver.key");
    assert_ne!(std::fs::read_to_string(&key).unwrap(), old_key, "new key");
    assert_eq!(
        openssl(&["x509", "-noout", "-pubkey", "-in"], &api),
        openssl(&["pkey", "-pubout", "-in"], &key),
        "key matches"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let out = ferry(home.path(), &["cert", "--alt-names", "bad name!"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("bad name!"));
    assert_eq!(ferry(home.path(), &["cert"]).status.code(), Some(2));
}

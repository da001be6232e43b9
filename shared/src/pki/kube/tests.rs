use super::*;

pub(crate) fn spec(minor: u32) -> KubePkiSpec {
    KubePkiSpec {
        node_name: "master0".into(),
        node_ip: "10.0.0.2".parse().unwrap(),
        control_plane_host: "apiserver.cluster.local".into(),
        control_plane_port: 6443,
        cert_sans: vec![
            "127.0.0.1".into(),
            "10.103.97.2".into(),
            "k8s.example.com".into(),
        ],
        service_cidr: "10.96.0.0/22".into(),
        dns_domain: "cluster.local".into(),
        validity_years: SEALOS_VALIDITY_YEARS,
        kube_minor: minor,
    }
}

#[test]
fn the_full_set_of_files() {
    let files = generate_all(&spec(29), OffsetDateTime::now_utc()).unwrap();
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    for p in [
        "pki/ca.crt",
        "pki/ca.key",
        "pki/front-proxy-ca.crt",
        "pki/etcd/ca.crt",
        "pki/sa.key",
        "pki/sa.pub",
        "pki/apiserver.crt",
        "pki/apiserver-kubelet-client.key",
        "pki/front-proxy-client.crt",
        "pki/apiserver-etcd-client.crt",
        "pki/etcd/server.crt",
        "pki/etcd/peer.key",
        "pki/etcd/healthcheck-client.crt",
        "admin.conf",
        "super-admin.conf",
        "controller-manager.conf",
        "scheduler.conf",
        "kubelet.conf",
    ] {
        assert!(paths.contains(&p), "missing {p}");
    }
    for f in &files {
        let secret = f.path.ends_with(".key") || f.path.ends_with(".conf");
        assert_eq!(f.mode, if secret { 0o600 } else { 0o644 }, "{}", f.path);
    }
    assert!(
        !format!("{files:?}").contains("PRIVATE KEY"),
        "Debug must not show keys"
    );
    let before_129 = generate_all(&spec(28), OffsetDateTime::now_utc()).unwrap();
    assert!(!before_129.iter().any(|f| f.path == "super-admin.conf"));
}

#[test]
fn bad_sans_and_cidrs_are_named() {
    let mut s = spec(28);
    s.cert_sans.push("bad name!".into());
    let cas = generate_cas(&spec(28), OffsetDateTime::now_utc()).unwrap();
    assert!(matches!(
        node_certs(&cas, &s, OffsetDateTime::now_utc()),
        Err(KubePkiError::BadSan(_))
    ));
    let mut s = spec(28);
    s.service_cidr = "10.96.0.0".into();
    assert!(matches!(
        node_certs(&cas, &s, OffsetDateTime::now_utc()),
        Err(KubePkiError::BadCidr(_))
    ));
}

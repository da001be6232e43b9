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

/// The Subject organisations of a generated PEM certificate or kubeconfig.
fn orgs_of(files: &[PkiFile], path: &str) -> Vec<String> {
    let f = files.iter().find(|f| f.path == path).unwrap();
    let pem = if path.ends_with(".conf") {
        kubeconfig_client_cert(path, &f.contents).unwrap()
    } else {
        f.contents.clone()
    };
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = p.parse_x509().unwrap();
    cert.subject()
        .iter_organization()
        .map(|o| o.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn client_groups_follow_kubeadm_before_and_from_1_29() {
    let now = OffsetDateTime::now_utc();
    let old = generate_all(&spec(28), now).unwrap();
    let masters = vec!["system:masters".to_string()];
    for p in [
        "pki/apiserver-etcd-client.crt",
        "pki/etcd/healthcheck-client.crt",
        "pki/apiserver-kubelet-client.crt",
        "admin.conf",
    ] {
        assert_eq!(orgs_of(&old, p), masters, "1.28 {p}");
    }

    let new = generate_all(&spec(29), now).unwrap();
    for p in [
        "pki/apiserver-etcd-client.crt",
        "pki/etcd/healthcheck-client.crt",
    ] {
        assert!(orgs_of(&new, p).is_empty(), "1.29 {p}: no system:masters");
    }
    let admins = vec!["kubeadm:cluster-admins".to_string()];
    assert_eq!(orgs_of(&new, "pki/apiserver-kubelet-client.crt"), admins);
    assert_eq!(orgs_of(&new, "admin.conf"), admins);
    assert_eq!(orgs_of(&new, "super-admin.conf"), masters);
    assert_eq!(orgs_of(&new, "kubelet.conf"), vec!["system:nodes"]);
}

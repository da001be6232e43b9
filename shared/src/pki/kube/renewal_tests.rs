#![allow(clippy::unwrap_used)]

use time::Duration;
use x509_parser::extensions::ParsedExtension;

use super::super::tests::spec;
use super::super::{cert_facts, generate_all, kubeconfig_client_cert};
use super::*;

fn get<'a>(files: &'a [PkiFile], path: &str) -> Option<&'a str> {
    files
        .iter()
        .find(|f| f.path == path)
        .map(|f| f.contents.as_str())
}

fn paths(files: &[PkiFile]) -> Vec<&str> {
    files.iter().map(|f| f.path.as_str()).collect()
}

/// The certificate PEM of `path` (a kubeconfig's client certificate).
fn pem_of(files: &[PkiFile], path: &str) -> String {
    let text = get(files, path).unwrap();
    if path.ends_with(".conf") {
        kubeconfig_client_cert(path, text).unwrap()
    } else {
        text.to_string()
    }
}

/// (authority key id, subject key id) of a PEM certificate.
fn key_ids(pem: &str) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let c = p.parse_x509().unwrap();
    let (mut aki, mut ski) = (None, None);
    for e in c.extensions() {
        match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                aki = a.key_identifier.as_ref().map(|k| k.0.to_vec());
            }
            ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0.to_vec()),
            _ => {}
        }
    }
    (aki, ski)
}

/// The SubjectPublicKeyInfo of a certificate, and of a private key's
/// public half, as DER.
fn cert_spki(pem: &str) -> Vec<u8> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    p.parse_x509().unwrap().public_key().raw.to_vec()
}

fn key_spki(pem: &str) -> Vec<u8> {
    use rcgen::PublicKeyData;
    rcgen::KeyPair::from_pem(pem)
        .unwrap()
        .subject_public_key_info()
}

#[test]
fn what_is_renewed_per_version() {
    let now = OffsetDateTime::now_utc();
    for (minor, super_admin) in [(28, false), (29, true), (34, true)] {
        let files = generate_all(&spec(minor), now).unwrap();
        let set: Vec<&str> = renewables_in(&paths(&files))
            .iter()
            .map(|r| r.path)
            .collect();
        let mut want = vec![
            "pki/apiserver.crt",
            "pki/apiserver-kubelet-client.crt",
            "pki/front-proxy-client.crt",
            "pki/apiserver-etcd-client.crt",
            "pki/etcd/server.crt",
            "pki/etcd/peer.crt",
            "pki/etcd/healthcheck-client.crt",
            "admin.conf",
        ];
        if super_admin {
            want.push("super-admin.conf");
        }
        want.extend(["controller-manager.conf", "scheduler.conf"]);
        assert_eq!(set, want, "1.{minor}");
        // Never the CAs, the service-account pair or the kubelet's kubeconfig.
        let renewed = renew_all(|p| get(&files, p).map(str::to_string), now).unwrap();
        for p in paths(&renewed) {
            assert!(
                !p.contains("ca.") && !p.contains("sa.") && p != "kubelet.conf",
                "1.{minor}: {p} renewed"
            );
        }
        assert_eq!(renewed.len(), 7 * 2 + want.len() - 7, "1.{minor}");
    }
}

#[test]
fn renewed_leaves_keep_subject_sans_usages_and_ca() {
    let t0 = OffsetDateTime::now_utc() - Duration::days(30);
    let old = generate_all(&spec(34), t0).unwrap();
    let now = OffsetDateTime::now_utc();
    let new = renew_all(|p| get(&old, p).map(str::to_string), now).unwrap();
    for r in RENEWABLE {
        let (a, b) = (pem_of(&old, r.path), pem_of(&new, r.path));
        let (fa, fb) = (
            cert_facts("old", &a).unwrap(),
            cert_facts("new", &b).unwrap(),
        );
        assert_eq!(fa.subject_cn, fb.subject_cn, "{}", r.path);
        assert_eq!(fa.orgs, fb.orgs, "{}", r.path);
        assert_eq!(fa.sans, fb.sans, "{}", r.path);
        assert_eq!(
            (fa.server_auth, fa.client_auth),
            (fb.server_auth, fb.client_auth),
            "{}",
            r.path
        );
        assert_eq!(fa.issuer_cn, fb.issuer_cn, "{}", r.path);
        assert_ne!(fa.serial, fb.serial, "{}: new serial", r.path);
        assert!(
            fb.not_before > fa.not_before + Duration::days(29),
            "{}",
            r.path
        );
        assert!(!fb.is_ca);
        // Signed by the same CA key, with a key of its own.
        let ca = pem_of(&old, &format!("pki/{}.crt", r.ca));
        assert_eq!(key_ids(&b).0, key_ids(&ca).1, "{}: same CA", r.path);
        assert!(key_ids(&ca).1.is_some());
        // Never past the CA's own expiry; as long as before otherwise.
        let ca_end = cert_facts("ca", &ca).unwrap().not_after;
        assert_eq!(fb.not_after, ca_end, "{}: capped at the CA", r.path);
        assert_ne!(cert_spki(&a), cert_spki(&b), "{}: new key", r.path);
    }
    // Each key file matches its new certificate.
    for r in RENEWABLE.iter().filter(|r| r.kind == RenewKind::Cert) {
        let key = get(&new, &r.outputs()[1]).unwrap();
        assert_eq!(
            key_spki(key),
            cert_spki(&pem_of(&new, r.path)),
            "{}",
            r.path
        );
        assert_eq!(new.iter().find(|f| f.path == r.path).unwrap().mode, 0o644);
    }
    assert!(!format!("{new:?}").contains("PRIVATE KEY"));
}

#[test]
fn renewed_kubeconfig_keeps_everything_but_the_credentials() {
    use base64::Engine;
    let old = generate_all(&spec(34), OffsetDateTime::now_utc()).unwrap();
    let new = renew_all(
        |p| get(&old, p).map(str::to_string),
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    let yaml = |files: &[PkiFile], p: &str| -> Value {
        serde_yaml_ng::from_str(get(files, p).unwrap()).unwrap()
    };
    for p in ["admin.conf", "controller-manager.conf"] {
        let (a, b) = (yaml(&old, p), yaml(&new, p));
        assert_eq!(a["clusters"], b["clusters"], "{p}: CA data and server kept");
        assert_eq!(a["contexts"], b["contexts"]);
        assert_eq!(a["current-context"], b["current-context"]);
        let u = &b["users"][0]["user"];
        let key = STANDARD
            .decode(u["client-key-data"].as_str().unwrap())
            .unwrap();
        let key = String::from_utf8(key).unwrap();
        assert_eq!(key_spki(&key), cert_spki(&pem_of(&new, p)), "{p}");
        assert_ne!(
            a["users"][0]["user"]["client-key-data"],
            u["client-key-data"]
        );
        assert_eq!(new.iter().find(|f| f.path == p).unwrap().mode, 0o600);
    }
    // The server of a local component stays its own apiserver.
    assert_eq!(
        yaml(&new, "scheduler.conf")["clusters"][0]["cluster"]["server"],
        "https://10.0.0.2:6443"
    );
}

#[test]
fn renewal_needs_the_ca_and_an_embedded_certificate() {
    let old = generate_all(&spec(34), OffsetDateTime::now_utc()).unwrap();
    let now = OffsetDateTime::now_utc();
    let no_etcd_ca = renew_all(
        |p| (p != "pki/etcd/ca.key").then(|| get(&old, p).map(str::to_string))?,
        now,
    );
    let err = no_etcd_ca.unwrap_err().to_string();
    assert!(err.contains("pki/etcd/ca.key"), "{err}");
    assert!(!err.contains("PRIVATE"), "{err}");
    let by_path = "apiVersion: v1\nclusters:\n- cluster: {server: 'https://x:6443'}\n  name: k\ncontexts:\n- context: {cluster: k, user: u}\n  name: c\ncurrent-context: c\nkind: Config\nusers:\n- name: u\n  user: {client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem}\n";
    let err = renew_all(
        |p| match p {
            "admin.conf" => Some(by_path.to_string()),
            _ => get(&old, p)
                .filter(|_| p.starts_with("pki/ca."))
                .map(str::to_string),
        },
        now,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("admin.conf") && err.contains("client-certificate-data"),
        "{err}"
    );
}

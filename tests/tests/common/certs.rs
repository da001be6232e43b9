//! The Kubernetes certificates on a node, read with `cat` in the node and
//! parsed here, for `ferry cert` tests.

use std::collections::BTreeMap;

use ferry_shared::pki::kube::{CertFacts, RENEWABLE, cert_facts, kubeconfig_client_cert};
use ferry_tests::testbed::Testbed;

pub const CAS: [&str; 3] = ["pki/ca.crt", "pki/etcd/ca.crt", "pki/front-proxy-ca.crt"];

/// Facts of every renewable certificate and CA present under node `i`'s
/// /etc/kubernetes (a kubeconfig's client certificate under its name).
pub fn node_certs(tb: &Testbed, i: usize) -> BTreeMap<String, CertFacts> {
    let mut out = BTreeMap::new();
    for rel in RENEWABLE.iter().map(|r| r.path).chain(CAS) {
        let path = format!("/etc/kubernetes/{rel}");
        let o = tb.exec(i, &["cat", &path]).unwrap();
        if !o.status.success() {
            continue;
        }
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let pem = if rel.ends_with(".conf") {
            kubeconfig_client_cert(rel, &text).unwrap()
        } else {
            text
        };
        out.insert(rel.to_string(), cert_facts(rel, &pem).unwrap());
    }
    out
}

/// Every leaf of `before` was renewed in `after` (newer notBefore, new
/// serial, same subject, SANs and usages), every CA is unchanged.
pub fn assert_renewed(
    what: &str,
    before: &BTreeMap<String, CertFacts>,
    after: &BTreeMap<String, CertFacts>,
) {
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "{what}: same files"
    );
    for (rel, a) in before {
        let b = &after[rel];
        if CAS.contains(&rel.as_str()) {
            assert_eq!(a, b, "{what}: CA {rel} unchanged");
            continue;
        }
        assert!(
            b.not_before > a.not_before,
            "{what}: {rel} notBefore {} -> {}",
            a.not_before,
            b.not_before
        );
        assert_ne!(a.serial, b.serial, "{what}: {rel} serial");
        assert_eq!(
            (
                &a.subject_cn,
                &a.orgs,
                &a.sans,
                a.server_auth,
                a.client_auth
            ),
            (
                &b.subject_cn,
                &b.orgs,
                &b.sans,
                b.server_auth,
                b.client_auth
            ),
            "{what}: {rel} subject, SANs, usages"
        );
        assert_eq!(a.issuer_cn, b.issuer_cn, "{what}: {rel} issuer");
    }
}

/// The serial of the certificate a TLS server on node `i` presents at
/// `addr` (openssl s_client inside the node), lower-case hex.
pub fn served_serial(tb: &Testbed, i: usize, addr: &str) -> String {
    let script = format!(
        "openssl s_client -connect {addr} </dev/null 2>/dev/null | openssl x509 -noout -serial"
    );
    let out = tb.exec_ok(i, &["bash", "-c", &script]).unwrap();
    trim_serial(out.trim().trim_start_matches("serial="))
}

/// A hex serial without leading zeros, lower-case (x509 and openssl agree).
pub fn trim_serial(s: &str) -> String {
    s.trim_start_matches('0').to_ascii_lowercase()
}

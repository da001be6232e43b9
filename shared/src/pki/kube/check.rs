//! Checks a stored PKI set before it is used or pushed: every certificate
//! with a key beside it must parse and match that key, the three CAs and
//! the service-account pair must be there. A set torn by a crash (a
//! certificate without its key) or a truncated key is refused by name
//! instead of being pushed to a master or used to sign.

use std::collections::BTreeMap;

use rcgen::{KeyPair, PublicKeyData};

/// Files every stored set holds (paths relative to `/etc/kubernetes`).
pub const REQUIRED: [&str; 8] = [
    "pki/ca.crt",
    "pki/ca.key",
    "pki/front-proxy-ca.crt",
    "pki/front-proxy-ca.key",
    "pki/etcd/ca.crt",
    "pki/etcd/ca.key",
    "pki/sa.key",
    "pki/sa.pub",
];

/// One problem of a set: the file and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetProblem {
    pub file: String,
    pub reason: String,
}

fn problem(file: &str, reason: impl ToString) -> SetProblem {
    SetProblem {
        file: file.to_string(),
        reason: reason.to_string(),
    }
}

/// The public key bits of the first certificate in `pem`.
fn cert_public_key(pem: &str) -> Result<Vec<u8>, String> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
    let c = p.parse_x509().map_err(|e| e.to_string())?;
    Ok(c.public_key().subject_public_key.data.to_vec())
}

/// Whether `key_pem` is the private key of the certificate `cert_pem`.
fn pair_problem(cert: &str, key: &str) -> Option<String> {
    let k = match KeyPair::from_pem(key) {
        Ok(k) => k,
        Err(e) => return Some(format!("the key does not parse ({e})")),
    };
    match cert_public_key(cert) {
        Err(e) => Some(format!("the certificate does not parse ({e})")),
        Ok(pk) if pk != k.der_bytes() => Some("the key is not the certificate's".into()),
        Ok(_) => None,
    }
}

/// Every problem of the set `files` (relative path → contents).
pub fn check_set(files: &BTreeMap<String, String>) -> Vec<SetProblem> {
    let mut out: Vec<SetProblem> = REQUIRED
        .iter()
        .filter(|f| !files.contains_key(**f))
        .map(|f| problem(f, "missing"))
        .collect();
    for (path, cert) in files {
        let Some(stem) = path.strip_suffix(".crt") else {
            continue;
        };
        let key_path = format!("{stem}.key");
        match files.get(&key_path) {
            Some(key) => {
                if let Some(r) = pair_problem(cert, key) {
                    out.push(problem(&key_path, r));
                }
            }
            None if REQUIRED.contains(&path.as_str()) => {}
            None => out.push(problem(&key_path, "missing beside its certificate")),
        }
    }
    if let (Some(key), Some(public)) = (files.get("pki/sa.key"), files.get("pki/sa.pub")) {
        match KeyPair::from_pem(key) {
            Err(e) => out.push(problem(
                "pki/sa.key",
                format!("the key does not parse ({e})"),
            )),
            Ok(k) if k.public_key_pem().trim() != public.trim() => {
                out.push(problem("pki/sa.pub", "not the public key of sa.key"));
            }
            Ok(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::pki::kube::generate_all;

    fn set() -> BTreeMap<String, String> {
        generate_all(&super::super::tests::spec(34), OffsetDateTime::now_utc())
            .unwrap()
            .into_iter()
            .map(|f| (f.path, f.contents))
            .collect()
    }

    #[test]
    fn a_generated_set_is_sound_and_a_damaged_one_is_named() {
        let good = set();
        assert_eq!(check_set(&good), vec![]);

        let mut truncated = good.clone();
        let key = truncated.get_mut("pki/ca.key").unwrap();
        key.truncate(key.len() / 2);
        let p = check_set(&truncated);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].file, "pki/ca.key");
        assert!(p[0].reason.contains("does not parse"), "{p:?}");

        let mut swapped = good.clone();
        let other = swapped["pki/front-proxy-ca.key"].clone();
        swapped.insert("pki/ca.key".into(), other);
        let p = check_set(&swapped);
        assert_eq!(p[0].file, "pki/ca.key");
        assert_eq!(p[0].reason, "the key is not the certificate's");

        let mut torn = good.clone();
        torn.remove("pki/etcd/ca.key");
        torn.remove("pki/apiserver.key");
        let files: Vec<String> = check_set(&torn).into_iter().map(|p| p.file).collect();
        assert_eq!(files, ["pki/etcd/ca.key", "pki/apiserver.key"]);

        let mut sa = good;
        let other = set()["pki/sa.pub"].clone();
        sa.insert("pki/sa.pub".into(), other);
        assert_eq!(check_set(&sa)[0].file, "pki/sa.pub");
    }
}

//! `ferry cert --renew`: what `kubeadm certs renew all` renews, done on a
//! master's PKI directory (laid out as `/etc/kubernetes`). Every leaf
//! certificate signed by the three cluster CAs and the client certificate
//! of each component kubeconfig, re-issued by [`renew_leaf`] (same subject,
//! SANs and usages, a new key); never the CAs, the service-account keys or
//! `kubelet.conf` (the kubelet rotates its own client certificate).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_yaml_ng::Value;
use time::OffsetDateTime;

use super::PkiFile;
use super::certs::Ca;
use super::renew::{RenewError, renew_leaf};

/// A certificate file (`pki/x.crt` + `pki/x.key`) or a kubeconfig whose
/// embedded client certificate is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewKind {
    Cert,
    Kubeconfig,
}

/// One thing `certs renew all` renews.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewable {
    /// Relative to `/etc/kubernetes` (the `.crt` for a certificate).
    pub path: &'static str,
    /// The signing CA's stem under `pki/`: `ca`, `front-proxy-ca`, `etcd/ca`.
    pub ca: &'static str,
    pub kind: RenewKind,
}

const fn cert(path: &'static str, ca: &'static str) -> Renewable {
    Renewable {
        path,
        ca,
        kind: RenewKind::Cert,
    }
}

const fn conf(path: &'static str) -> Renewable {
    Renewable {
        path,
        ca: "ca",
        kind: RenewKind::Kubeconfig,
    }
}

/// kubeadm's renewal list (`renewal.NewManager`, stacked etcd).
/// `super-admin.conf` exists from 1.29 (on the first master only).
pub const RENEWABLE: [Renewable; 11] = [
    cert("pki/apiserver.crt", "ca"),
    cert("pki/apiserver-kubelet-client.crt", "ca"),
    cert("pki/front-proxy-client.crt", "front-proxy-ca"),
    cert("pki/apiserver-etcd-client.crt", "etcd/ca"),
    cert("pki/etcd/server.crt", "etcd/ca"),
    cert("pki/etcd/peer.crt", "etcd/ca"),
    cert("pki/etcd/healthcheck-client.crt", "etcd/ca"),
    conf("admin.conf"),
    conf("super-admin.conf"),
    conf("controller-manager.conf"),
    conf("scheduler.conf"),
];

impl Renewable {
    /// The files this renewal writes (a certificate and its key, or the
    /// kubeconfig).
    pub fn outputs(&self) -> Vec<String> {
        match self.kind {
            RenewKind::Cert => vec![self.path.to_string(), key_path(self.path)],
            RenewKind::Kubeconfig => vec![self.path.to_string()],
        }
    }
}

fn key_path(crt: &str) -> String {
    format!("{}.key", crt.trim_end_matches(".crt"))
}

fn bad(what: &str, reason: impl ToString) -> RenewError {
    RenewError::BadCert {
        what: what.to_string(),
        reason: reason.to_string(),
    }
}

/// The kubeconfig's current-context (cluster name, user name).
fn current(what: &str, v: &Value) -> Result<(String, String), RenewError> {
    let ctx_name = v["current-context"]
        .as_str()
        .ok_or_else(|| bad(what, "no current-context"))?;
    let ctx = v["contexts"]
        .as_sequence()
        .and_then(|s| s.iter().find(|c| c["name"].as_str() == Some(ctx_name)))
        .ok_or_else(|| bad(what, format!("no context `{ctx_name}`")))?;
    let field = |k: &str| {
        ctx["context"][k]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| bad(what, format!("context `{ctx_name}` has no {k}")))
    };
    Ok((field("cluster")?, field("user")?))
}

/// The entry named `name` in the kubeconfig list `list` (`users`, `clusters`).
fn entry<'a>(
    what: &str,
    v: &'a mut Value,
    list: &str,
    name: &str,
) -> Result<&'a mut Value, RenewError> {
    v[list]
        .as_sequence_mut()
        .and_then(|s| s.iter_mut().find(|e| e["name"].as_str() == Some(name)))
        .ok_or_else(|| bad(what, format!("no {list} entry `{name}`")))
}

/// A kubeconfig with its current user's client certificate renewed (and
/// the cluster's CA data set to the CA, as kubeadm's renewal writes it);
/// everything else is kept.
pub fn renew_kubeconfig(
    ca: &Ca,
    what: &str,
    kubeconfig: &str,
    now: OffsetDateTime,
) -> Result<String, RenewError> {
    let mut v: Value = serde_yaml_ng::from_str(kubeconfig).map_err(|e| bad(what, e))?;
    let (cluster, user) = current(what, &v)?;
    let u = &mut entry(what, &mut v, "users", &user)?["user"];
    let b64 = u["client-certificate-data"]
        .as_str()
        .ok_or_else(|| bad(what, "no embedded client-certificate-data"))?;
    let old = STANDARD.decode(b64.trim()).map_err(|e| bad(what, e))?;
    let old = String::from_utf8(old).map_err(|e| bad(what, e))?;
    let (crt, key) = renew_leaf(ca, what, &old, &[], now)?;
    u["client-certificate-data"] = Value::from(STANDARD.encode(crt));
    u["client-key-data"] = Value::from(STANDARD.encode(key));
    let c = &mut entry(what, &mut v, "clusters", &cluster)?["cluster"];
    c["certificate-authority-data"] = Value::from(STANDARD.encode(&ca.cert_pem));
    serde_yaml_ng::to_string(&v).map_err(|e| bad(what, e))
}

/// The renewables among the files `present` (paths relative to
/// `/etc/kubernetes`), in [`RENEWABLE`] order.
pub fn renewables_in<S: AsRef<str>>(present: &[S]) -> Vec<Renewable> {
    RENEWABLE
        .iter()
        .filter(|r| present.iter().any(|p| p.as_ref() == r.path))
        .copied()
        .collect()
}

/// Renews every renewable `read` finds (`read(rel)`: the file's text, or
/// `None` when absent), with the CAs `read` returns. The result: the new
/// files (certificates 0644, keys and kubeconfigs 0600). Blocking (RSA).
pub fn renew_all(
    read: impl Fn(&str) -> Option<String>,
    now: OffsetDateTime,
) -> Result<Vec<PkiFile>, RenewError> {
    let present: Vec<&str> = RENEWABLE
        .iter()
        .map(|r| r.path)
        .filter(|p| read(p).is_some())
        .collect();
    let mut cas: Vec<Ca> = Vec::new();
    let mut out = Vec::new();
    for r in renewables_in(&present) {
        if !cas.iter().any(|c| c.stem == r.ca) {
            cas.push(load_ca(&read, r.ca)?);
        }
        let ca = cas
            .iter()
            .find(|c| c.stem == r.ca)
            .ok_or_else(|| bad(r.ca, "CA not loaded"))?;
        let old = read(r.path).ok_or_else(|| bad(r.path, "vanished while renewing"))?;
        match r.kind {
            RenewKind::Cert => {
                let (crt, key) = renew_leaf(ca, r.path, &old, &[], now)?;
                out.push(PkiFile {
                    path: r.path.to_string(),
                    contents: crt,
                    mode: 0o644,
                });
                out.push(PkiFile {
                    path: key_path(r.path),
                    contents: key,
                    mode: 0o600,
                });
            }
            RenewKind::Kubeconfig => out.push(PkiFile {
                path: r.path.to_string(),
                contents: renew_kubeconfig(ca, r.path, &old, now)?,
                mode: 0o600,
            }),
        }
    }
    Ok(out)
}

fn load_ca(read: &impl Fn(&str) -> Option<String>, stem: &'static str) -> Result<Ca, RenewError> {
    let get = |ext: &str| {
        let rel = format!("pki/{stem}.{ext}");
        read(&rel).ok_or_else(|| bad(&rel, "missing: the CA is needed to renew"))
    };
    Ok(Ca::from_pem(stem, &get("crt")?, &get("key")?)?)
}

#[cfg(test)]
#[path = "renewal_tests.rs"]
mod tests;

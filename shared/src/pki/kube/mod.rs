//! The Kubernetes PKI ferry generates on the bastion, as sealos does
//! (reference: kubeadm's certificate list and sealos' SANs and 100-year
//! validity): three CAs (`kubernetes`, `front-proxy-ca`, `etcd-ca`), the
//! control-plane leaf certificates, the service-account key pair and the
//! component kubeconfigs. RSA-2048 keys like kubeadm.
//!
//! Pure: returns [`PkiFile`]s (paths relative to `/etc/kubernetes`) for the
//! caller to write; private keys have mode 0600.

mod certs;
mod check;
mod kubeconfig;
mod renew;
mod renewal;
mod spec;

pub use certs::{Ca, CaSet, NodeCerts, generate_cas, node_certs};
pub use check::{REQUIRED, SetProblem, check_set};
pub use kubeconfig::{KubeconfigUser, kubeconfigs};
pub use renew::{
    CertFacts, RenewError, cert_facts, kubeconfig_client_cert, reissue_apiserver, renew_leaf,
};
pub use renewal::{RENEWABLE, RenewKind, Renewable, renew_all, renew_kubeconfig, renewables_in};
pub use spec::{KubePkiSpec, SEALOS_VALIDITY_YEARS};

use time::OffsetDateTime;

/// One file of the PKI, relative to `/etc/kubernetes`.
#[derive(Clone, PartialEq, Eq)]
pub struct PkiFile {
    pub path: String,
    pub contents: String,
    pub mode: u32,
}

impl std::fmt::Debug for PkiFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Contents may be private keys.
        f.debug_struct("PkiFile")
            .field("path", &self.path)
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KubePkiError {
    #[error("generating an RSA key for {what} failed: {source}")]
    KeyGen { what: String, source: rcgen::Error },
    #[error("signing the {what} certificate failed: {source}")]
    Sign { what: String, source: rcgen::Error },
    #[error("`{0}` is neither an IP address nor a valid DNS name for a certificate SAN")]
    BadSan(String),
    #[error("service CIDR `{0}` is not an IPv4/IPv6 network (e.g. 10.96.0.0/22)")]
    BadCidr(String),
    #[error("loading the {what} CA failed: {source}; regenerate the cluster PKI or restore it")]
    LoadCa { what: String, source: rcgen::Error },
}

/// Everything for the first master: CAs, its leaf certificates, sa.key/pub
/// and the kubeconfigs.
pub fn generate_all(spec: &KubePkiSpec, now: OffsetDateTime) -> Result<Vec<PkiFile>, KubePkiError> {
    let cas = generate_cas(spec, now)?;
    let mut files = cas.files();
    files.extend(certs::service_account()?);
    files.extend(node_certs(&cas, spec, now)?.files);
    files.extend(kubeconfigs(&cas, spec, now)?);
    Ok(files)
}

#[cfg(test)]
mod tests;

//! CAs, leaf certificates and the service-account key pair.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use super::{KubePkiError, KubePkiSpec, PkiFile};

const KEY_MODE: u32 = 0o600;
const CERT_MODE: u32 = 0o644;
/// Certificates start this long before they are issued (kubeadm's
/// `CertificateBackdate`), for small clock differences.
pub(crate) const BACKDATE: Duration = Duration::minutes(5);

pub(crate) fn rsa_key(what: &str) -> Result<KeyPair, KubePkiError> {
    KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(|source| KubePkiError::KeyGen {
        what: what.to_string(),
        source,
    })
}

fn dn(cn: &str, orgs: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for o in orgs {
        dn.push(DnType::OrganizationName, *o);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

/// One certificate authority: cert PEM + key.
pub struct Ca {
    /// File stem under /etc/kubernetes/pki: `ca`, `front-proxy-ca`, `etcd/ca`.
    pub stem: &'static str,
    pub cert_pem: String,
    key: KeyPair,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("stem", &self.stem)
            .finish_non_exhaustive()
    }
}

impl Ca {
    fn generate(
        stem: &'static str,
        cn: &str,
        spec: &KubePkiSpec,
        now: OffsetDateTime,
    ) -> Result<Self, KubePkiError> {
        let key = rsa_key(cn)?;
        let mut p = CertificateParams::default();
        p.distinguished_name = dn(cn, &[]);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyCertSign,
        ];
        p.not_before = now - BACKDATE;
        p.not_after = spec.not_after(now);
        let cert = p.self_signed(&key).map_err(|source| KubePkiError::Sign {
            what: cn.to_string(),
            source,
        })?;
        Ok(Self {
            stem,
            cert_pem: cert.pem(),
            key,
        })
    }

    /// Loads a CA (e.g. from the bastion state) to issue more certificates.
    pub fn from_pem(
        stem: &'static str,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<Self, KubePkiError> {
        let load = |source| KubePkiError::LoadCa {
            what: stem.to_string(),
            source,
        };
        let key = KeyPair::from_pem(key_pem).map_err(load)?;
        Issuer::from_ca_cert_pem(cert_pem, &key).map_err(load)?;
        Ok(Self {
            stem,
            cert_pem: cert_pem.to_string(),
            key,
        })
    }

    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    fn files(&self) -> [PkiFile; 2] {
        [
            PkiFile {
                path: format!("pki/{}.crt", self.stem),
                contents: self.cert_pem.clone(),
                mode: CERT_MODE,
            },
            PkiFile {
                path: format!("pki/{}.key", self.stem),
                contents: self.key_pem(),
                mode: KEY_MODE,
            },
        ]
    }

    /// Issues a leaf certificate; returns (cert PEM, key PEM).
    pub(crate) fn issue(
        &self,
        leaf: &Leaf<'_>,
        spec: &KubePkiSpec,
        now: OffsetDateTime,
    ) -> Result<(String, String), KubePkiError> {
        self.issue_until(leaf, now, spec.not_after(now))
    }

    /// Issues a leaf certificate valid from `now` (backdated 5 minutes, as
    /// kubeadm does) until `not_after`, with a new RSA-2048 key.
    pub(crate) fn issue_until(
        &self,
        leaf: &Leaf<'_>,
        now: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<(String, String), KubePkiError> {
        let sign_err = |source| KubePkiError::Sign {
            what: leaf.cn.to_string(),
            source,
        };
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key).map_err(sign_err)?;
        let key = rsa_key(leaf.cn)?;
        let mut p = CertificateParams::default();
        p.distinguished_name = dn(leaf.cn, leaf.orgs);
        p.subject_alt_names = leaf.sans.clone();
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        if leaf.server {
            p.extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if leaf.client {
            p.extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        p.use_authority_key_identifier_extension = true;
        p.not_before = now - BACKDATE;
        p.not_after = not_after;
        let cert = p.signed_by(&key, &issuer).map_err(sign_err)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

pub(crate) struct Leaf<'a> {
    pub cn: &'a str,
    pub orgs: &'a [&'a str],
    pub sans: Vec<SanType>,
    pub server: bool,
    pub client: bool,
}

#[derive(Debug)]
pub struct CaSet {
    pub kubernetes: Ca,
    pub front_proxy: Ca,
    pub etcd: Ca,
}

impl CaSet {
    pub fn files(&self) -> Vec<PkiFile> {
        [&self.kubernetes, &self.front_proxy, &self.etcd]
            .into_iter()
            .flat_map(Ca::files)
            .collect()
    }
}

pub fn generate_cas(spec: &KubePkiSpec, now: OffsetDateTime) -> Result<CaSet, KubePkiError> {
    Ok(CaSet {
        kubernetes: Ca::generate("ca", "kubernetes", spec, now)?,
        front_proxy: Ca::generate("front-proxy-ca", "front-proxy-ca", spec, now)?,
        etcd: Ca::generate("etcd/ca", "etcd-ca", spec, now)?,
    })
}

/// A SAN from text: an IP address or a DNS name.
pub(crate) fn san(s: &str) -> Result<SanType, KubePkiError> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    if !is_dns_name(s) {
        return Err(KubePkiError::BadSan(s.to_string()));
    }
    let name = s
        .to_string()
        .try_into()
        .map_err(|_| KubePkiError::BadSan(s.to_string()))?;
    Ok(SanType::DnsName(name))
}

/// RFC 1123 host names, optionally with a leading `*.` wildcard label.
fn is_dns_name(s: &str) -> bool {
    let body = s.strip_prefix("*.").unwrap_or(s);
    !body.is_empty()
        && body.len() <= 253
        && body.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn push_unique(v: &mut Vec<SanType>, s: SanType) {
    if !v.contains(&s) {
        v.push(s);
    }
}

/// The Subject organisations kubeadm puts in client certificates, which
/// changed in 1.29: `system:masters` left the etcd clients (kubernetes
/// PRs 119859, 120521) and `apiserver-kubelet-client` moved to
/// `kubeadm:cluster-admins` (PR 121837).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafGroups {
    pub kubelet_client: &'static [&'static str],
    pub etcd_clients: &'static [&'static str],
}

impl LeafGroups {
    pub fn for_minor(kube_minor: u32) -> Self {
        if kube_minor >= 29 {
            Self {
                kubelet_client: &["kubeadm:cluster-admins"],
                etcd_clients: &[],
            }
        } else {
            Self {
                kubelet_client: &["system:masters"],
                etcd_clients: &["system:masters"],
            }
        }
    }
}

/// The leaf certificates of one control-plane node.
#[derive(Debug)]
pub struct NodeCerts {
    pub files: Vec<PkiFile>,
}

pub fn node_certs(
    cas: &CaSet,
    spec: &KubePkiSpec,
    now: OffsetDateTime,
) -> Result<NodeCerts, KubePkiError> {
    let mut api_sans = Vec::new();
    for name in ["kubernetes", "kubernetes.default", "kubernetes.default.svc"] {
        push_unique(&mut api_sans, san(name)?);
    }
    push_unique(
        &mut api_sans,
        san(&format!("kubernetes.default.svc.{}", spec.dns_domain))?,
    );
    push_unique(&mut api_sans, san(&spec.node_name)?);
    push_unique(&mut api_sans, san(&spec.control_plane_host)?);
    push_unique(&mut api_sans, SanType::IpAddress(spec.node_ip));
    for ip in spec.service_ips()? {
        push_unique(&mut api_sans, SanType::IpAddress(ip));
    }
    for s in &spec.cert_sans {
        push_unique(&mut api_sans, san(s)?);
    }
    let mut etcd_sans = vec![san("localhost")?, san(&spec.node_name)?];
    for ip in ["127.0.0.1", "::1"] {
        push_unique(&mut etcd_sans, san(ip)?);
    }
    push_unique(&mut etcd_sans, SanType::IpAddress(spec.node_ip));
    let groups = LeafGroups::for_minor(spec.kube_minor);

    let leaves: [(&Ca, &str, Leaf<'_>); 7] = [
        (
            &cas.kubernetes,
            "apiserver",
            Leaf {
                cn: "kube-apiserver",
                orgs: &[],
                sans: api_sans,
                server: true,
                client: false,
            },
        ),
        (
            &cas.kubernetes,
            "apiserver-kubelet-client",
            Leaf {
                cn: "kube-apiserver-kubelet-client",
                orgs: groups.kubelet_client,
                sans: vec![],
                server: false,
                client: true,
            },
        ),
        (
            &cas.front_proxy,
            "front-proxy-client",
            Leaf {
                cn: "front-proxy-client",
                orgs: &[],
                sans: vec![],
                server: false,
                client: true,
            },
        ),
        (
            &cas.etcd,
            "apiserver-etcd-client",
            Leaf {
                cn: "kube-apiserver-etcd-client",
                orgs: groups.etcd_clients,
                sans: vec![],
                server: false,
                client: true,
            },
        ),
        (
            &cas.etcd,
            "etcd/server",
            Leaf {
                cn: &spec.node_name,
                orgs: &[],
                sans: etcd_sans.clone(),
                server: true,
                client: true,
            },
        ),
        (
            &cas.etcd,
            "etcd/peer",
            Leaf {
                cn: &spec.node_name,
                orgs: &[],
                sans: etcd_sans,
                server: true,
                client: true,
            },
        ),
        (
            &cas.etcd,
            "etcd/healthcheck-client",
            Leaf {
                cn: "kube-etcd-healthcheck-client",
                orgs: groups.etcd_clients,
                sans: vec![],
                server: false,
                client: true,
            },
        ),
    ];
    let mut files = Vec::new();
    for (ca, stem, leaf) in &leaves {
        let (cert, key) = ca.issue(leaf, spec, now)?;
        files.push(PkiFile {
            path: format!("pki/{stem}.crt"),
            contents: cert,
            mode: CERT_MODE,
        });
        files.push(PkiFile {
            path: format!("pki/{stem}.key"),
            contents: key,
            mode: KEY_MODE,
        });
    }
    Ok(NodeCerts { files })
}

/// `sa.key` / `sa.pub`: the service-account token signing pair.
pub fn service_account() -> Result<[PkiFile; 2], KubePkiError> {
    let key = rsa_key("service accounts")?;
    Ok([
        PkiFile {
            path: "pki/sa.key".into(),
            contents: key.serialize_pem(),
            mode: KEY_MODE,
        },
        PkiFile {
            path: "pki/sa.pub".into(),
            contents: key.public_key_pem(),
            mode: CERT_MODE,
        },
    ])
}

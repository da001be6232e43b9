//! Component kubeconfigs with embedded client certificates, as kubeadm
//! writes them (`admin.conf`, `super-admin.conf` from 1.29,
//! `controller-manager.conf`, `scheduler.conf`, `kubelet.conf`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use time::OffsetDateTime;

use super::certs::{CaSet, Leaf};
use super::{KubePkiError, KubePkiSpec, PkiFile};

/// Who a kubeconfig authenticates as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigUser {
    pub file: &'static str,
    pub cn: String,
    pub orgs: Vec<&'static str>,
    /// Local components talk to their own apiserver, others to the endpoint.
    pub local: bool,
}

fn users(spec: &KubePkiSpec) -> Vec<KubeconfigUser> {
    let mut u = Vec::new();
    let admin_group = if spec.kube_minor >= 29 {
        "kubeadm:cluster-admins"
    } else {
        "system:masters"
    };
    u.push(KubeconfigUser {
        file: "admin.conf",
        cn: "kubernetes-admin".into(),
        orgs: vec![admin_group],
        local: false,
    });
    if spec.kube_minor >= 29 {
        u.push(KubeconfigUser {
            file: "super-admin.conf",
            cn: "kubernetes-super-admin".into(),
            orgs: vec!["system:masters"],
            local: false,
        });
    }
    u.push(KubeconfigUser {
        file: "controller-manager.conf",
        cn: "system:kube-controller-manager".into(),
        orgs: vec![],
        local: true,
    });
    u.push(KubeconfigUser {
        file: "scheduler.conf",
        cn: "system:kube-scheduler".into(),
        orgs: vec![],
        local: true,
    });
    u.push(KubeconfigUser {
        file: "kubelet.conf",
        cn: format!("system:node:{}", spec.node_name),
        orgs: vec!["system:nodes"],
        local: false,
    });
    u
}

fn render(server: &str, ca_pem: &str, user: &str, cert: &str, key: &str) -> String {
    let b = |s: &str| STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: {user}\n  name: {user}@kubernetes\ncurrent-context: {user}@kubernetes\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b(ca_pem),
        b(cert),
        b(key)
    )
}

pub fn kubeconfigs(
    cas: &CaSet,
    spec: &KubePkiSpec,
    now: OffsetDateTime,
) -> Result<Vec<PkiFile>, KubePkiError> {
    let local = match spec.node_ip {
        std::net::IpAddr::V6(ip) => format!("https://[{ip}]:{}", spec.control_plane_port),
        ip => format!("https://{ip}:{}", spec.control_plane_port),
    };
    users(spec)
        .into_iter()
        .map(|u| {
            let leaf = Leaf {
                cn: &u.cn,
                orgs: &u.orgs,
                sans: vec![],
                server: false,
                client: true,
            };
            let (cert, key) = cas.kubernetes.issue(&leaf, spec, now)?;
            let server = if u.local {
                local.clone()
            } else {
                spec.server_url()
            };
            Ok(PkiFile {
                path: u.file.to_string(),
                contents: render(&server, &cas.kubernetes.cert_pem, &u.cn, &cert, &key),
                mode: 0o600,
            })
        })
        .collect()
}

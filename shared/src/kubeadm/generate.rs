//! Building the documents from defaults, overlays and cluster facts.

use std::net::IpAddr;

use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};

use super::{BootstrapToken, KubeadmError, cidr_contains, v1beta4};

const DEFAULTS: &str = include_str!("defaults.yaml");
const API_PORT: u16 = 6443;
const ENDPOINT_HOST: &str = "apiserver.cluster.local";

/// What ferry knows about the cluster when it writes kubeadm configs.
#[derive(Debug, Clone)]
pub struct ClusterFacts {
    /// `v1.27.7`: selects v1beta3 (< 1.31) or v1beta4.
    pub kube_version: String,
    pub master0: IpAddr,
    pub masters: Vec<IpAddr>,
    pub vip: IpAddr,
    pub token: BootstrapToken,
    pub certificate_key: String,
}

/// Which `kubeadm join` a JoinConfiguration is for.
#[derive(Debug, Clone)]
pub enum JoinRole {
    /// A control-plane join through master0's apiserver.
    Master { ip: IpAddr },
    /// A worker join through the VIP (served by the node's LB controller).
    Worker { ip: IpAddr },
}

#[derive(Debug, Clone)]
pub struct KubeadmDocs {
    facts: ClusterFacts,
    docs: Vec<Value>,
}

pub(super) fn kind_of(v: &Value) -> &str {
    v.get("kind").and_then(Value::as_str).unwrap_or_default()
}

fn bad(what: &str, reason: impl Into<String>) -> KubeadmError {
    KubeadmError::BadDocument {
        what: what.to_string(),
        reason: reason.into(),
    }
}

/// Deep merge: maps key by key, everything else (lists too) replaced.
fn merge(dst: &mut Value, src: &Value) {
    match (dst, src) {
        (Value::Mapping(d), Value::Mapping(s)) => {
            for (k, v) in s {
                match d.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        d.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (d, s) => *d = s.clone(),
    }
}

pub(super) fn set(doc: &mut Value, path: &[&str], value: Value) {
    let mut cur = doc;
    for k in &path[..path.len() - 1] {
        if !cur.get(*k).is_some_and(Value::is_mapping)
            && let Value::Mapping(m) = cur
        {
            m.insert((*k).into(), Value::Mapping(Mapping::new()));
        }
        match cur.get_mut(*k) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let (Value::Mapping(m), Some(last)) = (cur, path.last()) {
        m.insert((*last).into(), value);
    }
}

fn str_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_sequence)
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn minor_of(version: &str) -> Result<u32, KubeadmError> {
    let bad = || KubeadmError::BadVersion(version.to_string());
    let mut parts = version.strip_prefix('v').unwrap_or(version).split('.');
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    if major != 1 || parts.next().is_none() {
        return Err(bad());
    }
    Ok(minor)
}

impl KubeadmDocs {
    /// Defaults, then each overlay document merged into the default of the
    /// same kind (overlays in precedence order: image, then Clusterfile),
    /// then the facts. Fails when the VIP lies in the pod or service CIDR.
    pub fn new(facts: ClusterFacts, overlays: &[Value]) -> Result<Self, KubeadmError> {
        minor_of(&facts.kube_version)?;
        let mut docs = Vec::new();
        for de in serde_yaml_ng::Deserializer::from_str(DEFAULTS) {
            docs.push(Value::deserialize(de).map_err(|e| bad("built-in default", e.to_string()))?);
        }
        for o in overlays {
            let kind = kind_of(o).to_string();
            let target = docs.iter_mut().find(|d| kind_of(d) == kind);
            let Some(target) = target else {
                return Err(bad(
                    &kind,
                    "unknown kind; expected a kubeadm, kubelet or kube-proxy configuration",
                ));
            };
            let mut o = o.clone();
            // Overlays may be v1beta2..4; the merge target is v1beta3.
            if let Value::Mapping(m) = &mut o {
                m.remove("apiVersion");
            }
            // certSANs add up (image, then Clusterfile) instead of the
            // later list replacing the earlier: a SAN never hurts, and
            // `ferry cert --alt-names` records its SANs in the Clusterfile.
            let mut sans = str_list(target.get("apiServer").and_then(|a| a.get("certSANs")));
            merge(target, &o);
            if !sans.is_empty() {
                for s in str_list(target.get("apiServer").and_then(|a| a.get("certSANs"))) {
                    if !sans.contains(&s) {
                        sans.push(s);
                    }
                }
                set(
                    target,
                    &["apiServer", "certSANs"],
                    sans.into_iter().map(Value::from).collect::<Vec<_>>().into(),
                );
            }
        }
        let mut me = Self { facts, docs };
        me.apply_facts()?;
        Ok(me)
    }

    /// A cluster of one host must run workloads on its master: unless a
    /// document already sets `nodeRegistration.taints`, the
    /// InitConfiguration gets `taints: []` so kubeadm leaves the
    /// control-plane taint off (sealos' `setInitTaints`, same condition).
    pub fn single_host(mut self, single: bool) -> Self {
        if !single {
            return self;
        }
        if let Some(init) = self.doc_mut("InitConfiguration")
            && init
                .get("nodeRegistration")
                .and_then(|n| n.get("taints"))
                .is_none_or(Value::is_null)
        {
            set(
                init,
                &["nodeRegistration", "taints"],
                Value::Sequence(Vec::new()),
            );
        }
        self
    }

    pub(super) fn kube_version(&self) -> &str {
        &self.facts.kube_version
    }

    pub(super) fn doc_mut(&mut self, kind: &str) -> Option<&mut Value> {
        self.docs.iter_mut().find(|d| kind_of(d) == kind)
    }

    fn doc(&self, kind: &str) -> Option<&Value> {
        self.docs.iter().find(|d| kind_of(d) == kind)
    }

    pub fn pod_subnet(&self) -> String {
        self.net_field("podSubnet")
    }

    pub fn service_subnet(&self) -> String {
        self.net_field("serviceSubnet")
    }

    fn net_field(&self, key: &str) -> String {
        self.doc("ClusterConfiguration")
            .and_then(|d| d.get("networking"))
            .and_then(|n| n.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    fn apply_facts(&mut self) -> Result<(), KubeadmError> {
        let f = self.facts.clone();
        for (which, cidr) in [
            ("pod", self.pod_subnet()),
            ("service", self.service_subnet()),
        ] {
            if cidr_contains(&cidr, f.vip)? {
                return Err(KubeadmError::VipInCidr {
                    vip: f.vip,
                    which,
                    cidr,
                });
            }
        }
        let m0 = f.master0.to_string();
        if let Some(init) = self.doc_mut("InitConfiguration") {
            set(
                init,
                &["localAPIEndpoint", "advertiseAddress"],
                m0.clone().into(),
            );
            set(
                init,
                &["nodeRegistration", "kubeletExtraArgs", "node-ip"],
                m0.clone().into(),
            );
            set(init, &["certificateKey"], f.certificate_key.clone().into());
            let token: Value = serde_yaml_ng::from_str(&format!(
                "[{{token: \"{}\", ttl: 24h0m0s, groups: [\"system:bootstrappers:kubeadm:default-node-token\"], usages: [signing, authentication]}}]",
                f.token.expose()
            ))
            .map_err(|e| bad("InitConfiguration", e.to_string()))?;
            set(init, &["bootstrapTokens"], token);
        }
        if let Some(cc) = self.doc_mut("ClusterConfiguration") {
            set(cc, &["kubernetesVersion"], f.kube_version.clone().into());
            let mut sans = vec![
                "127.0.0.1".to_string(),
                ENDPOINT_HOST.to_string(),
                f.vip.to_string(),
            ];
            sans.extend(f.masters.iter().map(IpAddr::to_string));
            for s in str_list(cc.get("apiServer").and_then(|a| a.get("certSANs"))) {
                if !sans.contains(&s) {
                    sans.push(s);
                }
            }
            set(
                cc,
                &["apiServer", "certSANs"],
                sans.into_iter().map(Value::from).collect::<Vec<_>>().into(),
            );
        }
        if let Some(kp) = self.doc_mut("KubeProxyConfiguration") {
            let mut excl = str_list(kp.get("ipvs").and_then(|i| i.get("excludeCIDRs")));
            let vip = match f.vip {
                IpAddr::V4(v) => format!("{v}/32"),
                IpAddr::V6(v) => format!("{v}/128"),
            };
            if !excl.contains(&vip) {
                excl.push(vip);
            }
            set(
                kp,
                &["ipvs", "excludeCIDRs"],
                excl.into_iter().map(Value::from).collect::<Vec<_>>().into(),
            );
        }
        Ok(())
    }

    fn emit(&self, docs: Vec<Value>) -> Result<String, KubeadmError> {
        let v4 = minor_of(&self.facts.kube_version)? >= 31;
        let mut out = String::new();
        for (i, mut d) in docs.into_iter().enumerate() {
            if v4 {
                v1beta4::convert(&mut d);
            }
            if i > 0 {
                out.push_str("---\n");
            }
            out.push_str(
                &serde_yaml_ng::to_string(&d).map_err(|e| bad(kind_of(&d), e.to_string()))?,
            );
        }
        Ok(out)
    }

    /// The `kubeadm init --config` file for master0.
    pub fn init_yaml(&self) -> Result<String, KubeadmError> {
        let kinds = [
            "InitConfiguration",
            "ClusterConfiguration",
            "KubeProxyConfiguration",
            "KubeletConfiguration",
        ];
        self.emit(kinds.iter().filter_map(|k| self.doc(k).cloned()).collect())
    }

    /// The `kubeadm init phase upload-certs --upload-certs --config` file:
    /// the InitConfiguration with `key` as its certificateKey (and no
    /// bootstrap token) and the ClusterConfiguration. kubeadm refuses
    /// `--certificate-key` beside `--config`, so the key travels in here.
    pub fn upload_certs_yaml(&self, key: &str) -> Result<String, KubeadmError> {
        let mut init = self
            .doc("InitConfiguration")
            .cloned()
            .ok_or_else(|| bad("InitConfiguration", "missing"))?;
        set(&mut init, &["certificateKey"], key.into());
        if let Value::Mapping(m) = &mut init {
            m.remove("bootstrapTokens");
        }
        let cluster = self
            .doc("ClusterConfiguration")
            .cloned()
            .ok_or_else(|| bad("ClusterConfiguration", "missing"))?;
        self.emit(vec![init, cluster])
    }

    /// The ClusterConfiguration alone (no token, no key): what `kubeadm
    /// config images list --config` reads on any node.
    pub fn images_yaml(&self) -> Result<String, KubeadmError> {
        self.emit(
            self.doc("ClusterConfiguration")
                .cloned()
                .into_iter()
                .collect(),
        )
    }

    /// The same documents with a fresh bootstrap token (and certificate
    /// key) for a later join batch: the init-time ones expire (24 h token,
    /// 2 h kubeadm-certs Secret).
    pub fn with_join_secrets(
        &self,
        token: BootstrapToken,
        certificate_key: Option<String>,
    ) -> Self {
        let mut me = self.clone();
        me.facts.token = token;
        if let Some(k) = certificate_key {
            me.facts.certificate_key = k;
        }
        me
    }

    /// The `kubeadm join --config` file for one node.
    pub fn join_yaml(&self, role: &JoinRole, ca_cert_hash: &str) -> Result<String, KubeadmError> {
        let mut join = self
            .doc("JoinConfiguration")
            .cloned()
            .ok_or_else(|| bad("JoinConfiguration", "missing"))?;
        let (ip, endpoint) = match role {
            JoinRole::Master { ip } => (*ip, sock(self.facts.master0)),
            JoinRole::Worker { ip } => (*ip, sock(self.facts.vip)),
        };
        set(
            &mut join,
            &["discovery", "bootstrapToken", "apiServerEndpoint"],
            endpoint.into(),
        );
        set(
            &mut join,
            &["discovery", "bootstrapToken", "token"],
            self.facts.token.expose().into(),
        );
        set(
            &mut join,
            &["discovery", "bootstrapToken", "caCertHashes"],
            vec![Value::from(ca_cert_hash)].into(),
        );
        set(
            &mut join,
            &["nodeRegistration", "kubeletExtraArgs", "node-ip"],
            ip.to_string().into(),
        );
        if let JoinRole::Master { ip } = role {
            set(
                &mut join,
                &["controlPlane", "localAPIEndpoint", "advertiseAddress"],
                ip.to_string().into(),
            );
            set(
                &mut join,
                &["controlPlane", "localAPIEndpoint", "bindPort"],
                API_PORT.into(),
            );
            set(
                &mut join,
                &["controlPlane", "certificateKey"],
                self.facts.certificate_key.clone().into(),
            );
        }
        self.emit(vec![join])
    }
}

fn sock(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v) => format!("{v}:{API_PORT}"),
        IpAddr::V6(v) => format!("[{v}]:{API_PORT}"),
    }
}

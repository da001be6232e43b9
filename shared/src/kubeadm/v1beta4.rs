//! kubeadm.k8s.io/v1beta3 → v1beta4: extraArgs maps become `[{name, value}]`
//! lists, `discovery.timeout` moves to `timeouts.discovery`, and (as sealos
//! does) ClusterConfiguration gets 876000h certificate validity periods.

use serde_yaml_ng::{Mapping, Value};

pub const V1BETA3: &str = "kubeadm.k8s.io/v1beta3";
pub const V1BETA4: &str = "kubeadm.k8s.io/v1beta4";
const VALIDITY: &str = "876000h";

fn args_to_list(v: &mut Value) {
    if let Value::Mapping(m) = v {
        let mut items: Vec<(String, Value)> = m
            .iter()
            .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), v.clone()))
            .collect();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let list = items
            .into_iter()
            .map(|(name, value)| {
                let mut e = Mapping::new();
                e.insert("name".into(), name.into());
                let value = match value {
                    Value::String(s) => s,
                    Value::Bool(b) => b.to_string(),
                    Value::Number(n) => n.to_string(),
                    other => serde_yaml_ng::to_string(&other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                e.insert("value".into(), value.into());
                Value::Mapping(e)
            })
            .collect();
        *v = Value::Sequence(list);
    }
}

fn at<'a>(doc: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter().try_fold(doc, |cur, k| cur.get_mut(*k))
}

/// Converts one kubeadm document in place; other documents are untouched.
pub fn convert(doc: &mut Value) {
    if doc.get("apiVersion").and_then(Value::as_str) != Some(V1BETA3) {
        return;
    }
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Value::Mapping(m) = &mut *doc {
        m.insert("apiVersion".into(), V1BETA4.into());
    }
    for path in [
        &["apiServer", "extraArgs"][..],
        &["controllerManager", "extraArgs"],
        &["scheduler", "extraArgs"],
        &["etcd", "local", "extraArgs"],
        &["nodeRegistration", "kubeletExtraArgs"],
    ] {
        if let Some(v) = at(doc, path) {
            args_to_list(v);
        }
    }
    let Value::Mapping(m) = doc else { return };
    if kind == "JoinConfiguration" {
        let timeout = m
            .get_mut("discovery")
            .and_then(Value::as_mapping_mut)
            .and_then(|d| d.remove("timeout"));
        if let Some(t) = timeout {
            let mut timeouts = Mapping::new();
            timeouts.insert("discovery".into(), t);
            m.insert("timeouts".into(), Value::Mapping(timeouts));
        }
    }
    if kind == "ClusterConfiguration" {
        for key in ["certificateValidityPeriod", "caCertificateValidityPeriod"] {
            if !m.contains_key(key) {
                m.insert(key.into(), VALIDITY.into());
            }
        }
    }
}

//! The upgrade part of `ferry plan`: when the rootfs image's version
//! differs from the one the stored cluster runs, the plan says from/to,
//! the order of hosts, drains and the images the new rootfs brings — or
//! why the run will be refused.

use ferry_shared::clusterfile::{Clusterfile, ROLE_MASTER, ResolvedHost};
use ferry_shared::image::ImageType;
use ferry_shared::kubeadm::{upgrade_order, upgrade_path};
use ferry_shared::pipeline::{HostChange, HostPlan};

use crate::pipeline::image_store::ImageInfo;
use crate::pipeline::upgrade::UpgradeOpts;

/// The Kubernetes version the stored cluster's rootfs image says.
fn stored_version(stored: &Clusterfile) -> Option<String> {
    stored
        .cluster
        .status
        .mounts
        .iter()
        .find(|m| m.kind == ImageType::Rootfs.as_str())
        .and_then(|m| m.labels.get("version").cloned())
}

fn new_version(found: &[(String, ImageInfo)]) -> Option<String> {
    found
        .iter()
        .find(|(_, i)| i.config.image_type() == ImageType::Rootfs)
        .and_then(|(_, i)| i.config.labels.get("version").cloned())
}

/// Rewrites the kept hosts' rows for an upgrade and returns the notes.
pub fn upgrade_rows(
    rows: &mut [HostPlan],
    stored: &Clusterfile,
    found: &[(String, ImageInfo)],
    hosts: &[ResolvedHost],
    master0: &ResolvedHost,
    opts: &UpgradeOpts,
) -> Vec<String> {
    let (Some(from), Some(to)) = (stored_version(stored), new_version(found)) else {
        return Vec::new();
    };
    let up = match upgrade_path(&from, &to) {
        Ok(Some(u)) => u,
        Ok(None) => return Vec::new(),
        Err(e) => return vec![format!("upgrade refused (nothing will change): {e}")],
    };
    let key = |h: &ResolvedHost| h.addr.to_string();
    let masters: Vec<String> = hosts
        .iter()
        .filter(|h| h.has_role(ROLE_MASTER) && h.addr.ip != master0.addr.ip)
        .map(key)
        .collect();
    let workers: Vec<String> = hosts
        .iter()
        .filter(|h| !h.has_role(ROLE_MASTER))
        .map(key)
        .collect();
    let order = upgrade_order(&key(master0), &masters, &workers, opts.max_unavailable);
    let drain = if opts.drain.is_some() {
        "drain"
    } else {
        "cordon"
    };
    for row in rows.iter_mut().filter(|r| r.change == HostChange::Keep) {
        let kubeadm = if row.host == key(master0) {
            format!("kubeadm upgrade apply {}", up.to)
        } else {
            "kubeadm upgrade node".to_string()
        };
        row.steps.retain(|s| s.starts_with("distribute"));
        if !row.steps.iter().any(|s| s == "distribute rootfs") {
            row.steps.insert(0, "distribute rootfs".into());
        }
        row.steps.extend([
            kubeadm,
            drain.to_string(),
            format!("kubelet+kubectl {}", up.to),
            "Ready".into(),
            "uncordon".into(),
        ]);
    }
    let batches: Vec<String> = order.iter().map(|b| b.join("+")).collect();
    let images: Vec<String> = [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-proxy",
    ]
    .iter()
    .map(|c| format!("{c}:{}", up.to))
    .collect();
    vec![
        format!(
            "upgrade {} → {}, in this order: {}; each host: {drain}, new kubelet, Ready at {}, uncordon",
            up.from,
            up.to,
            batches.join(" → "),
            up.to
        ),
        format!(
            "upgrade images preloaded from the new rootfs' registry through sealos.hub:5000: {} (+ etcd, coredns, pause as kubeadm {} lists them)",
            images.join(", "),
            up.to
        ),
    ]
}

//! The first two steps: check (`check/`, re-exported here) and images (mount, Config documents, render; skipped when the journal has
//! the same inputs; then the kubeadm configuration is generated once to
//! refuse a VIP inside the pod/service CIDRs before any node changes).

use std::net::IpAddr;

use ferry_shared::EventKind;
use ferry_shared::clusterfile::{ROLE_MASTER, ResolvedHost};
use ferry_shared::image::{EnvLayers, ImageType, parse_env_list};
use ferry_shared::kubeadm::{BootstrapToken, ClusterFacts, KubeadmDocs, KubeadmError};
use ferry_shared::pipeline::check::{VipOverlap, vip_problems};
use ferry_shared::pipeline::{Outcome, Step, digest};
use serde::Deserialize;

use super::PipelineError;
pub(super) use super::check::{Checked, check};
use super::ctx::{Ctx, Inputs};
use super::images::{self, Mounts};
use super::journal::Recorder;
use crate::state::ClusterState;

pub(super) async fn prepare(
    state: &ClusterState,
    rec: &Recorder,
    inp: &Inputs,
    hosts: Vec<ResolvedHost>,
    checked: Checked,
) -> Result<Ctx, PipelineError> {
    let Checked {
        nodes,
        hostnames,
        arches,
        images: loaded,
        traits: host_traits,
    } = checked;
    let step = Step::Images;
    rec.step_event(
        step,
        "",
        EventKind::Started,
        &inp.cf.cluster.spec.image.join(", "),
    );
    let stack = Ctx::stack(&loaded).map_err(|e| PipelineError::cluster(step, e))?;
    if stack.rootfs().is_none() {
        return Err(PipelineError::cluster(
            step,
            "no rootfs image (label sealos.io.type=rootfs) among the images",
        ));
    }
    // The rootfs tree's env: the rootfs and patch images' ENV (each
    // application image sees its own ENV instead, sealos' per-mount env).
    let rootfs_image_env: Vec<String> = loaded
        .iter()
        .filter(|i| i.config.image_type() != ImageType::Application)
        .flat_map(|i| i.config.env.iter().cloned())
        .collect();
    let layers = EnvLayers {
        image: parse_env_list(&rootfs_image_env).0,
        spec: inp.cf.cluster.spec.env.clone(),
        cli: inp.cli_env.clone(),
    };
    let (cluster_env, warnings) = layers.cluster_env();
    for w in warnings {
        rec.step_event(step, "", EventKind::Progress, &format!("warning: {w}"));
    }
    let meta = stack.meta(&cluster_env);
    let kube_version = meta.kube_version.clone().ok_or_else(|| {
        PipelineError::cluster(
            step,
            "the rootfs image has no `version` label (Kubernetes version)",
        )
    })?;
    let vip_text = meta.effective_vip(&cluster_env);
    let vip = vip_text.parse().map_err(|_| {
        PipelineError::cluster(
            step,
            format!("VIP `{vip_text}` is not an IP address (-e defaultVIP=...)"),
        )
    })?;
    let configs: Vec<ferry_shared::config_doc::ConfigDoc> = {
        let mut text = String::new();
        for d in inp.cf.config_docs() {
            text.push_str("---\n");
            text.push_str(&serde_yaml_ng::to_string(&d.value).unwrap_or_default());
        }
        if text.is_empty() {
            Vec::new()
        } else {
            ferry_shared::config_doc::parse_config_docs(&text)
                .map_err(|e| PipelineError::cluster(step, e))?
        }
    };
    let cfg_text = format!("{configs:?}");
    let img_digests: Vec<&str> = loaded.iter().map(|i| i.digest.as_str()).collect();
    let configs_digest = digest(&[&cfg_text]);
    let base_digest = digest(&[
        &img_digests.join(","),
        &cfg_text,
        &format!("{cluster_env:?}"),
    ]);
    let mdir = state.dir().join("mounts");
    let mounts = if rec.is_done(step, "", &base_digest) && mdir.join("rootfs").is_dir() {
        rec.step_event(step, "", EventKind::Finished, "skipped (done)");
        existing_mounts(&mdir, &loaded)
    } else {
        let (d, l, c, e) = (
            mdir.clone(),
            loaded.clone(),
            configs.clone(),
            layers.clone(),
        );
        let m = tokio::task::spawn_blocking(move || images::mount(&d, &l, &c, &e))
            .await
            .map_err(|e| PipelineError::cluster(step, e))??;
        rec.record(step, "", &base_digest, Outcome::Done, "")?;
        rec.step_event(step, "", EventKind::Finished, &mdir.display().to_string());
        m
    };
    let mut overlays = Vec::new();
    let kubeadm_yml = mounts.rootfs.join("etc/kubeadm.yml");
    if let Ok(text) = std::fs::read_to_string(&kubeadm_yml) {
        for de in serde_yaml_ng::Deserializer::from_str(&text) {
            let v = serde_yaml_ng::Value::deserialize(de).map_err(|e| {
                PipelineError::cluster(step, format!("{}: {e}", kubeadm_yml.display()))
            })?;
            if !v.is_null() {
                overlays.push(v);
            }
        }
    }
    overlays.extend(inp.cf.kube_config_docs().map(|d| d.value.clone()));
    let master0 = inp.cf.cluster.master0()?;
    let registry = inp.cf.cluster.registry_hosts()?;
    if let Err(detail) = vip_outside_cidrs(&hosts, &master0, vip, &kube_version, &overlays) {
        rec.step_event(step, "", EventKind::Failed, &detail);
        return Err(PipelineError::cluster(step, detail));
    }
    let mount_rootfs = mounts.rootfs.clone();
    Ok(Ctx {
        rec: rec.clone(),
        tls: inp.install.tls.clone(),
        state: state.clone(),
        cf: inp.cf.clone(),
        hosts,
        master0,
        registry,
        nodes,
        hostnames,
        arches,
        images: loaded,
        mounts,
        mount_rootfs,
        labels: stack.merged_labels(),
        env: layers,
        kube_version,
        vip,
        kube_overlays: overlays,
        host_traits,
        command_overrides: super::guest::command_overrides(&inp.cf),
        configs_digest,
        upgrade: None,
        upgrade_opts: inp.upgrade,
        data_dir: super::data_dir(state.name()),
        concurrency: inp.concurrency,
        base_digest,
    })
}

/// Generates the kubeadm configuration once (throwaway token, nothing
/// kept) so that a VIP inside the pod or service CIDR, or a broken kubeadm
/// document, stops the run before any node changes.
fn vip_outside_cidrs(
    hosts: &[ResolvedHost],
    master0: &ResolvedHost,
    vip: IpAddr,
    kube_version: &str,
    overlays: &[serde_yaml_ng::Value],
) -> Result<(), String> {
    let facts = ClusterFacts {
        kube_version: kube_version.to_string(),
        master0: master0.addr.ip,
        masters: hosts
            .iter()
            .filter(|h| h.has_role(ROLE_MASTER))
            .map(|h| h.addr.ip)
            .collect(),
        vip,
        token: BootstrapToken::from_random(&[0; 22]),
        certificate_key: String::new(),
    };
    match KubeadmDocs::new(facts, overlays) {
        Ok(docs) => {
            let p = vip_problems(vip, &docs.pod_subnet(), &docs.service_subnet());
            if p.is_empty() {
                Ok(())
            } else {
                Err(p.join("; "))
            }
        }
        Err(KubeadmError::VipInCidr { vip, which, cidr }) => {
            Err(VipOverlap { vip, which, cidr }.to_string())
        }
        Err(e) => Err(format!(
            "kubeadm configuration: {e}; next: fix the image's etc/kubeadm.yml or the Clusterfile's kubeadm documents"
        )),
    }
}

fn existing_mounts(dir: &std::path::Path, loaded: &[images::LoadedImage]) -> Mounts {
    let mut ordered: Vec<&images::LoadedImage> = loaded.iter().collect();
    ordered.sort_by_key(|i| i.config.image_type());
    let apps = ordered
        .iter()
        .enumerate()
        .filter(|(_, i)| i.config.image_type() == ferry_shared::image::ImageType::Application)
        .filter_map(|(idx, i)| {
            let prefix = format!("{idx}-");
            std::fs::read_dir(dir.join("apps"))
                .ok()?
                .filter_map(Result::ok)
                .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| (i.config.name.clone(), e.path()))
        })
        .collect();
    let reg = dir.join("registry");
    Mounts {
        rootfs: dir.join("rootfs"),
        registry: reg.is_dir().then_some(reg),
        apps,
    }
}

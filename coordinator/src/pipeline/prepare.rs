//! The first two steps: check (agents installed or upgraded over SSH,
//! unique hostnames, an even master count warned) and images (load, mount,
//! Config documents, render; skipped when the journal has the same inputs).

use std::collections::BTreeMap;

use ferry_shared::EventKind;
use ferry_shared::clusterfile::{ROLE_MASTER, ResolvedHost};
use ferry_shared::image::EnvLayers;
use ferry_shared::pipeline::{Outcome, Step, digest};
use serde::Deserialize;

use super::PipelineError;
use super::ctx::{Ctx, DEFAULT_VIP, Inputs};
use super::images::{self, Mounts};
use super::journal::Recorder;
use super::node::NodeRef;
use crate::fanout;
use crate::install::{self, HostJob};
use crate::state::ClusterState;

pub(super) async fn check(
    state: &ClusterState,
    rec: &Recorder,
    inp: &Inputs,
    hosts: &[ResolvedHost],
) -> Result<
    (
        BTreeMap<std::net::IpAddr, NodeRef>,
        BTreeMap<std::net::IpAddr, String>,
    ),
    PipelineError,
> {
    rec.step_event(
        Step::Check,
        "",
        EventKind::Started,
        &format!("{} hosts", hosts.len()),
    );
    let masters = hosts.iter().filter(|h| h.has_role(ROLE_MASTER)).count();
    if masters % 2 == 0 {
        rec.step_event(
            Step::Check,
            "",
            EventKind::Progress,
            &format!(
                "warning: {masters} masters: an even count gives etcd no extra fault tolerance"
            ),
        );
    }
    let mut jobs = Vec::new();
    for h in hosts {
        let target = inp.targets.get(&h.addr.ip).cloned().ok_or_else(|| {
            PipelineError::host(
                &h.addr.to_string(),
                Step::Check,
                "no SSH settings for this host",
            )
        })?;
        jobs.push(HostJob {
            target,
            roles: h.roles.clone(),
        });
    }
    let ictx = inp.install.clone();
    let results = fanout::for_each(jobs, inp.concurrency, move |job| {
        install::install_host(job, ictx.clone())
    })
    .await;
    let mut inv = state.load_inventory()?;
    let mut nodes = BTreeMap::new();
    let mut names = BTreeMap::new();
    let mut errors = Vec::new();
    for (h, res) in hosts.iter().zip(results) {
        match res {
            Ok(recd) => {
                nodes.insert(
                    h.addr.ip,
                    NodeRef {
                        host: h.addr.to_string(),
                        ip: h.addr.ip,
                        agent_port: recd.agent_port,
                    },
                );
                names.insert(h.addr.ip, recd.hostname.clone());
                inv.upsert(recd);
            }
            Err(e) => errors.push(format!("{}: [{}] {e}", h.addr, e.phase())),
        }
    }
    state.save_inventory(&inv)?;
    if !errors.is_empty() {
        return Err(PipelineError::cluster(
            Step::Check,
            format!(
                "agents not ready on {} hosts:\n  {}",
                errors.len(),
                errors.join("\n  ")
            ),
        ));
    }
    let mut seen: BTreeMap<&str, std::net::IpAddr> = BTreeMap::new();
    for (ip, n) in &names {
        if let Some(other) = seen.insert(n.as_str(), *ip) {
            return Err(PipelineError::cluster(
                Step::Check,
                format!(
                    "hosts {other} and {ip} share the hostname `{n}`; Kubernetes node names must be unique"
                ),
            ));
        }
    }
    rec.step_event(Step::Check, "", EventKind::Finished, "");
    Ok((nodes, names))
}

pub(super) async fn prepare(
    state: &ClusterState,
    rec: &Recorder,
    inp: &Inputs,
    hosts: Vec<ResolvedHost>,
    nodes: BTreeMap<std::net::IpAddr, NodeRef>,
    hostnames: BTreeMap<std::net::IpAddr, String>,
) -> Result<Ctx, PipelineError> {
    let step = Step::Images;
    rec.step_event(
        step,
        "",
        EventKind::Started,
        &inp.cf.cluster.spec.image.join(", "),
    );
    if inp.cf.cluster.spec.image.is_empty() {
        return Err(PipelineError::cluster(
            step,
            "no image: give IMAGE arguments or spec.image",
        ));
    }
    let src = inp.images.clone();
    let names = inp.cf.cluster.spec.image.clone();
    let loaded = tokio::task::spawn_blocking(move || images::load(src.as_ref(), &names))
        .await
        .map_err(|e| PipelineError::cluster(step, e))??;
    let stack = Ctx::stack(&loaded).map_err(|e| PipelineError::cluster(step, e))?;
    if stack.rootfs().is_none() {
        return Err(PipelineError::cluster(
            step,
            "no rootfs image (label sealos.io.type=rootfs) among the images",
        ));
    }
    let layers = EnvLayers {
        image: stack.merged_env(),
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
    let vip_text = meta
        .vip
        .clone()
        .filter(|v| !v.is_empty() && !v.starts_with('$'))
        .or_else(|| cluster_env.get("defaultVIP").cloned())
        .unwrap_or_else(|| DEFAULT_VIP.to_string());
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
            cluster_env.clone(),
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
        images: loaded,
        mounts,
        mount_rootfs,
        labels: stack.merged_labels(),
        env: layers,
        kube_version,
        vip,
        kube_overlays: overlays,
        command_override: inp.cf.cluster.spec.command.clone(),
        data_dir: super::data_dir(state.name()),
        concurrency: inp.concurrency,
        base_digest,
    })
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

//! The dry runs: `ferry plan`, `ferry apply --dry-run` and `ferry gen`.
//! Images are read as the run would find them (a directory, or a reference
//! from the local OCI store) but never pulled or unpacked: an image the
//! store lacks is reported with what to do ("ferry pull it first"), and the
//! plan or the generated config is still printed without it.

use ferry_shared::clusterfile::{Clusterfile, ResolvedHost};
use ferry_shared::image::ImageType;
use ferry_shared::pipeline::{HostChange, HostPlan, Plan, host_diff};

use super::{CliError, Exit, cluster_from_flags, resolve_single, usage};
use crate::cli::RunArgs;
use crate::output::Reporter;
use crate::pipeline::image_store::{ImageInfo, StoreImages};
use crate::pipeline::load_clusterfile;
use crate::pipeline::upgrade::UpgradeOpts;
use crate::state::ClusterState;

/// The Kubernetes version `ferry gen` assumes when no image says.
const DEFAULT_KUBE_VERSION: &str = "v1.27.7";

fn store_images(cluster: &ClusterState) -> StoreImages {
    StoreImages::new(cluster.dir().parent().unwrap_or(cluster.dir()))
}

/// Each image's info, or a note saying why it is unknown.
fn inspect_all(
    cluster: &ClusterState,
    images: &[String],
) -> (Vec<(String, ImageInfo)>, Vec<String>) {
    let src = store_images(cluster);
    let (mut found, mut notes) = (Vec::new(), Vec::new());
    for i in images {
        match src.inspect(i) {
            Ok(info) => found.push((i.clone(), info)),
            Err(e) => notes.push(e.to_string()),
        }
    }
    (found, notes)
}

/// The plan of applying `new` over the stored Clusterfile, and notes about
/// images it could not size (not in the store: never pulled here).
pub fn plan(
    cluster: &ClusterState,
    new: &Clusterfile,
    upgrade: &UpgradeOpts,
) -> Result<(Plan, Vec<String>), CliError> {
    let stored = load_clusterfile(cluster)?;
    let old: Vec<ResolvedHost> = match &stored {
        Some(o) => o.cluster.resolved_hosts().map_err(usage)?,
        None => Vec::new(),
    };
    let hosts = new.cluster.resolved_hosts().map_err(usage)?;
    let master0 = new.cluster.master0().map_err(usage)?;
    let (mut rootfs, mut apps) = (0, 0);
    let (found, notes) = inspect_all(cluster, &new.cluster.spec.image);
    for (_, i) in &found {
        match i.config.image_type() {
            ImageType::Application => apps += i.bytes,
            _ => rootfs += i.bytes,
        }
    }
    let mut rows = Vec::new();
    for (h, change) in host_diff(&old, &hosts) {
        rows.push(HostPlan::new(&h, change, &master0, rootfs, apps).map_err(usage)?);
    }
    let mut notes: Vec<String> = notes
        .into_iter()
        .map(|n| format!("{n} (the sizes above leave it out)"))
        .collect();
    if let Some(o) = &stored {
        installs_on_kept_hosts(&mut rows, &o.cluster.spec.image, &found, &master0);
        notes.extend(super::plan_upgrade::upgrade_rows(
            &mut rows, o, &found, &hosts, &master0, upgrade,
        ));
        if o.cluster.spec.env != new.cluster.spec.env || o.docs != new.docs {
            notes.push("the env or the Config documents changed: kept hosts also get the re-rendered files that differ, and commands whose expanded text changed run again".into());
        }
    }
    let p = Plan {
        cluster: cluster.name().to_string(),
        images: new.cluster.spec.image.clone(),
        hosts: rows,
    };
    Ok((p, notes))
}

/// The kept hosts of a running cluster: only the images not in it before
/// move and run (an application's tree and CMD on master0; a patch's tree
/// and CMD on every host). Journaled steps with unchanged inputs are
/// skipped, so a kept host with no new image has nothing to do.
fn installs_on_kept_hosts(
    rows: &mut [HostPlan],
    old_images: &[String],
    found: &[(String, ImageInfo)],
    master0: &ResolvedHost,
) {
    let added: Vec<&(String, ImageInfo)> = found
        .iter()
        .filter(|(n, _)| !old_images.contains(n))
        .collect();
    for row in rows.iter_mut().filter(|r| r.change == HostChange::Keep) {
        let is_master0 = row.host == master0.addr.to_string();
        let (mut steps, mut bytes) = (Vec::new(), 0);
        for (name, info) in &added {
            let tree = match info.config.image_type() {
                ImageType::Application if is_master0 => format!("distribute app:{name}"),
                ImageType::Application => continue,
                _ => "distribute rootfs".to_string(),
            };
            bytes += info.bytes;
            steps.push(tree);
            let has_cmd = !info.config.cmd.is_empty() || !info.config.entrypoint.is_empty();
            if has_cmd {
                steps.push(format!("guest {name}"));
            }
        }
        row.steps = steps;
        row.bytes = bytes;
    }
}

/// Human: one line per host, then the notes. JSON: one object, the plan
/// with a `notes` list.
pub fn print_plan(r: &Reporter, p: &Plan, notes: &[String]) {
    if r.is_json() {
        let mut v = serde_json::to_value(p).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("notes".into(), notes.into());
        }
        println!("{v}");
        return;
    }
    r.text(&format!(
        "plan for cluster `{}`: images {}",
        p.cluster,
        p.images.join(", ")
    ));
    for h in &p.hosts {
        let what = match h.change {
            HostChange::Add => "add",
            HostChange::Keep => "keep",
            HostChange::Remove => "remove",
        };
        let steps = if h.steps.is_empty() {
            "nothing to do".to_string()
        } else {
            h.steps.join(" → ")
        };
        let via = match &h.reach {
            Some(x) if x.ssh => format!("; via SSH ({})", x.why),
            Some(x) => format!("; no SSH ({})", x.why),
            None => String::new(),
        };
        r.text(&format!(
            "  {:<22} {what:<7} [{}] {} bytes: {steps}{via}",
            h.host,
            h.roles.join(","),
            h.bytes,
        ));
    }
    if p.hosts.iter().any(|h| h.reach.is_some()) {
        let ssh = p
            .hosts
            .iter()
            .filter(|h| h.reach.as_ref().is_some_and(|x| x.ssh))
            .count();
        r.text(&format!(
            "SSH is needed for {ssh} of {} hosts",
            p.hosts.len()
        ));
    }
    for n in notes {
        r.text(&format!("note: {n}"));
    }
}

/// `ferry gen`: the Clusterfile of the flags, then the kubeadm init
/// configuration for the images' Kubernetes version.
pub fn gen_cmd(cluster: &ClusterState, _r: &Reporter, mut a: RunArgs) -> Result<Exit, CliError> {
    resolve_single(&mut a)?;
    let cf = cluster_from_flags(cluster.name(), &a)?;
    let text = cf.to_yaml(true).map_err(usage)?;
    print!("{text}");
    let (found, notes) = inspect_all(cluster, &a.images);
    let version = found
        .iter()
        .find_map(|(_, i)| i.config.labels.get("version").cloned());
    for n in &notes {
        eprintln!("note: {n}");
    }
    if version.is_none() && !a.images.is_empty() {
        eprintln!(
            "note: no image says its Kubernetes version; the kubeadm configuration below is for {DEFAULT_KUBE_VERSION}"
        );
    }
    let version = version.unwrap_or_else(|| DEFAULT_KUBE_VERSION.to_string());
    if let Ok(m0) = cf.cluster.master0() {
        let hosts = cf.cluster.resolved_hosts().map_err(usage)?;
        let facts = ferry_shared::kubeadm::ClusterFacts {
            kube_version: version,
            master0: m0.addr.ip,
            masters: hosts
                .iter()
                .filter(|h| h.has_role("master"))
                .map(|h| h.addr.ip)
                .collect(),
            vip: effective_vip(&found, &cf.cluster.spec.env, &a.env)
                .parse()
                .map_err(|_| usage("the VIP is not an IP address (-e defaultVIP=...)"))?,
            token: ferry_shared::kubeadm::BootstrapToken::parse("abcdef.0123456789abcdef")
                .map_err(usage)?,
            certificate_key: String::new(),
        };
        let overlays: Vec<serde_yaml_ng::Value> =
            cf.kube_config_docs().map(|d| d.value.clone()).collect();
        let docs = ferry_shared::kubeadm::KubeadmDocs::new(facts, &overlays)
            .map_err(usage)?
            .single_host(hosts.len() == 1);
        print!("---\n{}", docs.init_yaml().map_err(usage)?);
    }
    Ok(Exit::Ok)
}

/// The VIP a run of these images would use (same rule as the pipeline).
fn effective_vip(found: &[(String, ImageInfo)], spec: &[String], cli: &[String]) -> String {
    let mut labels = std::collections::BTreeMap::new();
    let mut image = std::collections::BTreeMap::new();
    for (_, i) in found {
        labels.extend(i.config.labels.clone());
        image.extend(ferry_shared::image::parse_env_list(&i.config.env).0);
    }
    let layers = ferry_shared::image::EnvLayers {
        image,
        spec: spec.to_vec(),
        cli: cli.to_vec(),
    };
    let (env, _) = layers.cluster_env();
    ferry_shared::image::ImageMeta::from_labels(&labels, &env).effective_vip(&env)
}

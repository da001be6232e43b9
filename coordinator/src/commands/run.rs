//! `ferry run`, `ferry apply [--dry-run]`, `ferry plan`, `ferry gen`: build
//! or read a Clusterfile, then run the pipeline (or print the plan).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_shared::clusterfile::{
    API_VERSION, Cluster, ClusterSpec, Clusterfile, Host, KIND_CLUSTER, ObjectMeta, Ssh,
};
use ferry_shared::image::ImageType;
use ferry_shared::transfer::Topology;
use ferry_shared::{HostAddr, Secret};

use super::{CliError, Exit, ssh_args};
use crate::cli::{AgentOpts, ApplyArgs, RunArgs, RunCmdArgs, SshArgs};
use crate::client::ClientTls;
use crate::install::{InstallCtx, LocalAgent};
use crate::output::Reporter;
use crate::pipeline::image_store::StoreImages;
use crate::pipeline::images::ImageSource;
use crate::pipeline::{Inputs, Recorder, load_clusterfile, teardown::Teardown};
use crate::ssh::SshTarget;
use crate::state::ClusterState;

mod archives;
mod dry;
mod local_ip;
mod plan_reach;
mod plan_upgrade;

pub use dry::{gen_cmd, plan};

fn usage(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(e.to_string())
}

/// `--single`: no hosts given, this machine's address is the only master
/// (reached over SSH like any host). With `--masters`/`--nodes` it is a
/// usage error.
fn resolve_single(a: &mut RunArgs) -> Result<(), CliError> {
    if !a.single {
        return Ok(());
    }
    if !a.masters.is_empty() || !a.nodes.is_empty() {
        return Err(usage(
            "--single makes this machine the only master: give either --single or --masters/--nodes, not both",
        ));
    }
    a.masters = local_ip::local_master_ip().map_err(usage)?.to_string();
    Ok(())
}

fn group(addrs: &[HostAddr], role: &str) -> Option<Host> {
    (!addrs.is_empty()).then(|| Host {
        ips: addrs.iter().map(|a| a.to_string()).collect(),
        roles: vec![role.to_string()],
        env: Vec::new(),
        ssh: None,
    })
}

/// The Cluster document the run flags describe (`-e` in its spec.env).
pub fn cluster_from_flags(name: &str, a: &RunArgs) -> Result<Clusterfile, CliError> {
    let masters = ssh_args::hosts(&a.masters, a.ssh.port)?;
    let nodes = ssh_args::hosts(&a.nodes, a.ssh.port)?;
    if let Some(dup) = masters.iter().find(|m| nodes.iter().any(|n| n.ip == m.ip)) {
        return Err(usage(format!(
            "{dup} is listed in both --masters and --nodes"
        )));
    }
    let ssh = Ssh {
        user: a.ssh.user.clone(),
        passwd: Secret::new(a.ssh.passwd.clone().unwrap_or_default()),
        pk: a
            .ssh
            .pk
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        pk_passwd: Secret::new(a.ssh.pk_passwd.clone().unwrap_or_default()),
        port: a.ssh.port,
        ..Ssh::default()
    };
    let hosts = [group(&masters, "master"), group(&nodes, "node")]
        .into_iter()
        .flatten()
        .collect();
    let mut cf = Clusterfile {
        cluster: Cluster {
            api_version: API_VERSION.to_string(),
            kind: KIND_CLUSTER.to_string(),
            metadata: ObjectMeta {
                name: name.to_string(),
                ..ObjectMeta::default()
            },
            spec: ClusterSpec {
                image: a.images.clone(),
                ssh,
                hosts,
                command: a.cmd.clone(),
                ..ClusterSpec::default()
            },
            status: Default::default(),
        },
        docs: Vec::new(),
    };
    cf.cluster.spec.set_env(&a.env);
    append_config_files(&mut cf, &a.config_file)?;
    Ok(cf)
}

fn append_config_files(cf: &mut Clusterfile, files: &[std::path::PathBuf]) -> Result<(), CliError> {
    for f in files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| usage(format!("--config-file {}: {e}", f.display())))?;
        let head = "apiVersion: apps.sealos.io/v1beta1\nkind: Cluster\nmetadata: {name: x}\n---\n";
        let extra = Clusterfile::parse(&format!("{head}{text}"))
            .map_err(|e| usage(format!("--config-file {}: {e}", f.display())))?;
        cf.docs.extend(extra.docs);
    }
    Ok(())
}

/// Per-host SSH targets from the Clusterfile (host `ssh:` over global),
/// with the policy flags of the command. A host without usable credentials
/// gets the reason instead: it matters only if its agent does not answer.
pub fn targets(
    cf: &Clusterfile,
    flags: &SshArgs,
) -> Result<BTreeMap<IpAddr, Result<SshTarget, String>>, CliError> {
    let mut out = BTreeMap::new();
    for h in cf.cluster.resolved_hosts().map_err(usage)? {
        if !h.ssh.pk_data.is_empty() && h.ssh.pk.is_empty() {
            out.insert(
                h.addr.ip,
                Err(
                    "inline ssh.pkData is not supported; write the key to a file and set ssh.pk"
                        .into(),
                ),
            );
            continue;
        }
        let a = SshArgs {
            user: if h.ssh.user.is_empty() {
                "root".into()
            } else {
                h.ssh.user.clone()
            },
            passwd: (!h.ssh.passwd.is_empty()).then(|| h.ssh.passwd.expose().to_string()),
            pk: (!h.ssh.pk.is_empty()).then(|| h.ssh.pk.clone().into()),
            pk_passwd: (!h.ssh.pk_passwd.is_empty()).then(|| h.ssh.pk_passwd.expose().to_string()),
            port: h.addr.port,
            ..flags.clone()
        };
        let t = match ssh_args::targets(&a, &[h.addr]) {
            Ok(t) => t
                .into_iter()
                .next()
                .ok_or_else(|| "no SSH target".to_string()),
            Err(e) => Err(e.to_string()),
        };
        out.insert(h.addr.ip, t);
    }
    Ok(out)
}

pub fn install_ctx(
    cluster: &ClusterState,
    r: &Reporter,
    ssh: &SshArgs,
    opts: &AgentOpts,
) -> Result<Arc<InstallCtx>, CliError> {
    let agent = LocalAgent::locate(opts.agent_bin.clone())?;
    let pki = Arc::new(cluster.agent_pki()?);
    Ok(Arc::new(InstallCtx {
        tls: ClientTls::from_pki(&pki),
        agent,
        pki,
        ssh: ssh_args::options(ssh, cluster)?,
        port: crate::install::DEFAULT_AGENT_PORT,
        force: false,
        ready_timeout: Duration::from_secs(opts.ready_timeout.max(1)),
        reporter: r.clone(),
        remember: Some(cluster.dir().to_path_buf()),
    }))
}

/// How `run`, `apply` and `add` run the pipeline.
pub struct ExecOpts<'a> {
    /// `-e KEY=VALUE` for the images.
    pub env: Vec<String>,
    pub ssh: &'a SshArgs,
    pub agent: &'a AgentOpts,
    pub topology: Topology,
    /// `--insecure` / `--insecure-registry`: which registries are pulled
    /// from over plain HTTP.
    pub insecure: crate::cli::InsecureArgs,
    /// How a Kubernetes upgrade treats nodes.
    pub upgrade: crate::pipeline::upgrade::UpgradeOpts,
}

/// Runs the pipeline on `cf` and prints the outcome with phase timings.
pub async fn execute(
    cluster: &ClusterState,
    r: &Reporter,
    cf: Clusterfile,
    o: ExecOpts<'_>,
) -> Result<Exit, CliError> {
    let started = Instant::now();
    cf.cluster.resolved_hosts().map_err(usage)?;
    let home = cluster.dir().parent().unwrap_or(cluster.dir());
    if let Some(w) = o.insecure.warning() {
        r.text(w);
    }
    let images = StoreImages::new(home)
        .insecure(o.insecure.insecure)
        .insecure_registries(&o.insecure.insecure_registries);
    images.pull_missing(&cf.cluster.spec.image).await?;
    let inp = Inputs {
        targets: targets(&cf, o.ssh)?,
        cf,
        cli_env: o.env,
        concurrency: o.agent.concurrency,
        topology: o.topology,
        install: install_ctx(cluster, r, o.ssh, o.agent)?,
        images: Arc::new(images) as Arc<dyn ImageSource>,
        upgrade: o.upgrade,
    };
    let rec = Recorder::open(cluster.dir(), r.clone())?;
    let (res, timings) = crate::pipeline::run(cluster, &rec, inp).await;
    r.finish();
    let total = started.elapsed().as_secs_f64();
    let phases: Vec<String> = timings
        .iter()
        .map(|(s, t)| format!("{s} {t:.2}s"))
        .collect();
    if let Err(e) = &res {
        // The error itself, also for --output json (the text line below
        // is not an event).
        rec.emit(
            r.event(
                "",
                ferry_shared::Phase::Run,
                ferry_shared::EventKind::Failed,
            )
            .message(e.to_string()),
        );
    }
    rec.emit(
        r.event(
            "",
            ferry_shared::Phase::Run,
            if res.is_ok() {
                ferry_shared::EventKind::Finished
            } else {
                ferry_shared::EventKind::Failed
            },
        )
        .counter("duration_ms", (total * 1000.0) as u64)
        .message(format!("timings: {}", phases.join(", "))),
    );
    rec.flush();
    match res {
        Ok(()) => {
            r.text(&format!(
                "cluster `{}` ready in {total:.2}s ({})",
                cluster.name(),
                phases.join(", ")
            ));
            Ok(Exit::Ok)
        }
        Err(e) => {
            r.text(&format!(
                "cluster `{}` FAILED after {total:.2}s ({}): {e}",
                cluster.name(),
                phases.join(", ")
            ));
            r.text("a plain re-run resumes from the first unfinished step of each host");
            Ok(Exit::HostsFailed)
        }
    }
}

/// Where `ferry run` starts from.
enum Base {
    /// `-f Clusterfile` (checked to keep every host of a stored one).
    File(Clusterfile),
    /// No hosts given and a stored cluster: install more images into it.
    Existing(Clusterfile),
    /// A new cluster from --masters/--nodes.
    New(Clusterfile),
}

pub async fn run(cluster: &ClusterState, r: &Reporter, a: RunCmdArgs) -> Result<Exit, CliError> {
    let RunCmdArgs {
        run: mut a,
        file,
        upgrade,
        ..
    } = a;
    resolve_single(&mut a)?;
    let stored = load_clusterfile(cluster)?;
    let base = match (&file, stored) {
        (Some(f), stored) => {
            let mut cf = read_clusterfile(f, &[], &[], &a.config_file)?;
            if cf.cluster.metadata.name.is_empty() {
                cf.cluster.metadata.name = cluster.name().to_string();
            }
            keeps_stored_hosts(&cf, stored.as_ref(), f)?;
            Base::File(cf)
        }
        (None, Some(old)) if a.masters.is_empty() && a.nodes.is_empty() => Base::Existing(old),
        (None, _) => {
            if a.masters.is_empty() {
                return Err(usage(
                    "give the hosts: --masters (and --nodes), or a Clusterfile with -f",
                ));
            }
            Base::New(cluster_from_flags(cluster.name(), &a)?)
        }
    };
    // Archives are loaded only once the flags made sense, and before any
    // host or state file is touched.
    let home = cluster.dir().parent().unwrap_or(cluster.dir());
    let images = archives::resolve(home, r, &a.images)?;
    let mut cf = match base {
        Base::New(mut cf) => {
            cf.cluster.spec.image = images;
            cf
        }
        Base::File(mut cf) => {
            append_images(&mut cf, &images);
            if !a.cmd.is_empty() {
                cf.cluster.spec.command = a.cmd.clone();
            }
            cf
        }
        Base::Existing(mut cf) => {
            let store = StoreImages::new(home)
                .insecure(a.insecure.insecure)
                .insecure_registries(&a.insecure.insecure_registries);
            store.pull_missing(&images).await?;
            replace_rootfs(&store, &mut cf, &images)?;
            append_images(&mut cf, &images);
            // On a running cluster `--cmd` is the first given image's CMD
            // (kept with the cluster, so a later run computes the same
            // command line and does not run it again).
            if !a.cmd.is_empty() {
                let Some(first) = images.first() else {
                    return Err(usage(
                        "--cmd replaces the CMD of the first IMAGE given: give the image",
                    ));
                };
                crate::pipeline::guest::set_command_override(&mut cf, first, &a.cmd);
            }
            cf
        }
    };
    if cf.cluster.spec.image.is_empty() {
        return Err(usage(
            "no image to run: give IMAGE arguments (or spec.image in the Clusterfile)",
        ));
    }
    cf.cluster.spec.set_env(&a.env);
    let o = ExecOpts {
        env: a.env.clone(),
        ssh: &a.ssh,
        agent: &a.agent,
        topology: a.relay.topology(),
        insecure: a.insecure.clone(),
        upgrade: upgrade.opts(),
    };
    execute(cluster, r, cf, o).await
}

/// A rootfs image run on an existing cluster takes the place of the
/// cluster's rootfs image (sealos' `ReplaceRootfsImage`): a newer version
/// is an upgrade, an older one is refused by the pipeline.
fn replace_rootfs(
    store: &StoreImages,
    cf: &mut Clusterfile,
    new: &[String],
) -> Result<(), CliError> {
    let is_rootfs = |name: &str| -> Result<bool, CliError> {
        Ok(store.inspect(name)?.config.image_type() == ImageType::Rootfs)
    };
    let mut new_rootfs = Vec::new();
    for n in new {
        if is_rootfs(n)? {
            new_rootfs.push(n.clone());
        }
    }
    match new_rootfs.as_slice() {
        [] => Ok(()),
        [one] => {
            let mut kept = Vec::new();
            for i in &cf.cluster.spec.image {
                // An image the store lost cannot be told apart: kept.
                if i != one && !is_rootfs(i).unwrap_or(false) {
                    kept.push(i.clone());
                }
            }
            kept.insert(0, one.clone());
            cf.cluster.spec.image = kept;
            Ok(())
        }
        _ => Err(usage(format!(
            "more than one rootfs image given: {}",
            new_rootfs.join(", ")
        ))),
    }
}

fn append_images(cf: &mut Clusterfile, images: &[String]) {
    for i in images {
        if !cf.cluster.spec.image.contains(i) {
            cf.cluster.spec.image.push(i.clone());
        }
    }
}

/// `run -f` never removes hosts: every host of the stored cluster must be
/// in the file (removals are `ferry apply -f`, which tears them down).
fn keeps_stored_hosts(
    cf: &Clusterfile,
    stored: Option<&Clusterfile>,
    file: &std::path::Path,
) -> Result<(), CliError> {
    let Some(old) = stored else {
        return Ok(());
    };
    let new = cf.cluster.resolved_hosts().map_err(usage)?;
    let missing: Vec<String> = old
        .cluster
        .resolved_hosts()
        .map_err(usage)?
        .iter()
        .filter(|h| !new.iter().any(|n| n.addr.ip == h.addr.ip))
        .map(|h| h.addr.to_string())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(usage(format!(
        "{} lacks {} of the running cluster; `ferry run -f` only adds: use `ferry apply -f {}` to remove them, or add them back to the file",
        file.display(),
        missing.join(", "),
        file.display()
    )))
}

/// Reads a Clusterfile (a Go template when it has `{{` or values are
/// given), with `--config-file` documents appended; hosts validated.
fn read_clusterfile(
    file: &std::path::Path,
    values: &[std::path::PathBuf],
    set: &[String],
    config_files: &[std::path::PathBuf],
) -> Result<Clusterfile, CliError> {
    let text =
        std::fs::read_to_string(file).map_err(|e| usage(format!("{}: {e}", file.display())))?;
    let text = if values.is_empty() && set.is_empty() && !text.contains("{{") {
        text
    } else {
        super::values::render(&text, values, set)?
    };
    let mut cf =
        Clusterfile::parse(&text).map_err(|e| usage(format!("{}: {e}", file.display())))?;
    append_config_files(&mut cf, config_files)?;
    cf.cluster
        .resolved_hosts()
        .map_err(|e| usage(format!("{}: {e}", file.display())))?;
    Ok(cf)
}

pub async fn apply(
    cluster: &ClusterState,
    r: &Reporter,
    a: ApplyArgs,
    plan_only: bool,
) -> Result<Exit, CliError> {
    let mut cf = read_clusterfile(&a.file, &a.values, &a.set, &a.config_file)?;
    if cf.cluster.metadata.name.is_empty() {
        cf.cluster.metadata.name = cluster.name().to_string();
    }
    cf.cluster.spec.set_env(&a.env);
    let (mut p, mut notes) = plan(cluster, &cf, &a.upgrade.opts())?;
    if plan_only || a.dry_run {
        plan_reach::annotate(
            cluster,
            &mut p,
            a.agent.agent_bin.clone(),
            a.agent.concurrency,
            &mut notes,
        )
        .await?;
        dry::print_plan(r, &p, &notes);
        return Ok(Exit::Ok);
    }
    let removed: Vec<String> = p.removed().map(|h| h.host.clone()).collect();
    if !removed.is_empty()
        && let Some(old) = load_clusterfile(cluster)?
    {
        let old_m0 = old.cluster.master0().map_err(usage)?;
        if removed.contains(&old_m0.addr.to_string()) {
            return Err(usage(format!(
                "{} is master0 and cannot be removed (reset the cluster instead)",
                old_m0.addr
            )));
        }
        let rec = Recorder::open(cluster.dir(), r.clone())?;
        let mut td = Teardown::new(
            rec,
            ClientTls::from_pki(&cluster.agent_pki()?),
            cluster.name(),
            &old,
        );
        td.drain = a.drain.timeout();
        let problems = super::cluster::remove_hosts(cluster, &td, &old, &removed).await?;
        if !problems.is_empty() {
            // Never go on to write a Clusterfile that forgets a host still
            // in the cluster (a failed drain keeps it), nor hide leftovers.
            r.finish();
            r.text(&format!(
                "apply: removing {} hosts left {} problems; nothing was added:",
                removed.len(),
                problems.len()
            ));
            for p in &problems {
                r.text(&format!("  {p}"));
            }
            r.text("fix them (or drop --drain), then re-run the same apply");
            return Ok(Exit::HostsFailed);
        }
    }
    let o = ExecOpts {
        env: a.env.clone(),
        ssh: &a.ssh,
        agent: &a.agent,
        topology: a.relay.topology(),
        insecure: a.insecure.clone(),
        upgrade: a.upgrade.opts(),
    };
    execute(cluster, r, cf, o).await
}

//! Flags of the cluster lifecycle commands (`run`, `apply`, `plan`, `gen`,
//! `add`, `delete`, `reset`), named as sealos names them.

use std::path::PathBuf;

use clap::Args;

use super::{AgentOpts, GivenSsh, SshArgs};
use crate::oci::archive::ArchiveFormat;
use crate::transfer::args::TopologyArgs;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Cluster images: the rootfs image first, then patches and applications
    /// (a directory holding config.json and rootfs/ or a staged build
    /// context; on `run` a file is an oci-archive or docker-archive, loaded
    /// into the local store first and named by the name it carries; else
    /// an image reference from the local store, pulled when absent).
    pub images: Vec<String>,
    /// Masters: comma list of ip, ip:port or ranges a.b.c.d-a.b.c.e.
    #[arg(long, default_value = "")]
    pub masters: String,
    /// Worker nodes, same syntax as --masters.
    #[arg(long, default_value = "")]
    pub nodes: String,
    /// Environment for the images, KEY=VALUE (repeatable; over spec.env,
    /// and written into the stored Clusterfile's spec.env, so later
    /// commands see the same values).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Override the CMD of the first image (repeatable).
    #[arg(long = "cmd")]
    pub cmd: Vec<String>,
    /// Extra YAML documents appended to the Clusterfile (Config, kubeadm...).
    #[arg(long)]
    pub config_file: Vec<PathBuf>,
    /// A one-node cluster on this machine: its address (the default
    /// route's source) becomes the only master, reached over SSH like any
    /// host, and stays schedulable. Not with --masters/--nodes.
    #[arg(long)]
    pub single: bool,
    #[command(flatten)]
    pub insecure: InsecureArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub agent: AgentOpts,
    #[command(flatten)]
    pub relay: TopologyArgs,
}

/// `ferry run`: the flags `gen` shares, plus a Clusterfile and sealos'
/// archive transport.
#[derive(Debug, Args)]
pub struct RunCmdArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Run the cluster a Clusterfile describes (sealos format, its
    /// spec.command included) instead of --masters/--nodes; IMAGE
    /// arguments are appended to its spec.image, -e goes into its
    /// spec.env, --cmd replaces its spec.command. Hosts a stored cluster
    /// has and the file lacks are refused: removing is `ferry apply -f`.
    /// (sealos' `run -f` is `--force`, re-installing an app image; ferry
    /// has no such flag.)
    #[arg(
        short = 'f',
        long = "Clusterfile",
        alias = "file",
        conflicts_with_all = ["masters", "nodes", "single"]
    )]
    pub file: Option<PathBuf>,
    /// Accepted for sealos compatibility: an archive's format
    /// (oci-archive or docker-archive) is read from the archive itself.
    /// An archive naming no image is loaded as `localhost/<file
    /// stem>:latest`; one naming several is run as the first it names.
    #[arg(short = 't', long, value_enum)]
    pub transport: Option<ArchiveFormat>,
    #[command(flatten)]
    pub upgrade: UpgradeArgs,
}

/// How a Kubernetes upgrade (a rootfs image of a newer version) treats
/// the nodes.
#[derive(Debug, Clone, Args)]
pub struct UpgradeArgs {
    /// Upgrade: workers upgraded at a time (masters go one at a time).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub max_unavailable: usize,
    /// Upgrade: cordon each node instead of draining it before its kubelet
    /// is replaced.
    #[arg(long)]
    pub no_drain: bool,
    /// Upgrade: how long one drain may take, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub upgrade_drain_timeout: u64,
}

impl UpgradeArgs {
    pub fn opts(&self) -> crate::pipeline::upgrade::UpgradeOpts {
        crate::pipeline::upgrade::UpgradeOpts {
            max_unavailable: self.max_unavailable.max(1),
            drain: (!self.no_drain)
                .then(|| std::time::Duration::from_secs(self.upgrade_drain_timeout)),
        }
    }
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The Clusterfile (sealos format; may be a Go template).
    #[arg(
        short = 'f',
        long = "Clusterfile",
        alias = "file",
        default_value = "Clusterfile"
    )]
    pub file: PathBuf,
    /// Show what would happen per host; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Values files for a templated Clusterfile (repeatable).
    #[arg(long)]
    pub values: Vec<PathBuf>,
    /// Values `a.b=c` for a templated Clusterfile (repeatable).
    #[arg(long)]
    pub set: Vec<String>,
    /// Environment for the images, KEY=VALUE (repeatable; written into the
    /// stored Clusterfile's spec.env).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Extra YAML documents appended to the Clusterfile.
    #[arg(long)]
    pub config_file: Vec<PathBuf>,
    #[command(flatten)]
    pub insecure: InsecureArgs,
    /// Hosts the file no longer lists are removed (drained first with --drain).
    #[command(flatten)]
    pub drain: DrainArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub agent: AgentOpts,
    #[command(flatten)]
    pub relay: TopologyArgs,
    #[command(flatten)]
    pub upgrade: UpgradeArgs,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Masters to add.
    #[arg(long, default_value = "")]
    pub masters: String,
    /// Workers to add.
    #[arg(long, default_value = "")]
    pub nodes: String,
    #[command(flatten)]
    pub insecure: InsecureArgs,
    /// SSH for the added hosts: the -u/-p/-i/--pk-passwd/--port given are
    /// recorded as their `ssh:` block in the Clusterfile (over the
    /// cluster's spec.ssh, as sealos' add does); none given: the cluster's.
    #[command(flatten)]
    pub ssh: GivenSsh,
    #[command(flatten)]
    pub agent: AgentOpts,
    #[command(flatten)]
    pub relay: TopologyArgs,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Masters to remove (master0 cannot be).
    #[arg(long, default_value = "")]
    pub masters: String,
    /// Workers to remove.
    #[arg(long, default_value = "")]
    pub nodes: String,
    /// Do not ask (ferry never prompts; accepted for sealos compatibility).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub drain: DrainArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub agent: AgentOpts,
}

/// Draining hosts before they leave the cluster (`delete`, `apply`).
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// Drain each removed host first (`kubectl drain` on master0, without
    /// --force); a host whose drain fails is left untouched and stays in
    /// the cluster.
    #[arg(long)]
    pub drain: bool,
    /// How long one drain may take, in seconds (`kubectl drain --timeout`).
    #[arg(long, value_name = "SECS", default_value_t = 300, requires = "drain")]
    pub drain_timeout: u64,
}

impl DrainArgs {
    pub fn timeout(&self) -> Option<std::time::Duration> {
        self.drain
            .then(|| std::time::Duration::from_secs(self.drain_timeout))
    }
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// Leave the ferry agents running on the nodes.
    #[arg(long)]
    pub keep_agents: bool,
    /// Do not ask (ferry never prompts; accepted for sealos compatibility).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub agent: AgentOpts,
}

/// Which registries images are pulled from over plain HTTP (registries
/// without TLS, local mirrors). A token server keeps verified HTTPS.
#[derive(Debug, Clone, Default, Args)]
pub struct InsecureArgs {
    /// Plain HTTP to every registry this command pulls from (prefer
    /// --insecure-registry, which names the one that needs it).
    #[arg(long)]
    pub insecure: bool,
    /// Plain HTTP to this registry only (HOST or HOST:PORT, as in the image
    /// reference; repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
}

impl InsecureArgs {
    /// The warning `--insecure` deserves, if given.
    pub fn warning(&self) -> Option<&'static str> {
        self.insecure.then_some(
            "warning: --insecure pulls over plain HTTP from every registry of this command; --insecure-registry HOST[:PORT] limits it to the one that needs it",
        )
    }
}

#[cfg(test)]
mod insecure_tests {
    use super::*;

    #[test]
    fn only_the_unscoped_flag_warns() {
        let scoped = InsecureArgs {
            insecure: false,
            insecure_registries: vec!["10.0.0.2:5000".into()],
        };
        assert_eq!(scoped.warning(), None);
        let all = InsecureArgs {
            insecure: true,
            ..Default::default()
        };
        assert!(all.warning().unwrap().contains("--insecure-registry"));
    }
}

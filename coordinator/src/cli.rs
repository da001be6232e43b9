//! Command-line surface (clap). sealos-compatible names where sealos has
//! them: `-c/--cluster`, `-r/--roles`, `--ips`, `-u/-p/-i/--pk-passwd/--port`,
//! `--masters/--nodes` host lists.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::output::OutputMode;

pub mod cluster_args;
pub use cluster_args::{
    AddArgs, ApplyArgs, DeleteArgs, InsecureArgs, ResetArgs, RunArgs, RunCmdArgs,
};

pub mod given_ssh;
pub use given_ssh::{GivenSsh, secrets_in_argv};

pub mod image_args;
pub use image_args::{
    ImagesArgs, InspectArgs, LoadArgs, LoginArgs, LogoutArgs, PullArgs, PushArgs, RmiArgs,
    SaveArgs, TagArgs,
};

#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about = "Install and operate Kubernetes clusters through node agents (sealos-compatible)"
)]
pub struct Cli {
    /// Cluster name (state in <home>/<cluster>/).
    #[arg(
        short = 'c',
        long,
        global = true,
        env = "FERRY_CLUSTER",
        default_value = "default"
    )]
    pub cluster: String,
    /// State directory (default ~/.ferry).
    #[arg(long, global = true, env = "FERRY_HOME")]
    pub home: Option<PathBuf>,
    /// human: progress and text; json: one event per line (docs/events.md).
    #[arg(short = 'o', long, global = true, value_enum, default_value = "human")]
    pub output: OutputMode,
    /// Log diagnostics to stderr (RUST_LOG syntax also honoured).
    #[arg(long, global = true)]
    pub debug: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage the ferry agents on the nodes.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// The cluster's health per node through the agents (no SSH): agent, kubelet, runtime,
    /// registry, Node Ready, load balancer, certificates; non-zero exit when unhealthy.
    Status(ClusterStatusArgs),
    /// Run a command on nodes through their agents: `ferry exec -- CMD ARGS...`.
    Exec(ExecArgs),
    /// The apiserver VIP load balancer the agents run (lvscare's job).
    #[command(subcommand)]
    Lb(LbCommand),
    /// Copy a local file or tree to nodes through their agents (only missing content moves).
    Scp(ScpArgs),
    /// The cluster's Kubernetes certificates: `--check-expiration`, `--alt-names a,b`.
    Cert(crate::commands::CertArgs),
    /// Pull images from a registry into the local image store.
    Pull(PullArgs),
    /// Push a local image to a registry.
    Push(PushArgs),
    /// Store credentials for a registry (checked first).
    Login(LoginArgs),
    /// Forget the credentials of a registry.
    Logout(LogoutArgs),
    /// List the images in the local store.
    Images(ImagesArgs),
    /// Remove images from the local store (unreferenced blobs are collected).
    Rmi(RmiArgs),
    /// Show an image's type, labels, env, cmd and size.
    Inspect(InspectArgs),
    /// Give an image more names.
    Tag(TagArgs),
    /// Write images to an oci-archive or docker-archive tarball.
    Save(SaveArgs),
    /// Load images from an oci-archive or docker-archive tarball.
    Load(LoadArgs),
    /// Build a cluster image from a Kubefile (sealos build): `ferry build -t NAME:TAG [CONTEXT]`.
    Build(crate::build::args::BuildArgs),
    /// Create a cluster (or install images into it): `ferry run IMAGE... --masters ... --nodes ...`,
    /// `ferry run ./k8s.tar ./app.tar ...` (archives are loaded first), `ferry run -f Clusterfile`.
    Run(RunCmdArgs),
    /// Bring the cluster to a Clusterfile: adds and removals in one go.
    Apply(ApplyArgs),
    /// What `apply` would do per host (steps, bytes, adds/removals); changes nothing.
    Plan(ApplyArgs),
    /// Print the effective Clusterfile with defaults (Cluster + kubeadm documents).
    Gen(RunArgs),
    /// Add masters or workers to the cluster.
    Add(AddArgs),
    /// Remove masters or workers (kubeadm reset, clean hooks, hosts entries, LB re-sync).
    Delete(DeleteArgs),
    /// Tear the whole cluster down; reports everything it could not clean.
    Reset(ResetArgs),
    /// Serve a live, read-only web dashboard of every cluster in the state
    /// directory (default http://127.0.0.1:7480/; docs/dashboard.md).
    Dashboard(DashboardArgs),
}

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Address to listen on. Anything but loopback needs TLS and a token.
    #[arg(long, default_value = crate::dashboard::DEFAULT_LISTEN)]
    pub listen: std::net::SocketAddr,
    /// File holding the bearer token clients must send (one word, >= 16
    /// characters). Without it a non-loopback listener generates one and
    /// prints it once on stderr.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// PEM certificate chain to serve HTTPS with (with --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Without --tls-cert: serve a generated self-signed certificate (its
    /// SHA-256 fingerprint is printed on stderr).
    #[arg(long)]
    pub self_signed_tls: bool,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Push the agent over SSH and start it (skips nodes already up to date).
    Install(InstallArgs),
    /// Replace the agent binary where it differs and restart it (inventory hosts by default).
    Upgrade(UpgradeArgs),
    /// Show version, uptime and facts of every agent (no SSH needed).
    Status(StatusArgs),
    /// Stop the agents and remove their files (through each agent; SSH where one does not answer).
    Uninstall(UninstallArgs),
    /// Stream the agents' own events (replayed from their buffers, then live).
    Events(EventsArgs),
    /// New certificates for the coordinator and every agent (over mTLS, no
    /// SSH); the replaced ones are revoked on every agent. `--ca` also
    /// replaces the agent CA, both trusted until every agent moved.
    RotateCerts(RotateCertsArgs),
}

#[derive(Debug, Args)]
pub struct RotateCertsArgs {
    /// Replace the agent CA too (a re-run continues an unfinished one).
    #[arg(long)]
    pub ca: bool,
}

#[derive(Debug, Clone, Args)]
pub struct SshArgs {
    /// SSH user; a non-root user needs sudo (passwordless, or the -p password).
    #[arg(short = 'u', long, default_value = "root")]
    pub user: String,
    /// SSH password, also used for sudo.
    #[arg(short = 'p', long, env = "FERRY_SSH_PASSWD", hide_env_values = true)]
    pub passwd: Option<String>,
    /// Private key file (default ~/.ssh/id_rsa or ~/.ssh/id_ed25519 when no password is given).
    #[arg(short = 'i', long)]
    pub pk: Option<PathBuf>,
    /// Passphrase of the private key.
    #[arg(long, env = "FERRY_SSH_PK_PASSWD", hide_env_values = true)]
    pub pk_passwd: Option<String>,
    /// SSH port for hosts given without `:port`.
    #[arg(long, default_value_t = 22)]
    pub port: u16,
    /// strict: only known keys; accept-new: record unknown keys, refuse changed ones; off: no check
    /// [default: the cluster's recorded policy, else accept-new].
    #[arg(long)]
    pub host_key_policy: Option<String>,
    /// known_hosts file [default: the cluster's recorded file, else ~/.ssh/known_hosts].
    #[arg(long)]
    pub known_hosts: Option<PathBuf>,
    /// Seconds to wait for a TCP connection + SSH handshake.
    #[arg(long, default_value_t = 10)]
    pub connect_timeout: u64,
}

#[derive(Debug, Clone, Args)]
pub struct AgentOpts {
    /// The static ferry-agent binary to push (default: `ferry-agent` beside `ferry`).
    #[arg(long, env = "FERRY_AGENT_BIN")]
    pub agent_bin: Option<PathBuf>,
    /// Hosts worked on at once.
    #[arg(long, default_value_t = crate::fanout::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// Seconds to wait for a started agent to answer over mTLS.
    #[arg(long, default_value_t = 30)]
    pub ready_timeout: u64,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Masters: comma list of ip, ip:port or ranges a.b.c.d-a.b.c.e.
    #[arg(long, default_value = "")]
    pub masters: String,
    /// Worker nodes, same syntax as --masters.
    #[arg(long, default_value = "")]
    pub nodes: String,
    /// TCP port the agents listen on.
    #[arg(long, default_value_t = crate::install::DEFAULT_AGENT_PORT)]
    pub agent_port: u16,
    /// Re-upload and restart even where the agent is up to date.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub agent: AgentOpts,
}

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub agent: AgentOpts,
}

#[derive(Debug, Clone, Args)]
pub struct SelectArgs {
    /// Only nodes with one of these roles (comma list: master,node).
    #[arg(short = 'r', long, value_delimiter = ',')]
    pub roles: Vec<String>,
    /// Only these hosts (same syntax as --masters).
    #[arg(long, default_value = "")]
    pub ips: String,
}

#[derive(Debug, Clone, Copy, Args)]
pub struct Fanout {
    /// Hosts worked on at once.
    #[arg(long, default_value_t = crate::fanout::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub fanout: Fanout,
}

#[derive(Debug, Args)]
pub struct ClusterStatusArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub fanout: Fanout,
}

#[derive(Debug, Args)]
pub struct UninstallArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub fanout: Fanout,
    #[command(flatten)]
    pub ssh: SshArgs,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub fanout: Fanout,
    /// Kill the command after this many seconds (0 = no limit).
    #[arg(long, default_value_t = 0)]
    pub timeout: u64,
    /// Working directory on the nodes.
    #[arg(long)]
    pub cwd: Option<String>,
    /// Environment for the command, KEY=VALUE (repeatable).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// Stop after this many seconds (0 = until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub duration: u64,
    /// Only events of this operation id.
    #[arg(long)]
    pub op: Option<String>,
}

#[derive(Debug, Args)]
pub struct ScpArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub fanout: Fanout,
    #[command(flatten)]
    pub relay: crate::transfer::args::RelayArgs,
    /// Mirror a directory SRC: remove entries under DST that are not in
    /// SRC (as rsync --delete). Without it nothing on the nodes is removed.
    #[arg(long)]
    pub delete: bool,
    /// Give the nodes' files the owners (uid/gid) they have on the bastion;
    /// without it everything sent is owned by root (0:0).
    #[arg(long)]
    pub preserve_owner: bool,
    /// Local file or directory.
    pub src: PathBuf,
    /// Absolute path on the nodes: a directory SRC is copied into DST (a
    /// DST that is a symlink on a node is refused).
    pub dst: String,
}

#[derive(Debug, Subcommand)]
pub enum LbCommand {
    /// Push the VIP's desired state (real servers, health check) to the
    /// agents (default: the `node` role), in parallel. Idempotent.
    Sync(LbSyncArgs),
    /// Per node: backend, VIP, members with their health.
    Status(LbSelectArgs),
    /// Remove the VIP's rules, route and state from the nodes.
    Delete(LbSelectArgs),
}

#[derive(Debug, Args)]
pub struct LbSelectArgs {
    /// Only nodes with one of these roles (default: node).
    #[arg(short = 'r', long, value_delimiter = ',')]
    pub roles: Vec<String>,
    /// Only these hosts (same syntax as --masters of `agent install`).
    #[arg(long, default_value = "")]
    pub ips: String,
    #[command(flatten)]
    pub fanout: Fanout,
}

#[derive(Debug, Args)]
pub struct LbSyncArgs {
    /// The virtual server, IP:PORT (sealos `defaultVIP`).
    #[arg(long, default_value = "10.103.97.2:6443")]
    pub vip: String,
    /// Real servers: comma list of ip or ip:port (port defaults to the VIP's).
    #[arg(long, required = true)]
    pub masters: String,
    /// rr | wrr | lc | wlc | sh | dh.
    #[arg(long, default_value = "rr")]
    pub scheduler: String,
    /// auto | ipvs | nftables.
    #[arg(long = "lb-backend", default_value = "auto")]
    pub backend: String,
    /// HTTPS path probed on every real server (certificates not verified).
    #[arg(long, default_value = "/healthz")]
    pub health_path: String,
    /// Milliseconds between health checks.
    #[arg(long, default_value_t = 5_000)]
    pub health_interval_ms: u64,
    /// Milliseconds a health check may take.
    #[arg(long, default_value_t = 10_000)]
    pub health_timeout_ms: u64,
    /// Consecutive successes that re-add a member.
    #[arg(long, default_value_t = 1)]
    pub healthy_threshold: u32,
    /// Consecutive failures that drain a member (one more removes it).
    #[arg(long, default_value_t = 1)]
    pub unhealthy_threshold: u32,
    /// HTTP statuses >= 400 that still count as healthy (comma list).
    #[arg(long, value_delimiter = ',')]
    pub health_status: Vec<u16>,
    #[command(flatten)]
    pub select: LbSelectArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn exec_takes_the_command_after_double_dash() {
        let c =
            Cli::try_parse_from(["ferry", "exec", "-r", "master,node", "--", "ls", "-l"]).unwrap();
        let Command::Exec(e) = c.command else {
            panic!()
        };
        assert_eq!(e.command, ["ls", "-l"]);
        assert_eq!(e.select.roles, ["master", "node"]);
    }
}

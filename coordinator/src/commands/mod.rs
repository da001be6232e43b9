//! One module per command family; `run` dispatches.

mod agent;
mod build;
mod cert;
mod cert_check;
pub(crate) mod cert_expiry;
pub(crate) mod cert_node;
mod cert_renew;
mod cert_stage;
mod cluster;
mod events;
mod exec;
mod health;
mod images;
mod lb;
mod run;
mod scp;
mod ssh_args;
mod status;
mod summary;
mod values;

pub use exec::LineSplitter;

pub use cert::CertArgs;

use crate::cli::{AgentCommand, Cli, Command};
use crate::output::{Reporter, new_operation_id};
use crate::state::{FerryHome, StateError};

/// Process exit codes ferry uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// At least one host failed; the others completed.
    HostsFailed = 1,
    /// Bad flags or input.
    Usage = 2,
    /// Interrupted by Ctrl-C; remote work was cancelled.
    Interrupted = 130,
}

impl Exit {
    /// `Ok` when no host failed, `HostsFailed` otherwise.
    pub fn from_failures(failed: usize) -> Self {
        if failed == 0 {
            Exit::Ok
        } else {
            Exit::HostsFailed
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("host list: {0}")]
    Hosts(ferry_shared::hosts::HostListError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    LocalAgent(#[from] crate::install::LocalAgentError),
    #[error(transparent)]
    Image(Box<images::ImageError>),
    #[error(transparent)]
    Build(Box<crate::build::run::BuildError>),
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
    #[error(transparent)]
    Cert(#[from] cert_node::CertError),
    #[error(transparent)]
    Dashboard(#[from] crate::dashboard::DashboardError),
    #[error("no agents match in cluster `{cluster}`{hint}")]
    NoTargets { cluster: String, hint: String },
}

impl CliError {
    pub fn exit(&self) -> Exit {
        match self {
            CliError::Usage(_)
            | CliError::Hosts(_)
            | CliError::NoTargets { .. }
            | CliError::Dashboard(
                crate::dashboard::DashboardError::Insecure { .. }
                | crate::dashboard::DashboardError::Usage { .. },
            ) => Exit::Usage,
            _ => Exit::HostsFailed,
        }
    }
}

pub async fn run(cli: Cli) -> Result<Exit, CliError> {
    let home = FerryHome::resolve(cli.home.clone())?;
    if let Command::Dashboard(a) = &cli.command {
        // Every cluster, read-only: no cluster directory is created.
        let args = crate::dashboard::ListenArgs {
            listen: Some(a.listen),
            token_file: a.token_file.clone(),
            tls_cert: a.tls_cert.clone(),
            tls_key: a.tls_key.clone(),
            self_signed: a.self_signed_tls,
        };
        crate::dashboard::run(home.path(), &args).await?;
        return Ok(Exit::Ok);
    }
    let cluster = home.cluster(&cli.cluster)?;
    let reporter = Reporter::new(cli.output, new_operation_id());
    // One lifecycle command at a time per cluster; a second one is refused
    // at once, naming the holder (state/lock.rs).
    let _lock = match &cli.command {
        Command::Run(_) => Some("ferry run"),
        Command::Apply(a) if !a.dry_run => Some("ferry apply"),
        Command::Add(_) => Some("ferry add"),
        Command::Delete(_) => Some("ferry delete"),
        Command::Reset(_) => Some("ferry reset"),
        // It replaces the agent CA / certificates the others connect with.
        Command::Agent(AgentCommand::RotateCerts(_)) => Some("ferry agent rotate-certs"),
        _ => None,
    }
    .map(|c| cluster.lock(c))
    .transpose()?;
    let exit = match cli.command {
        Command::Agent(AgentCommand::Install(a)) => agent::install(&cluster, &reporter, a).await,
        Command::Agent(AgentCommand::Upgrade(a)) => agent::upgrade(&cluster, &reporter, a).await,
        Command::Agent(AgentCommand::Uninstall(a)) => {
            agent::uninstall(&cluster, &reporter, a).await
        }
        Command::Agent(AgentCommand::Status(a)) => status::status(&cluster, &reporter, a).await,
        Command::Agent(AgentCommand::Events(a)) => events::events(&cluster, &reporter, a).await,
        Command::Agent(AgentCommand::RotateCerts(a)) => {
            agent::rotate_certs(&cluster, &reporter, a).await
        }
        Command::Status(a) => health::status(&cluster, &reporter, a).await,
        Command::Exec(a) => exec::exec(&cluster, &reporter, a).await,
        Command::Lb(c) => lb::run(&cluster, &reporter, c).await,
        Command::Scp(a) => scp::scp(&cluster, &reporter, a).await,
        Command::Cert(a) => cert::cert(&cluster, &reporter, a).await,
        c @ (Command::Pull(_)
        | Command::Push(_)
        | Command::Login(_)
        | Command::Logout(_)
        | Command::Images(_)
        | Command::Rmi(_)
        | Command::Inspect(_)
        | Command::Tag(_)
        | Command::Save(_)
        | Command::Load(_)) => images::run(&home, &reporter, c).await,
        Command::Build(a) => build::build(&home, &reporter, a).await,
        Command::Run(a) => run::run(&cluster, &reporter, a).await,
        Command::Apply(a) => run::apply(&cluster, &reporter, a, false).await,
        Command::Plan(a) => run::apply(&cluster, &reporter, a, true).await,
        Command::Gen(a) => run::gen_cmd(&cluster, &reporter, a),
        Command::Add(a) => cluster::add(&cluster, &reporter, a).await,
        Command::Delete(a) => cluster::delete(&cluster, &reporter, a).await,
        Command::Reset(a) => cluster::reset(&cluster, &reporter, a).await,
        Command::Dashboard(_) => Ok(Exit::Ok),
    };
    reporter.finish();
    exit
}

/// Selects inventory nodes by `--roles`/`--ips`, failing when none match.
fn select(
    cluster: &crate::state::ClusterState,
    sel: &crate::cli::SelectArgs,
) -> Result<Vec<crate::state::NodeRecord>, CliError> {
    let inv = cluster.load_inventory()?;
    let ips = ferry_shared::parse_host_list(&sel.ips).map_err(CliError::Hosts)?;
    let nodes = inv.select(&sel.roles, &ips);
    if nodes.is_empty() {
        let hint = if inv.nodes.is_empty() {
            " (none installed yet): run `ferry agent install --masters ... --nodes ...` first"
                .to_string()
        } else {
            format!(" the filter (roles {:?}, ips `{}`)", sel.roles, sel.ips)
        };
        return Err(CliError::NoTargets {
            cluster: cluster.name().to_string(),
            hint,
        });
    }
    Ok(nodes)
}

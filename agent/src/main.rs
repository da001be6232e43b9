//! `ferry-agent` command line. Thin: parse flags, set up tracing and the
//! runtime, call the library, map errors to exit codes (0 ok, 1 failure,
//! 2 usage).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use ferry_agent::trust::TlsDir;
use ferry_agent::{DaemonOptions, ServeConfig, StopOutcome, SuperviseOptions};

#[derive(Parser, Debug)]
#[command(
    name = "ferry-agent",
    version,
    about = "ferry's node agent (mutual-TLS gRPC)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve the agent API over mutual TLS until SIGTERM/SIGINT.
    Serve(ServeArgs),
    /// Start a detached supervisor that keeps `serve` running (hosts without
    /// systemd); returns once it holds the pidfile.
    Daemon {
        #[arg(long)]
        pidfile: PathBuf,
        #[arg(long)]
        log_file: PathBuf,
        /// `serve` and its arguments.
        #[arg(last = true, required = true, num_args = 1..)]
        serve: Vec<String>,
    },
    /// Run `serve` and restart it when it dies (used by `daemon`).
    Supervise {
        #[arg(long)]
        pidfile: PathBuf,
        /// `serve` and its arguments.
        #[arg(last = true, required = true, num_args = 1..)]
        serve: Vec<String>,
    },
    /// Stop the supervisor named in the pidfile; succeeds if none runs.
    Stop {
        #[arg(long)]
        pidfile: PathBuf,
        #[arg(long, default_value_t = 20_000)]
        timeout_ms: u64,
    },
    /// Remove the load balancer's kernel rules (nftables and IPVS), VIP
    /// route/link and persisted state; for uninstall, with the agent stopped.
    LbReset {
        /// The agent's load balancer state directory.
        #[arg(long, default_value = "/var/lib/ferry/agent/lb")]
        lb_dir: PathBuf,
    },
    /// Print the version and the sha256 of this executable.
    Version {
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args, Debug, Clone)]
struct ServeArgs {
    /// Address to listen on, e.g. 0.0.0.0:7443.
    #[arg(long)]
    listen: SocketAddr,
    /// Directory holding ca.crt, agent.crt and agent.key (and the
    /// coordinator's revocation list, revoked.json).
    #[arg(long)]
    tls_dir: PathBuf,
    /// The name the coordinator knows this node by.
    #[arg(long)]
    node_name: String,
    #[arg(long, value_enum, default_value_t = Supervisor::Foreground)]
    supervisor: Supervisor,
    /// Heartbeat interval of idle streams, in milliseconds.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    heartbeat_ms: u64,
    /// Concurrent commands before new ones are refused.
    #[arg(long, default_value_t = ferry_agent::DEFAULT_EXEC_LIMIT)]
    max_execs: usize,
    /// Where the load balancer's desired state is kept (default: `lb`
    /// beside the TLS directory, i.e. /var/lib/ferry/agent/lb).
    #[arg(long)]
    lb_dir: Option<PathBuf>,
    /// How the IPVS load balancer makes the VIP reachable from the node:
    /// `route` (a VIP/32 host route, sealos's default) or `link` (the VIP on
    /// the dummy interface `ferry-lb`).
    #[arg(long, default_value = "route")]
    lb_vip_mode: ferry_agent::lb::vip::VipMode,
    /// Manifest entries every planned transfer together may hold (memory).
    #[arg(long, default_value_t = ferry_agent::transfer::budget::DEFAULT_BUDGET_ENTRIES)]
    transfer_budget_entries: u64,
    /// Bytes every open transfer together may still expect (disk, in the
    /// chunk cache until committed).
    #[arg(long, default_value_t = ferry_agent::transfer::budget::DEFAULT_BUDGET_BYTES)]
    transfer_budget_bytes: u64,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Supervisor {
    Systemd,
    Daemon,
    Foreground,
}

impl Supervisor {
    fn as_str(self) -> &'static str {
        match self {
            Supervisor::Systemd => "systemd",
            Supervisor::Daemon => "daemon",
            Supervisor::Foreground => "foreground",
        }
    }
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .max_blocking_threads(16)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Completes on the first SIGTERM or SIGINT. The handlers are installed
/// right away, so a failure shows before the agent starts serving.
fn termination() -> Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

fn serve(args: ServeArgs) -> Result<()> {
    let tls = TlsDir::new(&args.tls_dir).load()?;
    let mut config = ServeConfig::new(args.node_name, tls);
    config.tls_dir = Some(args.tls_dir.clone());
    config.supervisor = args.supervisor.as_str().to_string();
    config.heartbeat = Duration::from_millis(args.heartbeat_ms);
    config.exec_limit = args.max_execs;
    config.lb_vip_mode = args.lb_vip_mode;
    config.transfer.budget = ferry_agent::transfer::PlanBudget {
        entries: args.transfer_budget_entries,
        bytes: args.transfer_budget_bytes,
    };
    let beside_tls = |name: &str| {
        args.tls_dir
            .canonicalize()
            .ok()
            .and_then(|d| d.parent().map(|p| p.join(name)))
    };
    config.lb_dir = args.lb_dir.clone().or_else(|| beside_tls("lb"));
    config.exec_records = beside_tls("execs");
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        ferry_agent::serve(config, listener, termination()?).await?;
        Ok(())
    })
}

/// Checks `daemon`/`supervise` trailing arguments are a valid `serve`
/// command line, so mistakes fail now instead of in a restart loop.
fn check_serve_args(serve: &[String]) -> Result<ServeArgs> {
    let argv = std::iter::once("ferry-agent".to_string()).chain(serve.iter().cloned());
    match Cli::try_parse_from(argv) {
        Ok(Cli {
            cmd: Cmd::Serve(a), ..
        }) => Ok(a),
        Ok(_) => bail!("expected `serve ARGS...` after `--`, got {serve:?}"),
        Err(e) => bail!("invalid serve arguments after `--`: {e}"),
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Serve(args) => serve(args),
        Cmd::Daemon {
            pidfile,
            log_file,
            serve,
        } => {
            let args = check_serve_args(&serve)?;
            TlsDir::new(&args.tls_dir).load()?;
            let pid = ferry_agent::daemon(&DaemonOptions {
                pidfile,
                log_file,
                serve_args: serve,
                start_timeout: ferry_agent::daemon::DAEMON_START_TIMEOUT,
            })?;
            println!("ferry-agent supervisor started (pid {pid})");
            Ok(())
        }
        Cmd::Supervise { pidfile, serve } => {
            check_serve_args(&serve)?;
            let opts = SuperviseOptions::new(pidfile, serve);
            // One thread is plenty for waiting on a child and signals.
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?
                .block_on(ferry_agent::supervise(opts))?;
            Ok(())
        }
        Cmd::Stop {
            pidfile,
            timeout_ms,
        } => {
            match ferry_agent::stop(&pidfile, Duration::from_millis(timeout_ms))? {
                StopOutcome::NotRunning { removed_stale } => println!(
                    "ferry-agent is not running{}",
                    if removed_stale {
                        " (removed a stale pidfile)"
                    } else {
                        ""
                    }
                ),
                StopOutcome::Stopped { pid } => println!("ferry-agent stopped (pid {pid})"),
                StopOutcome::Killed { pid } => {
                    println!("ferry-agent killed after the stop timeout (pid {pid})")
                }
            }
            Ok(())
        }
        Cmd::LbReset { lb_dir } => {
            let done = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?
                .block_on(ferry_agent::lb::reset::reset(&lb_dir, &[]))
                .context("load balancer reset failed")?;
            if done.removed.is_empty() {
                println!("load balancer: nothing to remove");
            }
            for r in done.removed {
                println!("load balancer: removed {r}");
            }
            Ok(())
        }
        Cmd::Version { json } => {
            let sha = ferry_agent::self_sha256()?;
            if json {
                println!(
                    "{{\"version\":\"{}\",\"sha256\":\"{sha}\"}}",
                    ferry_agent::VERSION
                );
            } else {
                println!("ferry-agent {} sha256 {sha}", ferry_agent::VERSION);
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.cmd {
        Cmd::Serve(_) | Cmd::Supervise { .. } => "info",
        _ => "warn",
    };
    init_tracing(default_level);
    // Both are process-wide and set once; tonic also picks ring explicitly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry-agent: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

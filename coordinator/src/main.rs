use clap::{CommandFactory, FromArgMatches};
use ferry_coordinator::{Exit, cli::Cli, cli::secrets_in_argv, run};

fn main() -> anyhow::Result<std::process::ExitCode> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    for (flag, instead) in secrets_in_argv(&matches) {
        eprintln!(
            "warning: {flag} on the command line is visible to every user of this machine (ps, /proc); prefer {instead}"
        );
    }
    let filter = if cli.debug { "debug" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("installing the rustls crypto provider failed"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let code = match rt.block_on(run(cli)) {
        Ok(exit) => exit,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit()
        }
    };
    if code == Exit::Interrupted {
        // Give cancelled streams a moment to reach the agents.
        rt.shutdown_timeout(std::time::Duration::from_secs(2));
    }
    Ok(std::process::ExitCode::from(code as u8))
}

//! `ferry-agent supervise`: holds the pidfile, runs `ferry-agent serve`,
//! restarts it when it dies abnormally (exponential backoff), and on
//! SIGTERM/SIGINT stops it (SIGTERM, then SIGKILL after a grace period),
//! removes the pidfile and exits.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};
use tokio::process::Child;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;

use crate::daemon::{DaemonError, self_command};
use crate::pidfile::{Pidfile, PidfileError};

#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error(transparent)]
    Pidfile(#[from] PidfileError),
    #[error(transparent)]
    Command(#[from] DaemonError),
    #[error("cannot install the {signal} handler: {source}")]
    Signal {
        signal: &'static str,
        source: std::io::Error,
    },
    #[error("supervise needs `serve` and its arguments after `--`, got {0:?}")]
    NotServe(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct SuperviseOptions {
    pub pidfile: PathBuf,
    /// `serve` and its arguments.
    pub serve_args: Vec<String>,
    /// How long `serve` gets to exit after SIGTERM before SIGKILL.
    pub stop_grace: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// A run at least this long resets the backoff.
    pub healthy_after: Duration,
}

impl SuperviseOptions {
    pub fn new(pidfile: PathBuf, serve_args: Vec<String>) -> Self {
        Self {
            pidfile,
            serve_args,
            stop_grace: Duration::from_secs(15),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            healthy_after: Duration::from_secs(60),
        }
    }
}

/// The next backoff after a run of `ran` that followed a backoff of `prev`.
pub fn next_backoff(prev: Duration, ran: Duration, opts: &SuperviseOptions) -> Duration {
    if ran >= opts.healthy_after {
        opts.backoff_min
    } else {
        (prev * 2).clamp(opts.backoff_min, opts.backoff_max)
    }
}

fn spawn_serve(opts: &SuperviseOptions) -> Result<Child, SuperviseError> {
    let mut cmd = tokio::process::Command::from(self_command()?);
    cmd.args(&opts.serve_args).kill_on_drop(false);
    cmd.spawn().map_err(|source| {
        SuperviseError::Command(DaemonError::Spawn {
            exe: PathBuf::from(crate::facts::SELF_EXE),
            source,
        })
    })
}

fn signal_pid(child: &Child, sig: Signal) {
    if let Some(pid) = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .and_then(Pid::from_raw)
    {
        let _ = kill_process(pid, sig);
    }
}

/// SIGTERM, wait up to `grace`, then SIGKILL.
async fn stop_child(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    signal_pid(child, Signal::TERM);
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(r) => r.ok(),
        Err(_) => {
            tracing::warn!(?grace, "serve ignored SIGTERM; sending SIGKILL");
            let _ = child.start_kill();
            child.wait().await.ok()
        }
    }
}

enum Woke {
    /// `serve` ended (None: it could not be started or waited for).
    Exited(Option<ExitStatus>),
    /// SIGTERM or SIGINT.
    Stop,
}

/// Runs until SIGTERM/SIGINT, or until `serve` exits successfully.
pub async fn supervise(opts: SuperviseOptions) -> Result<(), SuperviseError> {
    if opts.serve_args.first().map(String::as_str) != Some("serve") {
        return Err(SuperviseError::NotServe(opts.serve_args));
    }
    // Leave the caller's session so its hangup does not reach us. Fails
    // (harmlessly) when we already lead a process group.
    if let Err(e) = rustix::process::setsid() {
        tracing::debug!(error = %e, "setsid failed; staying in the current session");
    }
    let install = |kind, name| {
        signal(kind).map_err(|source| SuperviseError::Signal {
            signal: name,
            source,
        })
    };
    let mut term = install(SignalKind::terminate(), "SIGTERM")?;
    let mut int = install(SignalKind::interrupt(), "SIGINT")?;
    // Handled (and ignored) so a hangup never kills the supervisor.
    let mut hup = install(SignalKind::hangup(), "SIGHUP")?;
    let pidfile = Pidfile::acquire(&opts.pidfile)?;
    tracing::info!(pid = std::process::id(), pidfile = %opts.pidfile.display(), "supervisor started");

    let mut backoff = Duration::ZERO;
    loop {
        let started = Instant::now();
        let mut child = match spawn_serve(&opts) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %e, "cannot start serve");
                None
            }
        };
        if let Some(c) = &child {
            tracing::info!(pid = c.id().unwrap_or(0), "serve started");
        }
        let woke = loop {
            tokio::select! {
                status = async {
                    match child.as_mut() {
                        Some(c) => c.wait().await.ok(),
                        None => None,
                    }
                } => break Woke::Exited(status),
                _ = term.recv() => break Woke::Stop,
                _ = int.recv() => break Woke::Stop,
                _ = hup.recv() => continue,
            }
        };
        let exited = match woke {
            Woke::Stop => {
                if let Some(c) = child.as_mut() {
                    let status = stop_child(c, opts.stop_grace).await;
                    tracing::info!(?status, "serve stopped");
                }
                break;
            }
            Woke::Exited(Some(status)) if status.success() => {
                tracing::info!("serve exited cleanly; supervisor exiting");
                break;
            }
            Woke::Exited(status) => status,
        };
        let ran = started.elapsed();
        backoff = next_backoff(backoff, ran, &opts);
        tracing::warn!(status = ?exited, ran_ms = ran.as_millis() as u64, ?backoff, "serve exited abnormally; restarting");
        let stop = tokio::select! {
            () = tokio::time::sleep(backoff) => false,
            _ = term.recv() => true,
            _ = int.recv() => true,
        };
        if stop {
            break;
        }
    }
    pidfile.release()?;
    tracing::info!("supervisor exiting");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let o = SuperviseOptions::new("/p".into(), vec!["serve".into()]);
        let short = Duration::from_secs(1);
        let mut b = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..7 {
            b = next_backoff(b, short, &o);
            seen.push(b.as_secs());
        }
        assert_eq!(seen, vec![1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(next_backoff(b, Duration::from_secs(61), &o).as_secs(), 1);
    }
}

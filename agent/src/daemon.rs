//! Keeping the agent running where systemd is not PID 1: `daemon` starts a
//! detached supervisor (`ferry-agent supervise`) and returns once it holds
//! its pidfile; `stop` ends it.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{Pid, Signal, getpgid, kill_process, kill_process_group};

use crate::pidfile::{self, PidfileError, PidfileState};

/// How long `daemon` waits for the supervisor to write its pidfile.
pub const DAEMON_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `stop` timeout: the supervisor's own grace (15 s) plus margin.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(25);
/// After the stop timeout, how long to wait for SIGKILL to take effect.
const KILL_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Pidfile(#[from] PidfileError),
    #[error("cannot open the log file {path}: {source}")]
    LogFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot find the ferry-agent executable: {0}")]
    CurrentExe(std::io::Error),
    #[error("cannot start the supervisor `{exe} supervise`: {source}")]
    Spawn {
        exe: PathBuf,
        source: std::io::Error,
    },
    #[error("the supervisor exited ({status}) before writing {pidfile}; last lines of {log}:\n{tail}", pidfile = pidfile.display(), log = log.display())]
    SupervisorExited {
        status: std::process::ExitStatus,
        pidfile: PathBuf,
        log: PathBuf,
        tail: String,
    },
    #[error("the supervisor (pid {pid}) did not write {pidfile} within {timeout:?}; it was killed; see {log}", pidfile = pidfile.display(), log = log.display())]
    StartTimeout {
        pid: u32,
        pidfile: PathBuf,
        log: PathBuf,
        timeout: Duration,
    },
    #[error("cannot signal the supervisor (pid {pid}) named in {pidfile}: {source}", pidfile = pidfile.display())]
    Signal {
        pid: i32,
        pidfile: PathBuf,
        source: std::io::Error,
    },
    #[error("the supervisor (pid {pid}) did not exit within {timeout:?} even after SIGKILL; pidfile {pidfile}", pidfile = pidfile.display())]
    StopTimeout {
        pid: i32,
        pidfile: PathBuf,
        timeout: Duration,
    },
}

#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub pidfile: PathBuf,
    pub log_file: PathBuf,
    /// `serve` and its arguments.
    pub serve_args: Vec<String>,
    pub start_timeout: Duration,
}

/// The running executable, as a path for `argv[0]` (so `ps` shows
/// `/path/ferry-agent serve ...`), and `/proc/self/exe` to actually run:
/// the same binary even if the file was replaced or removed meanwhile.
pub fn self_command() -> Result<Command, DaemonError> {
    let exe = std::env::current_exe().map_err(DaemonError::CurrentExe)?;
    let shown = exe.to_string_lossy();
    let shown = shown
        .strip_suffix(" (deleted)")
        .unwrap_or(&shown)
        .to_string();
    let mut c = Command::new(crate::facts::SELF_EXE);
    c.arg0(shown);
    Ok(c)
}

fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return "(log file unreadable)".to_string();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(4096)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Starts `ferry-agent supervise --pidfile P -- serve ...` detached (its own
/// session, stdin from /dev/null, output appended to the log file) and
/// returns its pid once it holds the pidfile.
pub fn daemon(opts: &DaemonOptions) -> Result<u32, DaemonError> {
    if let PidfileState::Held(pid) = pidfile::state(&opts.pidfile)? {
        return Err(PidfileError::AlreadyRunning {
            pid: pid.map_or_else(|| "unknown".to_string(), |p| p.to_string()),
            path: opts.pidfile.clone(),
        }
        .into());
    }
    if let Some(dir) = opts.log_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| DaemonError::LogFile {
            path: opts.log_file.clone(),
            source,
        })?;
    }
    let log = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(&opts.log_file)
        .map_err(|source| DaemonError::LogFile {
            path: opts.log_file.clone(),
            source,
        })?;
    let log2 = log.try_clone().map_err(|source| DaemonError::LogFile {
        path: opts.log_file.clone(),
        source,
    })?;
    let mut cmd = self_command()?;
    cmd.arg("supervise")
        .arg("--pidfile")
        .arg(&opts.pidfile)
        .arg("--")
        .args(&opts.serve_args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // The supervisor and `serve` (and so every command the agent runs)
    // keep a HOME even when started with a bare environment.
    if let Some(home) = crate::home::child_home() {
        cmd.env("HOME", home);
    }
    let mut child = cmd.spawn().map_err(|source| DaemonError::Spawn {
        exe: PathBuf::from(crate::facts::SELF_EXE),
        source,
    })?;
    let pid = child.id();
    let deadline = Instant::now() + opts.start_timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(DaemonError::SupervisorExited {
                status,
                pidfile: opts.pidfile.clone(),
                log: opts.log_file.clone(),
                tail: log_tail(&opts.log_file, 8),
            });
        }
        if let Ok(PidfileState::Held(Some(p))) = pidfile::state(&opts.pidfile)
            && u32::try_from(p).is_ok_and(|p| p == pid)
        {
            return Ok(pid);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(DaemonError::StartTimeout {
                pid,
                pidfile: opts.pidfile.clone(),
                log: opts.log_file.clone(),
                timeout: opts.start_timeout,
            });
        }
        std::thread::sleep(POLL);
    }
}

/// What `stop` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// Nothing was running; `removed_stale` if a stale pidfile was removed.
    NotRunning { removed_stale: bool },
    /// The supervisor exited after SIGTERM.
    Stopped { pid: i32 },
    /// It had to be SIGKILLed (with its process group) after the timeout.
    Killed { pid: i32 },
}

/// Whether `pid` is a process that has not exited (zombies count as gone).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

fn gone(path: &Path, pid: i32) -> bool {
    !alive(pid) && !matches!(pidfile::state(path), Ok(PidfileState::Held(_)))
}

fn poll_until(deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// SIGTERMs the supervisor holding `path` and waits for it to exit; after
/// `timeout`, SIGKILLs its process group. Succeeds if nothing runs.
pub fn stop(path: &Path, timeout: Duration) -> Result<StopOutcome, DaemonError> {
    let deadline = Instant::now() + timeout;
    // A supervisor that is just starting holds the lock before its pid is
    // written: wait for the pid.
    let pid = loop {
        match pidfile::state(path)? {
            PidfileState::Absent => {
                return Ok(StopOutcome::NotRunning {
                    removed_stale: false,
                });
            }
            PidfileState::Stale => {
                let removed_stale = pidfile::remove_stale(path)?;
                return Ok(StopOutcome::NotRunning { removed_stale });
            }
            PidfileState::Held(Some(pid)) => break pid,
            PidfileState::Held(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            PidfileState::Held(None) => {
                return Err(PidfileError::AlreadyRunning {
                    pid: "unknown".to_string(),
                    path: path.to_path_buf(),
                }
                .into());
            }
        }
    };
    let Some(target) = Pid::from_raw(pid) else {
        return Ok(StopOutcome::NotRunning {
            removed_stale: false,
        });
    };
    match kill_process(target, Signal::TERM) {
        Ok(()) | Err(Errno::SRCH) => {}
        Err(e) => {
            return Err(DaemonError::Signal {
                pid,
                pidfile: path.to_path_buf(),
                source: e.into(),
            });
        }
    }
    if poll_until(deadline, || gone(path, pid)) {
        pidfile::remove_stale(path)?;
        return Ok(StopOutcome::Stopped { pid });
    }
    tracing::warn!(
        pid,
        "supervisor ignored SIGTERM for {timeout:?}; sending SIGKILL"
    );
    // The supervisor leads its own session and group (with `serve`); only
    // kill the group if it really is the group's leader.
    let killed = if getpgid(Some(target)).is_ok_and(|g| g == target) {
        kill_process_group(target, Signal::KILL)
    } else {
        kill_process(target, Signal::KILL)
    };
    if let Err(e) = killed
        && e != Errno::SRCH
    {
        return Err(DaemonError::Signal {
            pid,
            pidfile: path.to_path_buf(),
            source: e.into(),
        });
    }
    if poll_until(Instant::now() + KILL_WAIT, || gone(path, pid)) {
        pidfile::remove_stale(path)?;
        return Ok(StopOutcome::Killed { pid });
    }
    Err(DaemonError::StopTimeout {
        pid,
        pidfile: path.to_path_buf(),
        timeout: timeout + KILL_WAIT,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_without_supervisor_succeeds_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.pid");
        assert_eq!(
            stop(&p, Duration::from_secs(1)).unwrap(),
            StopOutcome::NotRunning {
                removed_stale: false
            }
        );
        std::fs::write(&p, "999999\n").unwrap();
        assert_eq!(
            stop(&p, Duration::from_secs(1)).unwrap(),
            StopOutcome::NotRunning {
                removed_stale: true
            }
        );
        assert!(!p.exists());
    }

    #[test]
    fn liveness() {
        assert!(alive(i32::try_from(std::process::id()).unwrap()));
        assert!(!alive(i32::MAX));
    }
}

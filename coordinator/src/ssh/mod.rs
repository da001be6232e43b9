//! The SSH layer: one connection per node, used only to push and start the
//! agent. Commands run on channels multiplexed over that connection; root
//! comes from the login user or sudo (NOPASSWD or with the password on
//! stdin); host keys are checked against an OpenSSH known_hosts file.

mod connect;
mod error;
mod exec;
mod hostkey;
pub mod quote;
mod sudo;
mod upload;

use std::path::PathBuf;
use std::time::Duration;

use ferry_shared::{HostAddr, Secret};
use russh::client::Handle;
use tokio::sync::{OnceCell, Semaphore};

pub use error::SshError;
pub use hostkey::{HostKeyPolicy, UnknownHostKeyPolicy};
pub use quote::{command_line, quote};

use connect::Client;
use sudo::SudoMode;

/// How to log in.
#[derive(Debug, Clone)]
pub enum SshAuth {
    Password(Secret),
    Key {
        path: PathBuf,
        passphrase: Option<Secret>,
    },
}

/// One node to log in to.
#[derive(Debug, Clone)]
pub struct SshTarget {
    pub addr: HostAddr,
    pub user: String,
    pub auth: SshAuth,
    /// sudo password (sealos uses the SSH password)
    pub sudo_password: Option<Secret>,
}

/// Settings shared by all connections of a run.
#[derive(Debug, Clone)]
pub struct SshOptions {
    pub known_hosts: PathBuf,
    pub policy: HostKeyPolicy,
    /// Limit for TCP connect + SSH handshake, and again for authentication.
    pub connect_timeout: Duration,
    /// Limit for each command (and each upload).
    pub command_timeout: Duration,
}

/// What a remote command left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit status; `None` when the command died from a signal or the
    /// server sent none.
    pub code: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// How many stderr lines [`CommandOutput::stderr_tail`] keeps.
pub const STDERR_TAIL_LINES: usize = 20;

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The last [`STDERR_TAIL_LINES`] lines of stderr, lossy UTF-8, trimmed.
    pub fn stderr_tail(&self) -> String {
        tail(&self.stderr, STDERR_TAIL_LINES)
    }

    /// stdout as lossy UTF-8, trimmed.
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim().to_string()
    }
}

fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..]
        .join("\n")
        .trim()
        .to_string()
}

/// A logged-in SSH connection to one node.
pub struct SshSession {
    handle: Handle<Client>,
    host: String,
    user: String,
    root: bool,
    sudo_password: Option<Secret>,
    sudo: OnceCell<Result<SudoMode, String>>,
    command_timeout: Duration,
    /// Bounds concurrent channels below OpenSSH's default `MaxSessions 10`.
    channels: Semaphore,
}

/// Channels one session keeps open at most; callers beyond this wait.
pub const MAX_CHANNELS: usize = 6;

impl std::fmt::Debug for SshSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSession")
            .field("host", &self.host)
            .field("user", &self.user)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl SshSession {
    /// Connects, verifies the host key and logs in; then asks the node for
    /// the user's uid (so a uid-0 user not named root counts as root).
    pub async fn connect(target: &SshTarget, opts: &SshOptions) -> Result<SshSession, SshError> {
        let handle = connect::open(target, opts).await?;
        let mut s = SshSession {
            handle,
            host: target.addr.to_string(),
            user: target.user.clone(),
            root: target.user == "root",
            sudo_password: target.sudo_password.clone().filter(|p| !p.is_empty()),
            sudo: OnceCell::new(),
            command_timeout: opts.command_timeout,
            channels: Semaphore::new(MAX_CHANNELS),
        };
        let id = s.run(&["id", "-u"], None).await?;
        if id.success() {
            let uid = String::from_utf8_lossy(&id.stdout);
            s.root = uid.lines().rfind(|l| !l.trim().is_empty()).map(str::trim) == Some("0");
        }
        tracing::debug!(host = %s.host, user = %s.user, root = s.root, "ssh session ready");
        Ok(s)
    }

    /// Whether the login user is root (uid 0).
    pub fn is_root(&self) -> bool {
        self.root
    }

    /// The node as shown in messages (`ip` or `ip:port`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The login user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Runs argv (each arg POSIX-shell-quoted into the exec string), with
    /// optional stdin bytes then EOF.
    pub async fn run(
        &self,
        argv: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<CommandOutput, SshError> {
        let line = self.line(argv)?;
        let input = stdin.map_or(exec::Input::None, exec::Input::Bytes);
        Ok(self.exec(&line, &line, input).await?.0)
    }

    /// Same as [`run`](Self::run), but a non-zero exit is
    /// [`SshError::Command`] with the command, its code and stderr tail.
    pub async fn run_ok(
        &self,
        argv: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<CommandOutput, SshError> {
        let out = self.run(argv, stdin).await?;
        self.check(&command_line(argv).unwrap_or_default(), out)
    }

    /// Turns a failed output into [`SshError::Command`].
    fn check(&self, command: &str, out: CommandOutput) -> Result<CommandOutput, SshError> {
        if out.success() {
            return Ok(out);
        }
        Err(SshError::Command {
            host: self.host.clone(),
            command: command.to_string(),
            code: out.code,
            stderr_tail: self.redact(out.stderr_tail()),
        })
    }

    /// Removes the sudo password from text that came from the node.
    fn redact(&self, text: String) -> String {
        match &self.sudo_password {
            Some(pw) if text.contains(pw.expose()) => text.replace(pw.expose(), "***"),
            _ => text,
        }
    }

    fn line(&self, argv: &[&str]) -> Result<String, SshError> {
        command_line(argv).ok_or_else(|| SshError::Command {
            host: self.host.clone(),
            command: argv.join(" ").replace('\0', "\\0"),
            code: None,
            stderr_tail: "an argument contains a NUL byte, which a remote command cannot receive"
                .into(),
        })
    }

    fn protocol(&self, source: russh::Error) -> SshError {
        SshError::Protocol {
            host: self.host.clone(),
            source,
        }
    }

    /// Says goodbye to the server; errors are ignored.
    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "ferry done", "en")
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_tail_keeps_last_lines() {
        let mut err = Vec::new();
        for i in 0..30 {
            err.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        err.extend_from_slice(b"\xff bad utf8\n\n");
        let out = CommandOutput {
            code: Some(1),
            stdout: Vec::new(),
            stderr: err,
        };
        let t = out.stderr_tail();
        assert_eq!(t.lines().count(), STDERR_TAIL_LINES);
        assert!(t.starts_with("line 11"), "{t}");
        assert!(t.ends_with("\u{fffd} bad utf8"), "{t}");
        assert_eq!(CommandOutput::default().stderr_tail(), "");
    }
}

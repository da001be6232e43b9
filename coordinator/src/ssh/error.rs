//! The one error type of the SSH layer. Every variant names the host (and
//! user where it matters) and ends with a next step. No variant carries a
//! password or passphrase: callers hold those as [`ferry_shared::Secret`].

use std::path::PathBuf;
use std::time::Duration;

use ferry_shared::Phase;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error(
        "{host}: cannot reach the SSH port: {source}; next: check the address and port (--port), that sshd runs on the node and that no firewall blocks it"
    )]
    Unreachable {
        host: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{host}: no SSH handshake within {after:?}; next: check the address and port, that sshd (not another service) listens there, or raise the connect timeout"
    )]
    ConnectTimeout { host: String, after: Duration },

    #[error(
        "{host}: its host key {fingerprint} is not in {} and the host-key policy is strict; next: check the fingerprint on the node (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and add the key to that file, or use --host-key-policy accept-new",
        known_hosts.display()
    )]
    HostKeyUnknown {
        host: String,
        fingerprint: String,
        known_hosts: PathBuf,
    },

    #[error(
        "{host}: HOST KEY CHANGED: the node presented {fingerprint}, but {} line {line} records a different key for it (this can be a man-in-the-middle attack); next: if the node was reinstalled, remove that line (ssh-keygen -R '{entry}' -f {}) and retry",
        known_hosts.display(), known_hosts.display()
    )]
    HostKeyChanged {
        host: String,
        /// How the host is written in known_hosts: `ip` or `[ip]:port`.
        entry: String,
        fingerprint: String,
        known_hosts: PathBuf,
        line: usize,
    },

    #[error(
        "{host}: cannot use the known_hosts file {}: {reason}; next: fix or move that file, or pass another one with --known-hosts",
        path.display()
    )]
    KnownHosts {
        host: String,
        path: PathBuf,
        reason: String,
    },

    #[error(
        "{host}: the node refused {method} authentication as `{user}`{hint}; next: check the user (-u) and the password (-p) or key (-i), and that sshd allows this login"
    )]
    AuthFailed {
        host: String,
        user: String,
        method: String,
        /// What the server offers instead, e.g. ` (the node accepts: publickey)`.
        hint: String,
    },

    #[error(
        "SSH key {}: {reason}; next: check the path given with -i/--pk and its passphrase (--pk-passwd)",
        path.display()
    )]
    KeyFile { path: PathBuf, reason: String },

    #[error(
        "{host}: user `{user}` cannot become root with sudo: {reason}; next: give the sudo password with -p/--passwd or allow NOPASSWD for this user in sudoers (or connect as root)"
    )]
    SudoRefused {
        host: String,
        user: String,
        reason: String,
    },

    #[error(
        "{host}: `{command}` failed ({}); next: fix the cause on the node (see its error output) and retry{}",
        code.map_or_else(|| "no exit status".to_string(), |c| format!("exit {c}")),
        tail_suffix(stderr_tail)
    )]
    Command {
        host: String,
        command: String,
        code: Option<u32>,
        stderr_tail: String,
    },

    #[error(
        "{host}: `{command}` did not finish within {after:?}; next: check the node's load and disk, or raise the command timeout"
    )]
    CommandTimeout {
        host: String,
        command: String,
        after: Duration,
    },

    #[error(
        "{host}: copying to {path} failed: {reason}; next: check free space and that the target directory exists on the node, then retry"
    )]
    Transfer {
        host: String,
        path: String,
        reason: String,
    },

    #[error(
        "{host}: SSH protocol error: {source}; next: check that the port runs OpenSSH (or a compatible server) and retry"
    )]
    Protocol {
        host: String,
        #[source]
        source: russh::Error,
    },
}

fn tail_suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("\nstderr (last lines):\n{tail}")
    }
}

impl SshError {
    /// The phase of node bootstrap this error belongs to.
    ///
    /// Commands that fail (or time out) report [`Phase::Exec`]; callers that
    /// ran them as part of another phase may override it.
    pub fn phase(&self) -> Phase {
        match self {
            SshError::Unreachable { .. }
            | SshError::ConnectTimeout { .. }
            | SshError::HostKeyUnknown { .. }
            | SshError::HostKeyChanged { .. }
            | SshError::KnownHosts { .. }
            | SshError::Protocol { .. } => Phase::Connect,
            SshError::AuthFailed { .. } | SshError::KeyFile { .. } => Phase::Authenticate,
            SshError::SudoRefused { .. } => Phase::Sudo,
            SshError::Transfer { .. } => Phase::Upload,
            SshError::Command { .. } | SshError::CommandTimeout { .. } => Phase::Exec,
        }
    }

    /// The host this error is about, when it is about one.
    pub fn host(&self) -> Option<&str> {
        match self {
            SshError::KeyFile { .. } => None,
            SshError::Unreachable { host, .. }
            | SshError::ConnectTimeout { host, .. }
            | SshError::HostKeyUnknown { host, .. }
            | SshError::HostKeyChanged { host, .. }
            | SshError::KnownHosts { host, .. }
            | SshError::AuthFailed { host, .. }
            | SshError::SudoRefused { host, .. }
            | SshError::Command { host, .. }
            | SshError::CommandTimeout { host, .. }
            | SshError::Transfer { host, .. }
            | SshError::Protocol { host, .. } => Some(host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_and_next_steps() {
        let e = SshError::SudoRefused {
            host: "10.0.0.2".into(),
            user: "ops".into(),
            reason: "the sudo password was rejected".into(),
        };
        assert_eq!(e.phase(), Phase::Sudo);
        let s = e.to_string();
        assert!(
            s.contains("10.0.0.2") && s.contains("ops") && s.contains("next:"),
            "{s}"
        );
        let e = SshError::Command {
            host: "h".into(),
            command: "false".into(),
            code: Some(1),
            stderr_tail: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "h: `false` failed (exit 1); next: fix the cause on the node (see its error output) and retry"
        );
        let e = SshError::KeyFile {
            path: "/k".into(),
            reason: "missing".into(),
        };
        assert_eq!(e.phase(), Phase::Authenticate);
        assert_eq!(e.host(), None);
    }
}

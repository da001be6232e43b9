//! Becoming root: directly when the login user is root, else with
//! `sudo -n` (NOPASSWD) or `sudo -S` fed the password on stdin. The mode is
//! found once per session and cached; the password never goes in argv.

use super::exec::{Fed, Input};
use super::{CommandOutput, SshError, SshSession, command_line};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SudoMode {
    /// The login user is root.
    Root,
    /// `sudo -n` works.
    NoPassword,
    /// `sudo -S` with the known password works.
    Password,
}

const SUDO_N: [&str; 3] = ["sudo", "-n", "--"];
/// `-k`: always ask, so the password line is always consumed by sudo and
/// never reaches the command's stdin; `-p ''`: no prompt on stderr.
const SUDO_S: [&str; 6] = ["sudo", "-k", "-S", "-p", "", "--"];

impl SshSession {
    /// The cached sudo mode. A refusal is cached too: retrying a wrong
    /// password on every command could lock the account (pam_faillock).
    async fn sudo_mode(&self) -> Result<SudoMode, SshError> {
        let found = self.sudo.get_or_try_init(|| self.detect_sudo()).await?;
        found.clone().map_err(|reason| self.refused(reason))
    }

    /// Ok(Err(reason)) when sudo refused; Err for transport failures,
    /// which are not cached.
    async fn detect_sudo(&self) -> Result<Result<SudoMode, String>, SshError> {
        if self.root {
            return Ok(Ok(SudoMode::Root));
        }
        let probe = self.run(&["sudo", "-n", "true"], None).await?;
        if probe.success() {
            return Ok(Ok(SudoMode::NoPassword));
        }
        if probe.code == Some(127) {
            return Ok(Err("sudo is not installed on the node".into()));
        }
        if self.sudo_password.is_none() {
            return Ok(Err(explain(&probe, false)));
        }
        let (out, _) = self.run_with_password(&["true"], b"").await?;
        Ok(if out.success() {
            Ok(SudoMode::Password)
        } else {
            Err(explain(&out, true))
        })
    }

    fn refused(&self, reason: String) -> SshError {
        SshError::SudoRefused {
            host: self.host.clone(),
            user: self.user.clone(),
            reason: self.redact(reason),
        }
    }

    /// `sudo -S -- argv` with `password\n` on stdin, then `data` (which
    /// reaches the command: sudo reads the password line alone).
    async fn run_with_password(
        &self,
        argv: &[&str],
        data: &[u8],
    ) -> Result<(CommandOutput, Fed), SshError> {
        let full: Vec<&str> = SUDO_S.iter().chain(argv).copied().collect();
        let line = self.line(&full)?;
        let mut stdin = self
            .sudo_password
            .as_ref()
            .map(|p| p.expose().as_bytes().to_vec())
            .unwrap_or_default();
        stdin.push(b'\n');
        stdin.extend_from_slice(data);
        let shown = shown(argv);
        let (mut out, fed) = self.exec(&shown, &line, Input::Bytes(&stdin)).await?;
        stdin.fill(0);
        if let Some(pw) = &self.sudo_password {
            let text = String::from_utf8_lossy(&out.stderr);
            if text.contains(pw.expose()) {
                out.stderr = text.replace(pw.expose(), "***").into_bytes();
            }
        }
        Ok((out, fed))
    }

    /// Runs argv as root: directly when the user is root, else via sudo.
    pub async fn run_privileged(&self, argv: &[&str]) -> Result<CommandOutput, SshError> {
        match self.sudo_mode().await? {
            SudoMode::Root => self.run(argv, None).await,
            SudoMode::NoPassword => {
                let full: Vec<&str> = SUDO_N.iter().chain(argv).copied().collect();
                self.run(&full, None).await
            }
            SudoMode::Password => self.run_with_password(argv, b"").await.map(|(o, _)| o),
        }
    }

    /// Runs argv as root with `data` on its stdin, which then reaches only
    /// root's process: nothing is staged as the login user. `Fed` counts
    /// the password line too where sudo reads one.
    pub(crate) async fn run_privileged_input(
        &self,
        argv: &[&str],
        data: &[u8],
    ) -> Result<(CommandOutput, Fed), SshError> {
        let full: Vec<&str> = match self.sudo_mode().await? {
            SudoMode::Root => argv.to_vec(),
            SudoMode::NoPassword => SUDO_N.iter().chain(argv).copied().collect(),
            SudoMode::Password => return self.run_with_password(argv, data).await,
        };
        let line = self.line(&full)?;
        self.exec(&shown(argv), &line, Input::Bytes(data)).await
    }

    /// Same as [`run_privileged`](Self::run_privileged), but a non-zero
    /// exit is [`SshError::Command`].
    pub async fn run_privileged_ok(&self, argv: &[&str]) -> Result<CommandOutput, SshError> {
        let out = self.run_privileged(argv).await?;
        let shown = if self.root {
            command_line(argv).unwrap_or_default()
        } else {
            shown(argv)
        };
        self.check(&shown, out)
    }

    /// Verifies the user can become root: Ok for root, else
    /// [`SshError::SudoRefused`] naming why. The result is cached.
    pub async fn check_sudo(&self) -> Result<(), SshError> {
        self.sudo_mode().await.map(|_| ())
    }
}

/// The command as messages show it.
fn shown(argv: &[&str]) -> String {
    format!("sudo -- {}", command_line(argv).unwrap_or_default())
}

/// Why sudo said no, in words, followed by sudo's own message.
fn explain(out: &CommandOutput, had_password: bool) -> String {
    let said = sudo_said(&out.stderr_tail());
    let lower = said.to_lowercase();
    let why = if lower.contains("not in the sudoers file") {
        "the user is not in the sudoers file"
    } else if lower.contains("incorrect password") || lower.contains("try again") {
        "the sudo password was rejected"
    } else if lower.contains("not allowed") {
        "sudoers does not allow this user to run commands as root"
    } else if lower.contains("tty") {
        "sudoers requires a terminal (Defaults requiretty); drop requiretty for this user"
    } else if lower.contains("password is required") && !had_password {
        "sudo asks for a password and none was given"
    } else {
        "sudo failed"
    };
    match (said.is_empty(), out.code) {
        (true, Some(code)) => format!("{why} (sudo exited {code})"),
        (true, None) => why.to_string(),
        (false, _) => format!("{why} (sudo said: {said})"),
    }
}

/// sudo's own lines from stderr, joined, bounded.
fn sudo_said(stderr: &str) -> String {
    let mut s = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    if s.len() > 400 {
        let mut cut = 400;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(code: u32, stderr: &str) -> CommandOutput {
        CommandOutput {
            code: Some(code),
            stdout: Vec::new(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    #[test]
    fn explains_sudo_refusals() {
        let e = explain(&out(1, "sudo: a password is required\n"), false);
        assert!(
            e.starts_with("sudo asks for a password and none was given"),
            "{e}"
        );
        let e = explain(
            &out(
                1,
                "Sorry, try again.\nsudo: no password was provided\nsudo: 1 incorrect password attempt\n",
            ),
            true,
        );
        assert!(
            e.starts_with("the sudo password was rejected (sudo said: Sorry"),
            "{e}"
        );
        let e = explain(&out(1, "bob is not in the sudoers file.\n"), true);
        assert!(e.starts_with("the user is not in the sudoers file"), "{e}");
        let e = explain(
            &out(
                1,
                "Sorry, user bob is not allowed to execute '/usr/bin/true' as root on h.\n",
            ),
            true,
        );
        assert!(e.starts_with("sudoers does not allow"), "{e}");
        assert_eq!(explain(&out(1, ""), true), "sudo failed (sudo exited 1)");
        assert!(sudo_said(&"é".repeat(500)).ends_with('…'));
    }

    #[test]
    fn password_never_in_argv() {
        assert!(SUDO_S.contains(&"-S") && SUDO_S.contains(&"-k"));
        assert_eq!(shown(&["id", "-u"]), "sudo -- id -u");
    }
}

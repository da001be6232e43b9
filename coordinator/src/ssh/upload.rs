//! Uploads. Files (the agent binary): streamed into a private temp file as
//! the login user, its SHA-256 compared with what was sent, then (as root)
//! copied next to the target and renamed into place, so the target never
//! holds partial content or a laxer mode than asked for. Small content
//! (certificates, keys, units): fed on the stdin of one root process that
//! writes it next to the target (0600 until checked), so a key never lands
//! in a file the login user owns, not even for a moment.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::exec::Input;
use super::{CommandOutput, SshError, SshSession};

/// Runs as the login user with the content on stdin. Prints the temp path
/// and the SHA-256 of what arrived; removes the temp file on failure.
const RECEIVE: &str = r#"umask 077
t=$(mktemp "${TMPDIR:-/tmp}/ferry-upload.XXXXXXXXXX") || exit 1
printf 'ferry-tmp:%s\n' "$t"
if cat > "$t" && s=$(sha256sum < "$t"); then
  printf 'ferry-sha:%s\n' "${s%% *}"
else
  rm -f "$t"; exit 1
fi"#;

/// Runs as root: `$1` temp file, `$2` target, `$3` octal mode. The copy is
/// made in the target's directory (same filesystem), so `mv` is atomic.
const INSTALL: &str = r#"umask 077
n=$(mktemp "$2.ferry-XXXXXX") || { rm -f "$1"; exit 1; }
if cat "$1" > "$n" && chmod "$3" "$n" && mv -f "$n" "$2"; then
  rm -f "$1"
else
  rm -f "$n" "$1"; exit 1
fi"#;

/// Runs as root with the content on stdin: `$1` target, `$2` octal mode,
/// `$3` the sha256 sent. Prints the sha256 that arrived; the file is
/// renamed into place only when it matches, else removed.
const INSTALL_STDIN: &str = r#"umask 077
n=$(mktemp "$1.ferry-XXXXXX") || exit 1
if cat > "$n" && s=$(sha256sum < "$n") && printf 'ferry-sha:%s\n' "${s%% *}" &&
  [ "${s%% *}" = "$3" ] && chmod "$2" "$n" && mv -f "$n" "$1"; then
  exit 0
fi
rm -f "$n"; exit 1"#;

/// The root command of [`SshSession::upload_bytes`]: argv only, the
/// content goes on its stdin.
fn install_stdin_argv<'a>(remote: &'a str, mode: &'a str, sha256: &'a str) -> [&'a str; 7] {
    [
        "sh",
        "-c",
        INSTALL_STDIN,
        "ferry-install",
        remote,
        mode,
        sha256,
    ]
}

impl SshSession {
    /// Streams a local file (in chunks) to `remote` with `mode`, owned by
    /// root. Returns the bytes sent.
    pub async fn upload_file(
        &self,
        local: &Path,
        remote: &str,
        mode: u32,
    ) -> Result<u64, SshError> {
        let mut file = tokio::fs::File::open(local).await.map_err(|e| {
            self.transfer(
                remote,
                format!("cannot open the local file {}: {e}", local.display()),
            )
        })?;
        self.upload(Input::File(&mut file), remote, mode).await
    }

    /// Same as [`upload_file`](Self::upload_file) for small in-memory
    /// content (certificates, keys, config). Temp files are 0600.
    pub async fn upload_bytes(&self, data: &[u8], remote: &str, mode: u32) -> Result<(), SshError> {
        self.check_sudo().await?;
        let sha = hex::encode(Sha256::digest(data));
        let mode = format!("{:o}", mode & 0o7777);
        let argv = install_stdin_argv(remote, &mode, &sha);
        let (out, fed) = self.run_privileged_input(&argv, data).await?;
        if out.success() && fed.complete {
            tracing::debug!(host = %self.host, remote, bytes = data.len(), "uploaded");
            return Ok(());
        }
        let reason = match field(&out, "ferry-sha:") {
            Some(got) if got != sha => format!(
                "checksum mismatch: sent {} bytes with sha256 {sha}, the node received sha256 {got}",
                data.len()
            ),
            _ => format!(
                "writing it in place as root failed ({}): {}",
                exit(&out),
                out.stderr_tail()
            ),
        };
        Err(self.transfer(remote, reason))
    }

    fn transfer(&self, remote: &str, reason: String) -> SshError {
        SshError::Transfer {
            host: self.host.clone(),
            path: remote.to_string(),
            reason,
        }
    }

    async fn upload(&self, input: Input<'_>, remote: &str, mode: u32) -> Result<u64, SshError> {
        // Fail on sudo before sending anything.
        self.check_sudo().await?;
        let line = self.line(&["sh", "-c", RECEIVE])?;
        let shown = format!("upload to {remote}");
        let (out, fed) = self.exec(&shown, &line, input).await?;
        let tmp = field(&out, "ferry-tmp:");
        let fail = |reason: String| async {
            if let Some(t) = &tmp {
                let _ = self.run(&["rm", "-f", t], None).await;
            }
            Err(self.transfer(remote, reason))
        };
        let (Some(tmp_path), Some(got)) = (tmp.clone(), field(&out, "ferry-sha:")) else {
            return fail(format!(
                "the node could not store a temporary copy ({}): {}",
                exit(&out),
                out.stderr_tail()
            ))
            .await;
        };
        if !out.success() || !fed.complete {
            return fail(format!(
                "the node stopped receiving after {} bytes ({}): {}",
                fed.bytes,
                exit(&out),
                out.stderr_tail()
            ))
            .await;
        }
        if got != fed.sha256 {
            return fail(format!(
                "checksum mismatch: sent {} bytes with sha256 {}, the node received sha256 {got}",
                fed.bytes, fed.sha256
            ))
            .await;
        }
        let mode = format!("{:o}", mode & 0o7777);
        let out = self
            .run_privileged(&[
                "sh",
                "-c",
                INSTALL,
                "ferry-install",
                &tmp_path,
                remote,
                &mode,
            ])
            .await?;
        if !out.success() {
            return fail(format!(
                "moving it into place failed ({}): {}",
                exit(&out),
                out.stderr_tail()
            ))
            .await;
        }
        tracing::debug!(host = %self.host, remote, bytes = fed.bytes, "uploaded");
        Ok(fed.bytes)
    }
}

/// The value of the stdout line starting with `key`.
fn field(out: &CommandOutput, key: &str) -> Option<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn exit(out: &CommandOutput) -> String {
    out.code
        .map_or_else(|| "no exit status".into(), |c| format!("exit {c}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_among_noise() {
        let out = CommandOutput {
            code: Some(0),
            stdout: b"motd noise\nferry-tmp:/tmp/ferry-upload.abc\nferry-sha:00ff\n".to_vec(),
            stderr: Vec::new(),
        };
        assert_eq!(
            field(&out, "ferry-tmp:").as_deref(),
            Some("/tmp/ferry-upload.abc")
        );
        assert_eq!(field(&out, "ferry-sha:").as_deref(), Some("00ff"));
        assert_eq!(field(&out, "nope:"), None);
        assert_eq!(exit(&CommandOutput::default()), "no exit status");
    }

    #[test]
    fn small_uploads_are_one_root_command_fed_on_stdin() {
        let argv = install_stdin_argv("/var/lib/ferry/agent/tls/agent.key", "600", "ab12");
        assert_eq!(argv[..2], ["sh", "-c"]);
        assert_eq!(
            argv[3..],
            [
                "ferry-install",
                "/var/lib/ferry/agent/tls/agent.key",
                "600",
                "ab12"
            ]
        );
        // Staged beside the target, as root, private, never in the login
        // user's TMPDIR; kept only when the checksum matches.
        let script = argv[2];
        assert!(script.starts_with("umask 077\n"));
        assert!(script.contains(r#"mktemp "$1.ferry-XXXXXX""#));
        assert!(!script.contains("TMPDIR") && !script.contains("/tmp"));
        assert!(script.contains(r#"[ "${s%% *}" = "$3" ] && chmod "$2" "$n" && mv -f "$n" "$1""#));
        assert!(script.ends_with(r#"rm -f "$n"; exit 1"#));
    }

    #[test]
    fn the_stdin_install_keeps_only_matching_content() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("agent.key");
        let target = target.to_str().unwrap();
        let run = |data: &[u8], sha: &str| {
            use std::io::Write;
            let mut c = std::process::Command::new("/bin/sh")
                .args(["-c", INSTALL_STDIN, "ferry-install", target, "640", sha])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            c.stdin.take().unwrap().write_all(data).unwrap();
            c.wait_with_output().unwrap()
        };
        let good = hex::encode(Sha256::digest(b"key"));
        assert!(run(b"key", &good).status.success());
        assert_eq!(std::fs::read(target).unwrap(), b"key");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        let out = run(b"other", &good);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("ferry-sha:"));
        assert_eq!(std::fs::read(target).unwrap(), b"key", "kept the old one");
        let left = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(left, 1, "no stage left beside the target");
    }

    #[test]
    fn scripts_parse_under_sh() {
        for s in [RECEIVE, INSTALL, INSTALL_STDIN] {
            let st = std::process::Command::new("/bin/sh")
                .args(["-n", "-c", s])
                .status()
                .unwrap();
            assert!(st.success());
        }
    }
}

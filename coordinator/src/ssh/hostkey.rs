//! Host-key verification against an OpenSSH known_hosts file.
//!
//! Entries are written the way OpenSSH writes them: `ip` on port 22,
//! `[ip]:port` otherwise, unhashed.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;

use ferry_shared::HostAddr;
use russh::keys::known_hosts::{check_known_hosts_path, known_host_keys_path};
use russh::keys::{Algorithm, HashAlg, PublicKey};

use super::SshError;

/// What to do with a host key that known_hosts does not vouch for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostKeyPolicy {
    /// Only keys already in known_hosts are accepted.
    Strict,
    /// Unknown keys are recorded; changed keys are refused (OpenSSH's
    /// `StrictHostKeyChecking=accept-new`).
    #[default]
    AcceptNew,
    /// No check at all.
    Off,
}

impl HostKeyPolicy {
    pub const fn as_str(self) -> &'static str {
        match self {
            HostKeyPolicy::Strict => "strict",
            HostKeyPolicy::AcceptNew => "accept-new",
            HostKeyPolicy::Off => "off",
        }
    }
}

impl std::fmt::Display for HostKeyPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown host-key policy `{0}` (expected strict, accept-new or off)")]
pub struct UnknownHostKeyPolicy(pub String);

impl FromStr for HostKeyPolicy {
    type Err = UnknownHostKeyPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "strict" => Ok(HostKeyPolicy::Strict),
            "accept-new" => Ok(HostKeyPolicy::AcceptNew),
            "off" => Ok(HostKeyPolicy::Off),
            other => Err(UnknownHostKeyPolicy(other.to_string())),
        }
    }
}

/// Serialises known_hosts reads and appends within this process, so that
/// parallel connects neither interleave lines nor record a host twice.
static KNOWN_HOSTS_LOCK: Mutex<()> = Mutex::new(());

/// Everything needed to judge one host's key.
#[derive(Debug, Clone)]
pub(crate) struct HostKeyCheck {
    pub addr: HostAddr,
    pub policy: HostKeyPolicy,
    pub known_hosts: PathBuf,
}

impl HostKeyCheck {
    fn host(&self) -> String {
        self.addr.to_string()
    }

    fn ip(&self) -> String {
        self.addr.ip.to_string()
    }

    /// The host's name in known_hosts, as OpenSSH writes it.
    pub fn entry(&self) -> String {
        match self.addr.port {
            22 => self.ip(),
            port => format!("[{}]:{port}", self.ip()),
        }
    }

    /// Accepts, records or refuses `key` according to the policy.
    pub fn verify(&self, key: &PublicKey) -> Result<(), SshError> {
        if self.policy == HostKeyPolicy::Off {
            return Ok(());
        }
        let _guard = KNOWN_HOSTS_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        match check_known_hosts_path(&self.ip(), self.addr.port, key, &self.known_hosts) {
            Ok(true) => Ok(()),
            Ok(false) if self.policy == HostKeyPolicy::Strict => Err(SshError::HostKeyUnknown {
                host: self.host(),
                fingerprint,
                known_hosts: self.known_hosts.clone(),
            }),
            Ok(false) => self.learn(key),
            Err(russh::keys::Error::KeyChanged { line }) => Err(SshError::HostKeyChanged {
                host: self.host(),
                entry: self.entry(),
                fingerprint,
                known_hosts: self.known_hosts.clone(),
                line: real_line(&self.known_hosts, line),
            }),
            Err(e) => Err(self.file_error(e.to_string())),
        }
    }

    fn file_error(&self, reason: String) -> SshError {
        SshError::KnownHosts {
            host: self.host(),
            path: self.known_hosts.clone(),
            reason,
        }
    }

    /// Appends `entry key` (russh's `learn_known_hosts_path` would start an
    /// empty file with a blank line, shifting every line number).
    fn learn(&self, key: &PublicKey) -> Result<(), SshError> {
        let openssh = key
            .to_openssh()
            .map_err(|e| self.file_error(format!("cannot encode the host key: {e}")))?;
        append_line(&self.known_hosts, &format!("{} {openssh}", self.entry()))
            .map_err(|e| self.file_error(format!("cannot record the host key: {e}")))?;
        tracing::info!(
            host = %self.host(),
            fingerprint = %key.fingerprint(HashAlg::Sha256),
            known_hosts = %self.known_hosts.display(),
            "recorded new host key"
        );
        Ok(())
    }

    /// Host-key algorithms in preference order, those already recorded for
    /// this host first (as OpenSSH does), so a host known by its ECDSA key
    /// is not asked for an Ed25519 one it was never vouched for.
    pub fn preferred_algorithms(&self, defaults: &[Algorithm]) -> Vec<Algorithm> {
        let known: Vec<Algorithm> = if self.policy == HostKeyPolicy::Off {
            Vec::new()
        } else {
            let _guard = KNOWN_HOSTS_LOCK.lock().unwrap_or_else(|p| p.into_inner());
            known_host_keys_path(&self.ip(), self.addr.port, &self.known_hosts)
                .map(|keys| keys.into_iter().map(|(_, k)| k.algorithm()).collect())
                .unwrap_or_default()
        };
        let is_known = |a: &Algorithm| known.iter().any(|k| same_family(k, a));
        let (mut first, rest): (Vec<Algorithm>, Vec<Algorithm>) =
            defaults.iter().cloned().partition(is_known);
        first.extend(rest);
        first
    }
}

/// RSA keys are one family whatever signature hash is negotiated.
fn same_family(a: &Algorithm, b: &Algorithm) -> bool {
    matches!((a, b), (Algorithm::Rsa { .. }, Algorithm::Rsa { .. })) || a == b
}

/// russh numbers only non-comment lines; turns its number into the file's.
fn real_line(path: &Path, russh_line: usize) -> usize {
    let Ok(text) = std::fs::read_to_string(path) else {
        return russh_line;
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#'))
        .nth(russh_line.saturating_sub(1))
        .map_or(russh_line, |(i, _)| i + 1)
}

/// Appends one line, creating the file (0600, parents 0700) if needed and
/// first ending an unterminated last line.
fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    ensure_private_file(path)?;
    let mut f = OpenOptions::new().read(true).append(true).open(path)?;
    let mut text = String::new();
    if f.seek(SeekFrom::End(-1)).is_ok() {
        let mut last = [0u8; 1];
        f.read_exact(&mut last)?;
        if last[0] != b'\n' {
            text.push('\n');
        }
    }
    text.push_str(line);
    text.push('\n');
    // One write with O_APPEND: no interleaving with other writers.
    f.write_all(text.as_bytes())
}

/// Creates `path` (mode 0600) and its missing parent directories (0700).
fn ensure_private_file(path: &Path) -> std::io::Result<()> {
    if let Some(parent) = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty() && !p.exists())
    {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn policy_round_trips() {
        for p in [
            HostKeyPolicy::Strict,
            HostKeyPolicy::AcceptNew,
            HostKeyPolicy::Off,
        ] {
            assert_eq!(p.as_str().parse::<HostKeyPolicy>().unwrap(), p);
        }
        assert!("yes".parse::<HostKeyPolicy>().is_err());
        assert_eq!(HostKeyPolicy::default(), HostKeyPolicy::AcceptNew);
    }

    #[test]
    fn entries_follow_openssh() {
        let mk = |s: &str| HostKeyCheck {
            addr: s.parse().unwrap(),
            policy: HostKeyPolicy::Strict,
            known_hosts: PathBuf::new(),
        };
        assert_eq!(mk("10.0.0.1").entry(), "10.0.0.1");
        assert_eq!(mk("10.0.0.1:2222").entry(), "[10.0.0.1]:2222");
        assert_eq!(mk("[fd00::1]:2222").entry(), "[fd00::1]:2222");
    }

    #[test]
    fn private_file_and_dir_modes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b/known_hosts");
        ensure_private_file(&p).unwrap();
        ensure_private_file(&p).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(p.parent().unwrap()), 0o700);
        assert_eq!(mode(&d.path().join("a")), 0o700);
    }

    #[test]
    fn append_and_line_numbers() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("kh");
        append_line(&p, "a 1").unwrap();
        std::fs::write(&p, std::fs::read_to_string(&p).unwrap() + "# c\nb 2").unwrap();
        append_line(&p, "c 3").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a 1\n# c\nb 2\nc 3\n");
        assert_eq!(real_line(&p, 1), 1);
        assert_eq!(real_line(&p, 2), 3);
        assert_eq!(real_line(&p, 3), 4);
    }

    #[test]
    fn known_algorithms_come_first() {
        let d = tempfile::tempdir().unwrap();
        let kh = d.path().join("known_hosts");
        std::fs::write(
            &kh,
            "[127.0.0.1]:2200 ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBIRmuUv9hwb82RWYv0I3wmtH9e8zaTfPxcci8ojE+TbS7XFGRAslfNjxQF1OxqJ1OqKYyGdMNuykF+MeQCUya7k=\n",
        )
        .unwrap();
        let c = HostKeyCheck {
            addr: "127.0.0.1:2200".parse().unwrap(),
            policy: HostKeyPolicy::Strict,
            known_hosts: kh,
        };
        let defaults = [
            Algorithm::Ed25519,
            Algorithm::Ecdsa {
                curve: russh::keys::EcdsaCurve::NistP256,
            },
        ];
        let got = c.preferred_algorithms(&defaults);
        assert_eq!(got[0], defaults[1]);
        assert_eq!(got[1], defaults[0]);
    }
}

//! Turning SSH flags and host lists into per-host SSH targets.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_shared::{HostAddr, Secret, parse_host_list};

use super::CliError;
use crate::cli::SshArgs;
use crate::ssh::{HostKeyPolicy, SshAuth, SshOptions, SshTarget};
use crate::state::{ClusterState, SshSettings};

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// Parses a sealos host list, applying `--port` to items without a port.
pub fn hosts(list: &str, port: u16) -> Result<Vec<HostAddr>, CliError> {
    let mut out = parse_host_list(list).map_err(CliError::Hosts)?;
    if port != ferry_shared::hosts::DEFAULT_SSH_PORT {
        for (h, item) in out.iter_mut().zip(explicit_ports(list)) {
            if !item {
                h.port = port;
            }
        }
    }
    Ok(out)
}

/// For each expanded host of `list`, whether its item named a port.
fn explicit_ports(list: &str) -> Vec<bool> {
    let mut v = Vec::new();
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let first = item.split('-').next().unwrap_or(item).trim();
        let explicit = if first.starts_with('[') {
            first.contains("]:")
        } else {
            first.matches(':').count() == 1
        };
        let n = parse_host_list(item).map(|l| l.len()).unwrap_or(1);
        v.extend(std::iter::repeat_n(explicit, n));
    }
    v
}

/// The host-key policy when neither the flag nor the cluster's record
/// names one.
pub const DEFAULT_HOST_KEY_POLICY: &str = "accept-new";

/// SSH options: the command's flags over the cluster's recorded settings
/// (`ssh.json`) over the defaults. The install records them once an SSH
/// connection with them succeeded ([`crate::install::InstallCtx::remember`]),
/// so a later command from this bastion checks host keys against the same
/// file without the flags being repeated.
pub fn options(a: &SshArgs, cluster: &ClusterState) -> Result<SshOptions, CliError> {
    let given = SshSettings {
        known_hosts: a.known_hosts.as_ref().map(|p| absolute(p)),
        host_key_policy: a.host_key_policy.clone(),
    };
    let stored = SshSettings::load(cluster.dir())?;
    let s = stored.overlay(&given);
    let policy_text = s
        .host_key_policy
        .clone()
        .unwrap_or_else(|| DEFAULT_HOST_KEY_POLICY.to_string());
    let policy: HostKeyPolicy = policy_text.parse().map_err(|_| {
        CliError::Usage(format!(
            "--host-key-policy must be strict, accept-new or off, not `{policy_text}`"
        ))
    })?;
    let known_hosts = match (&s.known_hosts, home()) {
        (Some(p), _) => p.clone(),
        (None, Some(h)) => h.join(".ssh").join("known_hosts"),
        (None, None) => return Err(CliError::Usage("set HOME or pass --known-hosts".into())),
    };
    Ok(SshOptions {
        known_hosts,
        policy,
        connect_timeout: Duration::from_secs(a.connect_timeout.max(1)),
        command_timeout: Duration::from_secs(600),
    })
}

/// `p` made absolute against the working directory (a relative
/// known_hosts path must mean the same file from another directory).
fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        return p.to_path_buf();
    }
    std::env::current_dir()
        .map(|d| d.join(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

/// sealos semantics: a key (given or default) authenticates when no
/// password is given; with -i and -p the key logs in and -p is for sudo.
pub fn auth(a: &SshArgs) -> Result<SshAuth, CliError> {
    let passphrase = a.pk_passwd.clone().map(Secret::new);
    if let Some(pk) = &a.pk {
        return Ok(SshAuth::Key {
            path: pk.clone(),
            passphrase,
        });
    }
    if let Some(pw) = &a.passwd {
        return Ok(SshAuth::Password(Secret::new(pw.clone())));
    }
    let default = home().and_then(|h| {
        ["id_rsa", "id_ed25519", "id_ecdsa"]
            .into_iter()
            .map(|k| h.join(".ssh").join(k))
            .find(|p| p.is_file())
    });
    match default {
        Some(path) => Ok(SshAuth::Key { path, passphrase }),
        None => Err(CliError::Usage(
            "no SSH credentials: pass -p/--passwd or -i/--pk (no ~/.ssh/id_rsa or id_ed25519 found)".into(),
        )),
    }
}

pub fn targets(a: &SshArgs, addrs: &[HostAddr]) -> Result<Vec<SshTarget>, CliError> {
    let auth = auth(a)?;
    Ok(addrs
        .iter()
        .map(|addr| SshTarget {
            addr: *addr,
            user: a.user.clone(),
            auth: auth.clone(),
            sudo_password: a.passwd.clone().map(Secret::new),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_flag_applies_only_without_explicit_port() {
        let h = hosts("10.0.0.2,10.0.0.3:2200,10.0.0.4-10.0.0.5", 2222).unwrap();
        let ports: Vec<u16> = h.iter().map(|h| h.port).collect();
        assert_eq!(ports, [2222, 2200, 2222, 2222]);
        let h = hosts("10.0.0.4:23-10.0.0.5:23", 2222).unwrap();
        assert!(h.iter().all(|h| h.port == 23));
        assert_eq!(hosts("10.0.0.2", 22).unwrap()[0].port, 22);
    }
}

//! `ssh.json`: how the cluster's hosts were reached over SSH (known_hosts
//! file and host-key policy), so later commands from the same bastion use
//! them without the flags being repeated. User, port and key path live in
//! the Clusterfile's `ssh:` blocks, as in sealos. Holds no secrets.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files::{StateError, read_to_string, write_atomic};

pub const SSH_SETTINGS_FILE: &str = "ssh.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshSettings {
    /// The known_hosts file host keys are checked against (absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<PathBuf>,
    /// `strict`, `accept-new` or `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key_policy: Option<String>,
}

impl SshSettings {
    pub fn load(dir: &Path) -> Result<Self, StateError> {
        let path = dir.join(SSH_SETTINGS_FILE);
        if !path.exists() {
            return Ok(Self::default());
        }
        let text = read_to_string(&path)?;
        serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
            path,
            reason: e.to_string(),
        })
    }

    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        let text = serde_json::to_vec_pretty(self).map_err(|e| StateError::Corrupt {
            path: dir.join(SSH_SETTINGS_FILE),
            reason: e.to_string(),
        })?;
        write_atomic(&dir.join(SSH_SETTINGS_FILE), &text, 0o600)
    }

    /// These settings with `given` (the command's explicit flags) on top.
    pub fn overlay(&self, given: &SshSettings) -> SshSettings {
        SshSettings {
            known_hosts: given
                .known_hosts
                .clone()
                .or_else(|| self.known_hosts.clone()),
            host_key_policy: given
                .host_key_policy
                .clone()
                .or_else(|| self.host_key_policy.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn given_flags_win_and_missing_ones_come_from_the_record() {
        let stored = SshSettings {
            known_hosts: Some("/k/a".into()),
            host_key_policy: Some("strict".into()),
        };
        let given = SshSettings {
            known_hosts: None,
            host_key_policy: Some("off".into()),
        };
        let got = stored.overlay(&given);
        assert_eq!(got.known_hosts.as_deref(), Some(Path::new("/k/a")));
        assert_eq!(got.host_key_policy.as_deref(), Some("off"));
    }

    #[test]
    fn round_trips_and_absent_file_is_empty() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(SshSettings::load(d.path()).unwrap(), SshSettings::default());
        let s = SshSettings {
            known_hosts: Some("/x/known_hosts".into()),
            host_key_policy: Some("accept-new".into()),
        };
        s.save(d.path()).unwrap();
        assert_eq!(SshSettings::load(d.path()).unwrap(), s);
        std::fs::write(d.path().join(SSH_SETTINGS_FILE), "{").unwrap();
        assert!(SshSettings::load(d.path()).is_err());
    }
}

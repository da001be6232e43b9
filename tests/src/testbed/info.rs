//! The testbed description written by `testbed.sh` (`testbed.json`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::TestbedError;

/// One node of a testbed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Node {
    /// `node1`, `node2`, ...
    pub name: String,
    /// The node's hostname (same as `name`).
    pub hostname: String,
    /// The node's address on the testbed bridge (sshd on port 22).
    pub ip: IpAddr,
    /// Its network namespace (`ip netns exec <netns> ...`).
    pub netns: String,
    /// Host pid of the node's PID 1; `None` while the node is killed.
    pub pid: Option<u32>,
    /// The node's root directory seen from the host (`/proc/<pid>/root`).
    pub root: Option<PathBuf>,
    /// The overlay upper directory (the node's writes), on the host.
    pub upper: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Bastion {
    pub netns: String,
    pub ip: IpAddr,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Info {
    pub name: String,
    pub state_dir: PathBuf,
    pub subnet: String,
    pub gateway: IpAddr,
    pub hub_netns: String,
    pub bastion: Bastion,
    pub ssh_port: u16,
    pub key_path: PathBuf,
    pub encrypted_key_path: PathBuf,
    pub key_passphrase: String,
    pub passwords: BTreeMap<String, String>,
    pub nodes: Vec<Node>,
}

impl Info {
    pub(crate) fn load(path: &Path) -> Result<Self, TestbedError> {
        let text = std::fs::read_to_string(path).map_err(|source| TestbedError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Self, TestbedError> {
        serde_json::from_str(text).map_err(|source| TestbedError::Parse {
            path: path.to_owned(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
  "name": "ftb", "state_dir": "/run/ferry-testbed/ftb", "owner": "manual",
  "subnet": "10.77.0.0/24", "gateway": "10.77.0.1", "hub_netns": "ftb-hub",
  "bastion": { "netns": "ftb-bastion", "ip": "10.77.0.2" },
  "ssh_port": 22, "key_path": "/k", "encrypted_key_path": "/k2", "key_passphrase": "pp",
  "passwords": { "root": "r", "alice": "a", "bob": "b", "carol": "c" },
  "nodes": [
    { "name": "node1", "hostname": "node1", "ip": "10.77.0.11", "netns": "ftb-n1", "pid": 42,
      "root": "/proc/42/root", "upper": "/u1" },
    { "name": "node2", "hostname": "node2", "ip": "10.77.0.12", "netns": "ftb-n2", "pid": null,
      "root": null, "upper": "/u2" }
  ]
}"#;

    #[test]
    fn parses_script_output() {
        let info = Info::parse(SAMPLE, Path::new("t.json")).unwrap();
        assert_eq!(info.nodes.len(), 2);
        assert_eq!(info.nodes[0].ip, "10.77.0.11".parse::<IpAddr>().unwrap());
        assert_eq!(info.nodes[0].pid, Some(42));
        assert_eq!(info.nodes[1].pid, None);
        assert_eq!(info.nodes[1].root, None);
        assert_eq!(info.passwords["bob"], "b");
        assert_eq!(info.bastion.netns, "ftb-bastion");
    }

    #[test]
    fn parse_error_names_file() {
        let err = Info::parse("{", Path::new("/x/testbed.json")).unwrap_err();
        assert!(err.to_string().contains("/x/testbed.json"), "{err}");
    }
}

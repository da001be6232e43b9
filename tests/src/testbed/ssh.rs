//! System `ssh` from the bastion to nodes (for tests of the testbed and as a
//! reference client next to ferry's own SSH layer).

use std::path::Path;
use std::process::{Command, Output};

use super::script::{output, run_ok};
use super::{Testbed, TestbedError};

const SSH_OPTS: [&str; 10] = [
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "ConnectTimeout=5",
    "-o",
    "IdentitiesOnly=yes",
];

impl Testbed {
    /// `ssh` from the bastion to node `index` as `user` with the plain key,
    /// no host key checking, batch mode. Append the remote command.
    pub fn ssh_command(&self, index: usize, user: &str) -> Result<Command, TestbedError> {
        let node = self.node(index)?;
        let mut cmd = self.bastion_command("ssh");
        cmd.args(SSH_OPTS)
            .args(["-o", "BatchMode=yes", "-i"])
            .arg(self.key_path())
            .arg(format!("{user}@{}", node.ip));
        Ok(cmd)
    }

    /// `ssh` from the bastion that answers its one prompt with `secret` (via
    /// `SSH_ASKPASS`): a password, or with `key` the key's passphrase. No
    /// key is offered unless `key` is given. Append the remote command.
    pub fn ssh_secret_command(
        &self,
        index: usize,
        user: &str,
        secret: &str,
        key: Option<&Path>,
    ) -> Result<Command, TestbedError> {
        let node = self.node(index)?;
        let askpass = self.state_dir().join("askpass"); // prints $FERRY_ASKPASS
        let mut cmd = self.bastion_command("ssh");
        cmd.env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("FERRY_ASKPASS", secret)
            .args(SSH_OPTS)
            .args(["-o", "NumberOfPasswordPrompts=1"]);
        match key {
            Some(key) => cmd.args(["-o", "PasswordAuthentication=no", "-i"]).arg(key),
            None => cmd.args(["-o", "PubkeyAuthentication=no"]),
        };
        cmd.arg(format!("{user}@{}", node.ip));
        Ok(cmd)
    }

    /// Runs `remote` (a shell command line) as `user` on node `index` over
    /// ssh with the plain key; a non-zero exit is not an error.
    pub fn ssh(&self, index: usize, user: &str, remote: &str) -> Result<Output, TestbedError> {
        output(self.ssh_command(index, user)?.arg(remote))
    }

    /// The node's ed25519 host key (`ssh-ed25519 AAAA...`), scanned from
    /// the bastion.
    pub fn host_key(&self, index: usize) -> Result<String, TestbedError> {
        let ip = self.node(index)?.ip.to_string();
        let out = run_ok(
            self.bastion_command("ssh-keyscan")
                .args(["-T", "5", "-t", "ed25519", &ip]),
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.split_once(' ').map(|(_, key)| key.trim().to_owned()))
            .ok_or_else(|| TestbedError::Invalid(format!("no ed25519 host key from {ip}")))
    }
}

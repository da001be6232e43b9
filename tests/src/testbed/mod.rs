//! [`Testbed`]: namespaced nodes with real sshd, driven by `testbed.sh`.

mod error;
mod info;
mod script;
mod ssh;

use std::ffi::OsStr;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use error::TestbedError;
pub use info::Node;
pub use script::require_root;

use info::Info;
use script::{NODE_PATH, output, script, unique_name};

/// Password of `root` in every node.
pub const ROOT_PASSWORD: &str = "ferry-root-pw";
/// Password of `alice` (sudo without password).
pub const ALICE_PASSWORD: &str = "ferry-alice-pw";
/// Password of `bob` (sudo asks for it).
pub const BOB_PASSWORD: &str = "ferry-bob-pw";
/// Password of `carol` (no sudo rights).
pub const CAROL_PASSWORD: &str = "ferry-carol-pw";
/// Passphrase of [`Testbed::encrypted_key_path`].
pub const KEY_PASSPHRASE: &str = "ferry-key-pw";

/// What to build.
#[derive(Debug, Clone)]
pub struct TestbedConfig {
    /// Number of nodes (1..=200).
    pub nodes: usize,
    /// Start of the generated testbed name (at most 4 alphanumerics are used).
    pub name_prefix: String,
    /// Nodes that can host a kubelet and containerd (`testbed.sh up --kube`):
    /// own cgroup subtree and cgroup namespace, tmpfs `/var/lib/containerd`,
    /// shared root mount propagation.
    pub kube: bool,
}

impl TestbedConfig {
    /// `n` nodes, default name prefix.
    pub fn nodes(n: usize) -> Self {
        Self {
            nodes: n,
            ..Self::default()
        }
    }
}

impl Default for TestbedConfig {
    fn default() -> Self {
        Self {
            nodes: 3,
            name_prefix: "ft".to_owned(),
            kube: false,
        }
    }
}

/// Runs `testbed.sh down` when dropped (also on panic and when `up` fails).
#[derive(Debug)]
struct Teardown {
    name: String,
    armed: bool,
}

impl Teardown {
    fn run(&mut self) -> Result<(), TestbedError> {
        self.armed = false;
        script(["down", "--name", &self.name]).map(drop)
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = self.run()
        {
            eprintln!("testbed {}: teardown failed: {e}", self.name);
        }
    }
}

/// A running testbed: N nodes (`node1`.. at 10.77.0.11..), a bastion netns,
/// keys and users. Torn down on drop. Node indexes are 0-based.
#[derive(Debug)]
pub struct Testbed {
    info: Info,
    teardown: Teardown,
}

impl Testbed {
    /// Builds a testbed with a unique name. First removes testbeds left by
    /// test processes that died without tearing down.
    pub fn up(config: TestbedConfig) -> Result<Self, TestbedError> {
        require_root()?;
        if let Err(e) = script(["gc"]) {
            eprintln!("testbed: gc of stale testbeds failed: {e}");
        }
        let name = unique_name(&config.name_prefix);
        let teardown = Teardown {
            name: name.clone(),
            armed: true,
        };
        let pid = std::process::id().to_string();
        let nodes = config.nodes.to_string();
        let mut args = vec!["up", &nodes, "--name", &name, "--owner", &pid];
        if config.kube {
            args.push("--kube");
        }
        script(args)?;
        let info = Info::load(&state_dir(&name).join("testbed.json"))?;
        Ok(Self { info, teardown })
    }

    /// Tears down now, reporting errors (dropping does the same silently).
    pub fn down(mut self) -> Result<(), TestbedError> {
        self.teardown.run()
    }

    /// The testbed's name (prefix of its netns names, state dir name).
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// `/run/ferry-testbed/<name>`: keys, `testbed.json`, node uppers.
    pub fn state_dir(&self) -> &Path {
        &self.info.state_dir
    }

    /// The testbed's subnet (`10.77.0.0/24`).
    pub fn subnet(&self) -> &str {
        &self.info.subnet
    }

    /// The nodes' default gateway (the hub bridge; routes nowhere).
    pub fn gateway(&self) -> IpAddr {
        self.info.gateway
    }

    pub fn nodes(&self) -> &[Node] {
        &self.info.nodes
    }

    pub fn node(&self, index: usize) -> Result<&Node, TestbedError> {
        self.info
            .nodes
            .get(index)
            .ok_or_else(|| TestbedError::NoSuchNode {
                testbed: self.info.name.clone(),
                index,
                count: self.info.nodes.len(),
            })
    }

    pub fn bastion_ip(&self) -> IpAddr {
        self.info.bastion.ip
    }

    pub fn bastion_netns(&self) -> &str {
        &self.info.bastion.netns
    }

    /// The hub netns: bridge `br0`, ports `b0` (bastion) and `n1`.. (nodes).
    pub fn hub_netns(&self) -> &str {
        &self.info.hub_netns
    }

    pub fn ssh_port(&self) -> u16 {
        self.info.ssh_port
    }

    /// Unencrypted ed25519 client key, authorized for root, alice, bob, carol.
    pub fn key_path(&self) -> &Path {
        &self.info.key_path
    }

    /// Same, encrypted with [`Testbed::key_passphrase`].
    pub fn encrypted_key_path(&self) -> &Path {
        &self.info.encrypted_key_path
    }

    pub fn key_passphrase(&self) -> &str {
        &self.info.key_passphrase
    }

    /// Password of `user` (root, alice, bob, carol) in every node.
    pub fn password(&self, user: &str) -> Option<&str> {
        self.info.passwords.get(user).map(String::as_str)
    }

    /// A command that runs `program` inside node `index` (all its namespaces
    /// and root; clean environment with PATH and HOME=/root, as root).
    pub fn node_command(
        &self,
        index: usize,
        program: impl AsRef<OsStr>,
    ) -> Result<Command, TestbedError> {
        let node = self.node(index)?;
        let pid = node.pid.ok_or_else(|| TestbedError::NodeDown {
            testbed: self.info.name.clone(),
            node: node.name.clone(),
        })?;
        let mut cmd = Command::new("nsenter");
        cmd.env_clear()
            .env("PATH", NODE_PATH)
            .env("HOME", "/root")
            .env("USER", "root")
            .env("LOGNAME", "root")
            .env("LANG", "C.UTF-8")
            .args([
                "-t",
                &pid.to_string(),
                "-m",
                "-u",
                "-i",
                "-n",
                "-p",
                "-r",
                "-w",
            ])
            .arg("--")
            .arg(program);
        Ok(cmd)
    }

    /// Runs `argv` inside node `index`; a non-zero exit is not an error
    /// (check `status`).
    pub fn exec(&self, index: usize, argv: &[&str]) -> Result<Output, TestbedError> {
        let mut cmd = self.node_argv(index, argv)?;
        output(&mut cmd)
    }

    /// Like [`Testbed::exec`] but requires success; returns stdout.
    pub fn exec_ok(&self, index: usize, argv: &[&str]) -> Result<String, TestbedError> {
        let mut cmd = self.node_argv(index, argv)?;
        let out = script::run_ok(&mut cmd)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn node_argv(&self, index: usize, argv: &[&str]) -> Result<Command, TestbedError> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| TestbedError::Invalid("empty argv for exec".to_owned()))?;
        let mut cmd = self.node_command(index, program)?;
        cmd.args(args);
        Ok(cmd)
    }

    /// A command that runs `program` in the bastion netns (host files and
    /// binaries, testbed network): `ip netns exec <bastion> program`.
    pub fn bastion_command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.info.bastion.netns])
            .arg(program);
        cmd
    }

    /// Kills every process of node `index` (node loss). Files survive.
    pub fn kill_node(&mut self, index: usize) -> Result<(), TestbedError> {
        self.node_op("kill", index)
    }

    /// Boots a killed node again with its files; returns once sshd listens.
    pub fn start_node(&mut self, index: usize) -> Result<(), TestbedError> {
        self.node_op("start", index)
    }

    /// New sshd host keys for node `index`; returns once the new sshd listens.
    pub fn rekey_node(&self, index: usize) -> Result<(), TestbedError> {
        let node = self.node(index)?;
        script(["rekey", self.name(), &node.name]).map(drop)
    }

    /// Rate-limits node `index`'s link to `mbit` Mbit/s in both directions;
    /// 0 removes the limit.
    pub fn shape(&self, index: usize, mbit: u32) -> Result<(), TestbedError> {
        let node = self.node(index)?;
        script(["shape", self.name(), &node.name, &mbit.to_string()]).map(drop)
    }

    /// Rate-limits the bastion's link (0 removes the limit).
    pub fn shape_bastion(&self, mbit: u32) -> Result<(), TestbedError> {
        script(["shape", self.name(), "bastion", &mbit.to_string()]).map(drop)
    }

    /// Plugs (`true`) or unplugs (`false`) node `index`'s cable: a network
    /// partition while its processes keep running.
    pub fn set_link(&self, index: usize, up: bool) -> Result<(), TestbedError> {
        let node = self.node(index)?;
        let state = if up { "up" } else { "down" };
        script(["link", self.name(), &node.name, state]).map(drop)
    }

    /// Re-reads `testbed.json` (node pids change on kill/start).
    pub fn reload(&mut self) -> Result<(), TestbedError> {
        self.info = Info::load(&self.info.state_dir.join("testbed.json"))?;
        Ok(())
    }

    fn node_op(&mut self, op: &str, index: usize) -> Result<(), TestbedError> {
        let node = self.node(index)?.name.clone();
        let result = script([op, self.name(), &node]).map(drop);
        self.reload()?;
        result
    }
}

/// The state directory of testbed `name` (`$FERRY_TESTBED_ROOT`, default
/// `/run/ferry-testbed`, as in the script).
pub(crate) fn state_dir(name: &str) -> PathBuf {
    std::env::var_os("FERRY_TESTBED_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/ferry-testbed"))
        .join(name)
}

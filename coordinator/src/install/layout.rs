//! Where the agent lives on a node and the exact commands that start and
//! stop it. One agent per node; everything under [`AGENT_DIR`].

use std::net::IpAddr;

pub const AGENT_DIR: &str = "/var/lib/ferry/agent";
pub const AGENT_BIN: &str = "/var/lib/ferry/agent/ferry-agent";
pub const TLS_DIR: &str = "/var/lib/ferry/agent/tls";
pub const PIDFILE: &str = "/var/lib/ferry/agent/agent.pid";
pub const LOGFILE: &str = "/var/lib/ferry/agent/agent.log";
/// The load balancer's persisted state (the agent's default `--lb-dir`).
pub const LB_DIR: &str = "/var/lib/ferry/agent/lb";
/// The agent's chunk cache (its `DEFAULT_CACHE_DIR`; made at start).
pub const CACHE_DIR: &str = "/var/lib/ferry/cache";
pub const UNIT_PATH: &str = "/etc/systemd/system/ferry-agent.service";
pub const UNIT_NAME: &str = "ferry-agent.service";
pub const DEFAULT_AGENT_PORT: u16 = 7443;

const UNIT_TEMPLATE: &str = include_str!("../../../packaging/systemd/ferry-agent.service");

/// How the agent is kept running on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supervisor {
    /// systemd is PID 1: a unit with Restart=on-failure.
    Systemd,
    /// No systemd: `ferry-agent daemon` (a supervisor process + pidfile).
    Daemon,
}

impl Supervisor {
    pub fn as_str(self) -> &'static str {
        match self {
            Supervisor::Systemd => "systemd",
            Supervisor::Daemon => "daemon",
        }
    }
}

/// `rm -f` of what an interrupted `Trust.InstallTls` may have left staged
/// in [`TLS_DIR`] (the agent's `trust/store.rs`): the agent would otherwise
/// roll it forward over the files an SSH install just uploaded.
pub fn discard_staged_tls() -> Vec<String> {
    let mut argv = vec!["rm".to_string(), "-f".to_string()];
    for f in [
        "ca.crt.new",
        "agent.crt.new",
        "agent.key.new",
        "install.commit",
    ] {
        argv.push(format!("{TLS_DIR}/{f}"));
    }
    argv
}

pub fn listen_addr(port: u16) -> String {
    format!("0.0.0.0:{port}")
}

/// `ferry-agent serve` arguments (after the program name).
pub fn serve_args(port: u16, node_name: &str, sup: Supervisor) -> Vec<String> {
    vec![
        "serve".into(),
        "--listen".into(),
        listen_addr(port),
        "--tls-dir".into(),
        TLS_DIR.into(),
        "--node-name".into(),
        node_name.into(),
        "--supervisor".into(),
        sup.as_str().into(),
    ]
}

pub fn render_unit(port: u16, node_name: &str) -> String {
    UNIT_TEMPLATE
        .replace("@AGENT_BIN@", AGENT_BIN)
        .replace("@LISTEN@", &listen_addr(port))
        .replace("@TLS_DIR@", TLS_DIR)
        .replace("@NODE_NAME@", node_name)
}

/// argv sequences that (re)start the agent.
pub fn start_commands(sup: Supervisor, port: u16, node_name: &str) -> Vec<Vec<String>> {
    match sup {
        Supervisor::Systemd => vec![
            argv(&["systemctl", "daemon-reload"]),
            argv(&["systemctl", "enable", UNIT_NAME]),
            argv(&["systemctl", "restart", UNIT_NAME]),
        ],
        Supervisor::Daemon => {
            let mut daemon = argv(&[
                AGENT_BIN,
                "daemon",
                "--pidfile",
                PIDFILE,
                "--log-file",
                LOGFILE,
                "--",
            ]);
            daemon.extend(serve_args(port, node_name, sup));
            vec![stop_daemon_command(), daemon]
        }
    }
}

/// Removes the load balancer's kernel rules, VIP route/link and state
/// (run with the agent stopped, before its files go).
pub fn lb_reset_command() -> Vec<String> {
    argv(&[AGENT_BIN, "lb-reset", "--lb-dir", LB_DIR])
}

pub fn stop_daemon_command() -> Vec<String> {
    argv(&[AGENT_BIN, "stop", "--pidfile", PIDFILE])
}

fn argv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// The name an agent is known by: its address as the inventory spells it.
pub fn node_name(ip: IpAddr) -> String {
    ip.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_has_no_placeholders_left() {
        let u = render_unit(7443, "10.0.0.2");
        assert!(!u.contains('@'), "{u}");
        assert!(u.contains(AGENT_BIN));
        assert!(u.contains("0.0.0.0:7443"));
        // kubectl/helm in guest commands need root's ~/.kube/config.
        assert!(u.lines().any(|l| l == "Environment=HOME=/root"), "{u}");
    }

    #[test]
    fn daemon_start_stops_first() {
        let cmds = start_commands(Supervisor::Daemon, 7443, "n");
        assert_eq!(cmds[0][1], "stop");
        assert_eq!(cmds[1][1], "daemon");
        assert!(cmds[1].contains(&"serve".to_string()));
    }
}

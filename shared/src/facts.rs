//! Host facts an agent reports.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    pub node_name: String,
    pub hostname: String,
    pub os_id: String,
    pub os_version: String,
    pub os_pretty_name: String,
    pub kernel: String,
    /// Kubernetes-style arch name: amd64, arm64, ...
    pub arch: String,
    pub cpus: u32,
    pub memory_bytes: u64,
    pub unix_time_ms: i64,
    pub agent_version: String,
    pub agent_sha256: String,
    pub ip_addresses: Vec<String>,
    pub agent_uptime_ms: u64,
    pub agent_pid: u32,
    pub supervisor: String,
}

/// Maps Rust/uname machine names to the names Kubernetes and sealos use.
pub fn kube_arch(machine: &str) -> &str {
    match machine {
        "x86_64" | "amd64" => "amd64",
        "aarch64" | "arm64" => "arm64",
        "armv7l" | "arm" => "arm",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "ppc64le" | "powerpc64le" => "ppc64le",
        other => other,
    }
}

/// Parses `/etc/os-release` content into (ID, VERSION_ID, PRETTY_NAME).
pub fn parse_os_release(content: &str) -> (String, String, String) {
    let mut id = String::new();
    let mut ver = String::new();
    let mut pretty = String::new();
    for line in content.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
        match k.trim() {
            "ID" => id = v,
            "VERSION_ID" => ver = v,
            "PRETTY_NAME" => pretty = v,
            _ => {}
        }
    }
    (id, ver, pretty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release() {
        let (id, v, p) = parse_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n# x\n",
        );
        assert_eq!(
            (id.as_str(), v.as_str(), p.as_str()),
            ("debian", "12", "Debian GNU/Linux 12 (bookworm)")
        );
    }

    #[test]
    fn arch_names() {
        assert_eq!(kube_arch("x86_64"), "amd64");
        assert_eq!(kube_arch("aarch64"), "arm64");
    }
}

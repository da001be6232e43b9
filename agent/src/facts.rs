//! Host facts: read from `/proc`, `/etc/os-release` and `uname`. No
//! external commands.

use std::collections::BTreeSet;
use std::io::Read;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Instant;

use ferry_shared::Facts;
use ferry_shared::facts::{kube_arch, parse_os_release};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use sha2::{Digest, Sha256};

use crate::VERSION;
use crate::events::unix_ms;

pub const SELF_EXE: &str = "/proc/self/exe";

#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    #[error("cannot hash the agent executable {path}: {source}")]
    HashExe {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// sha256 (hex) of the file at `path`.
pub fn sha256_file(path: &Path) -> Result<String, FactsError> {
    let err = |source| FactsError::HashExe {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(err)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// sha256 of the running executable (`/proc/self/exe`, so it is right even
/// after the file on disk was replaced).
pub fn self_sha256() -> Result<String, FactsError> {
    sha256_file(Path::new(SELF_EXE))
}

/// The agent's sha256, hashed once in the background at startup (a large
/// debug binary takes a while) and awaited by whoever needs it.
pub type SelfSha = Shared<BoxFuture<'static, Result<String, String>>>;

/// Starts hashing `/proc/self/exe` on a detached thread (not the blocking
/// pool, so shutting the runtime down never waits for it).
pub fn hash_self_in_background() -> SelfSha {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("ferry-sha256".to_string())
        .spawn(move || {
            let _ = tx.send(self_sha256());
        });
    async move {
        if let Err(e) = spawned {
            return Err(format!("cannot start the hashing thread: {e}"));
        }
        match rx.await {
            Ok(Ok(sha)) => Ok(sha),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("hashing the agent executable failed".to_string()),
        }
    }
    .boxed()
    .shared()
}

/// What does not change while the agent runs.
#[derive(Debug, Clone)]
pub struct FactsSource {
    pub node_name: String,
    pub supervisor: String,
    pub started: Instant,
}

impl FactsSource {
    /// Reads the host's current facts. Missing files give empty values
    /// rather than an error: facts are informational.
    pub fn collect(&self, agent_sha256: String) -> Facts {
        let uts = rustix::system::uname();
        let (os_id, os_version, os_pretty_name) = ["/etc/os-release", "/usr/lib/os-release"]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .map(|c| parse_os_release(&c))
            .unwrap_or_default();
        let machine = uts.machine().to_string_lossy();
        Facts {
            node_name: self.node_name.clone(),
            hostname: uts.nodename().to_string_lossy().into_owned(),
            os_id,
            os_version,
            os_pretty_name,
            kernel: uts.release().to_string_lossy().into_owned(),
            arch: kube_arch(&machine).to_string(),
            cpus: std::thread::available_parallelism()
                .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
                .unwrap_or(1),
            memory_bytes: std::fs::read_to_string("/proc/meminfo")
                .ok()
                .and_then(|m| mem_total_bytes(&m))
                .unwrap_or(0),
            unix_time_ms: unix_ms(),
            agent_version: VERSION.to_string(),
            agent_sha256,
            ip_addresses: ip_addresses(),
            agent_uptime_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            agent_pid: std::process::id(),
            supervisor: self.supervisor.clone(),
        }
    }
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
pub fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut parts = line.split_whitespace().skip(1);
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => n.checked_mul(1024),
        Some(_) => None,
    }
}

/// The host's local IPv4 addresses from `/proc/net/fib_trie` (`/32 host
/// LOCAL` entries), without loopback.
pub fn ipv4_from_fib_trie(trie: &str) -> BTreeSet<IpAddr> {
    let mut out = BTreeSet::new();
    let mut last: Option<IpAddr> = None;
    for line in trie.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("|-- ") {
            last = rest.trim().parse().ok();
        } else if t.starts_with("/32 host LOCAL")
            && let Some(ip) = last
            && !ip.is_loopback()
        {
            out.insert(ip);
        }
    }
    out
}

/// Global-scope IPv6 addresses from `/proc/net/if_inet6`.
pub fn ipv6_from_if_inet6(content: &str) -> BTreeSet<IpAddr> {
    let mut out = BTreeSet::new();
    for line in content.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // address ifindex prefixlen scope flags name
        let (Some(hex), Some(scope)) = (f.first(), f.get(3)) else {
            continue;
        };
        if *scope != "00" || hex.len() != 32 {
            continue;
        }
        if let Ok(v) = u128::from_str_radix(hex, 16) {
            let ip = Ipv6Addr::from(v);
            if !ip.is_loopback() {
                out.insert(IpAddr::V6(ip));
            }
        }
    }
    out
}

fn ip_addresses() -> Vec<String> {
    let mut ips = std::fs::read_to_string("/proc/net/fib_trie")
        .map(|t| ipv4_from_fib_trie(&t))
        .unwrap_or_default();
    ips.extend(
        std::fs::read_to_string("/proc/net/if_inet6")
            .map(|c| ipv6_from_if_inet6(&c))
            .unwrap_or_default(),
    );
    ips.into_iter().map(|ip| ip.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRIE: &str = "Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 10.0.0.0/24 2 0 2
        |-- 10.0.0.0
           /24 link UNICAST
        |-- 10.0.0.7
           /32 host LOCAL
     +-- 127.0.0.0/8 2 0 2
        |-- 127.0.0.1
           /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
        |-- 10.0.0.7
           /32 host LOCAL
        |-- 192.168.1.5
           /32 host LOCAL
";

    #[test]
    fn fib_trie_local_addresses() {
        let ips: Vec<String> = ipv4_from_fib_trie(TRIE)
            .into_iter()
            .map(|i| i.to_string())
            .collect();
        assert_eq!(ips, vec!["10.0.0.7", "192.168.1.5"]);
    }

    #[test]
    fn if_inet6_global_only() {
        let c = "00000000000000000000000000000001 01 80 10 80       lo
fe800000000000000000000000000001 02 40 20 80     eth0
20010db8000000000000000000000002 02 40 00 00     eth0
";
        let ips: Vec<String> = ipv6_from_if_inet6(c)
            .into_iter()
            .map(|i| i.to_string())
            .collect();
        assert_eq!(ips, vec!["2001:db8::2"]);
    }

    #[test]
    fn meminfo_total() {
        assert_eq!(
            mem_total_bytes("MemTotal:       16318412 kB\nMemFree: 1 kB\n"),
            Some(16318412 * 1024)
        );
        assert_eq!(mem_total_bytes("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn collects_this_host() {
        let src = FactsSource {
            node_name: "n1".into(),
            supervisor: "foreground".into(),
            started: Instant::now(),
        };
        let f = src.collect("ab".repeat(32));
        assert_eq!(f.node_name, "n1");
        assert!(!f.hostname.is_empty() && !f.kernel.is_empty());
        assert!(f.cpus >= 1 && f.memory_bytes > 0);
        assert_eq!(f.agent_sha256.len(), 64);
        assert_eq!(f.agent_pid, std::process::id());
    }

    #[test]
    fn hashes_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let e = sha256_file(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}

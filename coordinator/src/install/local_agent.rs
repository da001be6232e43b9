//! The agent binary on the bastion that gets pushed to nodes.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum LocalAgentError {
    #[error(
        "no ferry-agent binary found (looked in: {looked}); build it with `bash packaging/build-agent.sh` and pass --agent-bin or set FERRY_AGENT_BIN"
    )]
    NotFound { looked: String },
    #[error("cannot read the agent binary {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a Linux ELF executable")]
    NotElf { path: PathBuf },
}

/// A verified local agent binary.
#[derive(Debug, Clone)]
pub struct LocalAgent {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    /// Kubernetes arch name of the binary (from its ELF header).
    pub arch: &'static str,
}

impl LocalAgent {
    /// `explicit` (flag or env), else `ferry-agent` beside the running `ferry`.
    pub fn locate(explicit: Option<PathBuf>) -> Result<Self, LocalAgentError> {
        let mut candidates = Vec::new();
        if let Some(p) = explicit {
            candidates.push(p);
        } else if let Ok(exe) = std::env::current_exe()
            && let Some(dir) = exe.parent()
        {
            candidates.push(dir.join("ferry-agent"));
        }
        match candidates.iter().find(|p| p.is_file()) {
            Some(p) => Self::load(p),
            None => Err(LocalAgentError::NotFound {
                looked: candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    pub fn load(path: &Path) -> Result<Self, LocalAgentError> {
        let read_err = |source| LocalAgentError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut f = std::fs::File::open(path).map_err(read_err)?;
        let mut hasher = Sha256::new();
        let mut head = Vec::with_capacity(20);
        let mut buf = vec![0u8; 1 << 16];
        let mut size = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(read_err)?;
            if n == 0 {
                break;
            }
            if head.len() < 20 {
                let take = (20 - head.len()).min(n);
                head.extend_from_slice(&buf[..take]);
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        let arch = elf_arch(&head).ok_or_else(|| LocalAgentError::NotElf {
            path: path.to_path_buf(),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            sha256: hex::encode(hasher.finalize()),
            size,
            arch,
        })
    }
}

/// Reads `e_machine` from a little-endian ELF header.
fn elf_arch(head: &[u8]) -> Option<&'static str> {
    if head.len() < 20 || &head[..4] != b"\x7fELF" || head[5] != 1 {
        return None;
    }
    Some(match u16::from_le_bytes([head[18], head[19]]) {
        62 => "amd64",
        183 => "arm64",
        40 => "arm",
        243 => "riscv64",
        _ => "unknown",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_test_binary() {
        let exe = std::env::current_exe().unwrap();
        let a = LocalAgent::load(&exe).unwrap();
        assert_eq!(a.sha256.len(), 64);
        assert_eq!(
            a.arch,
            ferry_shared::facts::kube_arch(std::env::consts::ARCH)
        );
        assert!(a.size > 0);
    }

    #[test]
    fn rejects_non_elf() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x");
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        assert!(matches!(
            LocalAgent::load(&p),
            Err(LocalAgentError::NotElf { .. })
        ));
        let e = LocalAgent::locate(Some(d.path().join("missing")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("build-agent.sh"), "{e}");
    }
}

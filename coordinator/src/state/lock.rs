//! The per-cluster lock: one lifecycle command (`run`, `apply`, `add`,
//! `delete`, `reset`, `agent rotate-certs`) at a time per cluster, so two of them never
//! interleave the journal or run kubeadm at once. An exclusive, non-blocking
//! `flock` on `<cluster dir>/lock`, held until the command's process exits
//! (the kernel drops it even on SIGKILL: a stale lock cannot outlive its
//! holder). The file names the holder (pid, command) for the error the
//! next one gets.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use super::{ClusterState, StateError, files::io_err};

pub const LOCK_FILE: &str = "lock";

/// Held while alive.
#[derive(Debug)]
pub struct ClusterLock {
    _file: File,
}

impl ClusterState {
    /// Takes the cluster's lock for `command` (e.g. `ferry apply`), or
    /// fails at once naming the process that holds it.
    pub fn lock(&self, command: &str) -> Result<ClusterLock, StateError> {
        let path = self.dir().join(LOCK_FILE);
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_err("open", &path))?;
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StateError::Locked {
                    cluster: self.name().to_string(),
                    holder: holder(&mut f),
                    path,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err("lock", &path)(e)),
        }
        let me = format!("pid {} (`{command}`)\n", std::process::id());
        f.set_len(0).map_err(io_err("write", &path))?;
        f.rewind().map_err(io_err("write", &path))?;
        f.write_all(me.as_bytes()).map_err(io_err("write", &path))?;
        Ok(ClusterLock { _file: f })
    }

    pub fn lock_path(&self) -> PathBuf {
        self.dir().join(LOCK_FILE)
    }
}

/// What the holder wrote (one line, printable), or a placeholder while it
/// has not written it yet.
fn holder(f: &mut File) -> String {
    let mut text = String::new();
    let _ = f.take(200).read_to_string(&mut text);
    let line: String = text
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if line.is_empty() {
        "another ferry process".to_string()
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::super::FerryHome;

    #[test]
    fn a_second_holder_is_refused_naming_the_first_and_the_lock_ends_with_it() {
        let d = tempfile::tempdir().unwrap();
        let home = FerryHome::resolve(Some(d.path().to_path_buf())).unwrap();
        let c = home.cluster("prod").unwrap();
        let held = c.lock("ferry apply").unwrap();
        // flock locks belong to the open file: a second open in this
        // process conflicts like another process would.
        let e = c.lock("ferry delete").unwrap_err().to_string();
        let pid = std::process::id().to_string();
        assert!(e.contains("cluster `prod`"), "{e}");
        assert!(e.contains(&format!("pid {pid} (`ferry apply`)")), "{e}");
        assert!(e.contains(&c.lock_path().display().to_string()), "{e}");
        drop(held);
        let again = c.lock("ferry delete").unwrap();
        drop(again);
    }
}

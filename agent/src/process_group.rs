//! Process groups of running execs. Every exec runs as the leader of its own
//! group; a [`GroupGuard`] SIGKILLs the whole group when the exec is
//! cancelled, times out, or the guard is dropped while still armed, and the
//! [`GroupRegistry`] lets shutdown kill whatever is still running.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use rustix::process::{Pid, Signal, kill_process_group};

#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("process id {0} is not a valid process group id")]
    BadPgid(u32),
}

/// Process groups of execs that are still running.
#[derive(Debug, Default)]
pub struct GroupRegistry {
    groups: Mutex<HashSet<i32>>,
}

impl GroupRegistry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<i32>> {
        // A set of integers cannot be left inconsistent by a panic.
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of registered groups.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// SIGKILLs every registered group; returns how many there were.
    pub fn kill_all(&self) -> usize {
        let groups: Vec<i32> = self.lock().iter().copied().collect();
        for g in &groups {
            kill_group(*g);
        }
        groups.len()
    }
}

fn kill_group(pgid: i32) {
    if let Some(pid) = Pid::from_raw(pgid) {
        // ESRCH (the group is gone already) is the expected race.
        if let Err(e) = kill_process_group(pid, Signal::KILL)
            && e != rustix::io::Errno::SRCH
        {
            tracing::warn!(pgid, error = %e, "cannot kill process group");
        }
    }
}

/// Owns a running exec's process group.
#[derive(Debug)]
pub struct GroupGuard {
    pgid: i32,
    armed: bool,
    registry: Arc<GroupRegistry>,
}

impl GroupGuard {
    /// Registers the group led by `pid` (spawned with `process_group(0)`).
    pub fn new(pid: u32, registry: Arc<GroupRegistry>) -> Result<Self, GroupError> {
        let pgid = i32::try_from(pid)
            .ok()
            .filter(|p| *p > 1)
            .ok_or(GroupError::BadPgid(pid))?;
        registry.lock().insert(pgid);
        Ok(Self {
            pgid,
            armed: true,
            registry,
        })
    }

    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// SIGKILLs every process in the group.
    pub fn kill(&self) {
        kill_group(self.pgid);
    }

    /// The leader exited on its own: leave any processes it left behind
    /// alone when the guard is dropped.
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            self.kill();
        }
        self.registry.lock().remove(&self.pgid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_an_armed_guard_kills_the_group() {
        use std::os::unix::process::{CommandExt, ExitStatusExt};
        let mut child = std::process::Command::new("sleep")
            .arg("300")
            .process_group(0)
            .spawn()
            .unwrap();
        let reg = GroupRegistry::new();
        let guard = GroupGuard::new(child.id(), reg.clone()).unwrap();
        assert_eq!(reg.len(), 1);
        drop(guard);
        assert!(reg.is_empty());
        assert_eq!(child.wait().unwrap().signal(), Some(9));
    }

    #[test]
    fn kill_all_kills_registered_groups() {
        use std::os::unix::process::{CommandExt, ExitStatusExt};
        let mut child = std::process::Command::new("sleep")
            .arg("300")
            .process_group(0)
            .spawn()
            .unwrap();
        let reg = GroupRegistry::new();
        let mut guard = GroupGuard::new(child.id(), reg.clone()).unwrap();
        assert_eq!(reg.kill_all(), 1);
        assert_eq!(child.wait().unwrap().signal(), Some(9));
        guard.disarm();
    }

    #[test]
    fn bad_pgids_are_refused() {
        let reg = GroupRegistry::new();
        assert!(GroupGuard::new(0, reg.clone()).is_err());
        assert!(GroupGuard::new(1, reg).is_err());
    }
}

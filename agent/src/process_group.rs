//! Process groups of running execs. Every exec runs as the leader of its own
//! group; a [`GroupGuard`] SIGKILLs the whole group when the exec is
//! cancelled, times out, or the guard is dropped while still armed, and the
//! [`GroupRegistry`] lets shutdown kill whatever is still running.
//!
//! With a records directory, each running group is also a file there
//! (`<pgid>` holding the boot id and the leader's start time), so a `serve`
//! started after its predecessor died (SIGKILL, OOM) kills the commands that
//! one left orphaned, before a coordinator re-runs them ([`GroupRegistry::
//! reap_leftovers`]); the boot id and start time make sure a reused pid is
//! never signalled.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
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
    records: Option<PathBuf>,
}

impl GroupRegistry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A registry that also records running groups as files under `dir`.
    pub fn with_records(dir: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            groups: Mutex::default(),
            records: Some(dir),
        })
    }

    /// SIGKILLs the groups a previous agent recorded and left running (same
    /// boot, leader alive with the recorded start time, still leading its
    /// group) and removes every record. Returns the groups killed.
    pub fn reap_leftovers(&self) -> Vec<i32> {
        let Some(dir) = &self.records else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let boot = boot_id();
        let mut killed = Vec::new();
        for e in entries.flatten() {
            let path = e.path();
            let pgid = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok());
            let record = std::fs::read_to_string(&path).unwrap_or_default();
            if let Some(pgid) = pgid.filter(|p| *p > 1)
                && !self.lock().contains(&pgid)
                && record_is_live(&record, pgid, boot.as_deref())
            {
                kill_group(pgid);
                killed.push(pgid);
            }
            if let Err(err) = std::fs::remove_file(&path)
                && err.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %err, "cannot remove exec record");
            }
        }
        killed
    }

    fn record_path(&self, pgid: i32) -> Option<PathBuf> {
        self.records.as_ref().map(|d| d.join(pgid.to_string()))
    }

    /// Best effort: a group that cannot be recorded still runs (it just
    /// cannot be reaped after a crash).
    fn write_record(&self, pgid: i32) {
        let (Some(path), Some(boot), Some(start)) =
            (self.record_path(pgid), boot_id(), start_time(pgid))
        else {
            return;
        };
        let res = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, format!("{boot} {start}\n")));
        if let Err(e) = res {
            tracing::warn!(path = %path.display(), error = %e, "cannot record exec group");
        }
    }

    fn remove_record(&self, pgid: i32) {
        if let Some(path) = self.record_path(pgid) {
            let _ = std::fs::remove_file(path);
        }
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

const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string(BOOT_ID).ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// `(pgrp, starttime)` from `/proc/<pid>/stat` (fields 5 and 22; the
/// command name in field 2 may hold spaces and parentheses).
fn stat_of(pid: i32) -> Option<(i32, u64)> {
    let stat =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.get(2)?.parse().ok()?, f.get(19)?.parse().ok()?))
}

fn start_time(pid: i32) -> Option<u64> {
    stat_of(pid).map(|(_, t)| t)
}

/// Whether a record (`<boot id> <start time>`) still describes the running
/// leader of group `pgid`.
fn record_is_live(record: &str, pgid: i32, boot: Option<&str>) -> bool {
    let mut it = record.split_whitespace();
    let (Some(b), Some(t)) = (it.next(), it.next().and_then(|t| t.parse::<u64>().ok())) else {
        return false;
    };
    boot == Some(b) && stat_of(pgid) == Some((pgid, t))
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
        registry.write_record(pgid);
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
        self.registry.remove_record(self.pgid);
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
    fn a_new_registry_reaps_groups_a_dead_agent_left_running() {
        use std::os::unix::process::{CommandExt, ExitStatusExt};
        let dir = tempfile::tempdir().unwrap();
        let records = dir.path().join("execs");
        let mut orphan = std::process::Command::new("sleep")
            .arg("300")
            .process_group(0)
            .spawn()
            .unwrap();
        let mut finished = std::process::Command::new("sleep")
            .arg("300")
            .process_group(0)
            .spawn()
            .unwrap();
        let old = GroupRegistry::with_records(records.clone());
        let g1 = GroupGuard::new(orphan.id(), old.clone()).unwrap();
        let g2 = GroupGuard::new(finished.id(), old.clone()).unwrap();
        assert_eq!(std::fs::read_dir(&records).unwrap().count(), 2);
        // The second exec ended normally: its record goes with its guard.
        drop(g2);
        assert_eq!(finished.wait().unwrap().signal(), Some(9));
        // The agent dies: the first guard is never dropped.
        std::mem::forget(g1);
        // A stale record (another boot) and junk are removed, never acted on.
        std::fs::write(records.join("4242"), "other-boot 1\n").unwrap();
        std::fs::write(records.join("junk"), "x").unwrap();
        let new = GroupRegistry::with_records(records.clone());
        let pgid = i32::try_from(orphan.id()).unwrap();
        assert_eq!(new.reap_leftovers(), vec![pgid]);
        assert_eq!(orphan.wait().unwrap().signal(), Some(9));
        assert_eq!(std::fs::read_dir(&records).unwrap().count(), 0);
        assert!(new.reap_leftovers().is_empty());
    }

    #[test]
    fn a_record_whose_pid_was_reused_is_not_live() {
        let me = i32::try_from(std::process::id()).unwrap();
        let boot = boot_id().unwrap();
        let (pgrp, start) = stat_of(me).unwrap();
        assert_eq!(
            record_is_live(&format!("{boot} {start}"), me, Some(&boot)),
            pgrp == me
        );
        assert!(!record_is_live(
            &format!("{boot} {}", start + 1),
            me,
            Some(&boot)
        ));
        assert!(!record_is_live(&format!("old {start}"), me, Some(&boot)));
        assert!(!record_is_live("", me, Some(&boot)));
    }

    #[test]
    fn bad_pgids_are_refused() {
        let reg = GroupRegistry::new();
        assert!(GroupGuard::new(0, reg.clone()).is_err());
        assert!(GroupGuard::new(1, reg).is_err());
    }
}

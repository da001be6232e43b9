//! The supervisor's pidfile. The supervisor holds an exclusive `flock` on it
//! for its whole life, so "is it running" never depends on a pid that may
//! have been reused: a pidfile nobody holds locked is stale.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};
use rustix::io::Errno;

#[derive(Debug, thiserror::Error)]
pub enum PidfileError {
    #[error("cannot {action} pidfile {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ferry-agent is already running (pid {pid}, pidfile {path}); stop it first with `ferry-agent stop --pidfile {path}`", path = path.display())]
    AlreadyRunning { pid: String, path: PathBuf },
    #[error("pidfile {path} keeps being replaced while locking it")]
    Unstable { path: PathBuf },
}

/// What a pidfile says about its supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PidfileState {
    /// No pidfile.
    Absent,
    /// A pidfile nobody holds: its supervisor is gone.
    Stale,
    /// Held by a live supervisor; `None` while it is still writing its pid.
    Held(Option<i32>),
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PidfileError {
    let path = path.to_path_buf();
    move |source| PidfileError::Io {
        action,
        path,
        source,
    }
}

fn read_pid(f: &mut File) -> Option<i32> {
    let mut s = String::new();
    f.seek(SeekFrom::Start(0)).ok()?;
    f.read_to_string(&mut s).ok()?;
    s.trim().parse::<i32>().ok().filter(|p| *p > 0)
}

fn try_lock(f: &File, exclusive: bool) -> Result<bool, Errno> {
    let op = if exclusive {
        FlockOperation::NonBlockingLockExclusive
    } else {
        FlockOperation::NonBlockingLockShared
    };
    match flock(f, op) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Inspects `path` without changing it.
pub fn state(path: &Path) -> Result<PidfileState, PidfileError> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PidfileState::Absent),
        Err(e) => return Err(io_err("open", path)(e)),
    };
    let free = try_lock(&f, false).map_err(|e| io_err("lock", path)(e.into()))?;
    if free {
        return Ok(PidfileState::Stale);
    }
    Ok(PidfileState::Held(read_pid(&mut f)))
}

/// Removes `path` if it is stale. Returns whether it removed it.
pub fn remove_stale(path: &Path) -> Result<bool, PidfileError> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err("open", path)(e)),
    };
    if !try_lock(&f, true).map_err(|e| io_err("lock", path)(e.into()))? {
        return Ok(false);
    }
    // Only unlink the file we locked, not one a new supervisor just made.
    let same = std::fs::metadata(path)
        .ok()
        .zip(f.metadata().ok())
        .is_some_and(|(a, b)| a.ino() == b.ino() && a.dev() == b.dev());
    if same {
        std::fs::remove_file(path).map_err(io_err("remove", path))?;
    }
    Ok(same)
}

/// A pidfile held by this process.
#[derive(Debug)]
pub struct Pidfile {
    path: PathBuf,
    file: File,
}

impl Pidfile {
    /// Locks `path` and writes this process's pid into it; fails with
    /// [`PidfileError::AlreadyRunning`] if a live supervisor holds it.
    pub fn acquire(path: &Path) -> Result<Self, PidfileError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err("create the directory of", path))?;
        }
        for _ in 0..10 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(path)
                .map_err(io_err("open", path))?;
            if !try_lock(&file, true).map_err(|e| io_err("lock", path)(e.into()))? {
                let pid =
                    read_pid(&mut file).map_or_else(|| "unknown".to_string(), |p| p.to_string());
                return Err(PidfileError::AlreadyRunning {
                    pid,
                    path: path.to_path_buf(),
                });
            }
            // `remove_stale` may have unlinked it between open and lock.
            let same = std::fs::metadata(path)
                .ok()
                .zip(file.metadata().ok())
                .is_some_and(|(a, b)| a.ino() == b.ino() && a.dev() == b.dev());
            if !same {
                continue;
            }
            file.set_len(0).map_err(io_err("truncate", path))?;
            file.seek(SeekFrom::Start(0))
                .map_err(io_err("write", path))?;
            writeln!(file, "{}", std::process::id()).map_err(io_err("write", path))?;
            file.sync_all().map_err(io_err("sync", path))?;
            return Ok(Self {
                path: path.to_path_buf(),
                file,
            });
        }
        Err(PidfileError::Unstable {
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the pidfile, then releases the lock.
    pub fn release(self) -> Result<(), PidfileError> {
        let r = std::fs::remove_file(&self.path).map_err(io_err("remove", &self.path));
        drop(self.file);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/agent.pid");
        assert_eq!(state(&p).unwrap(), PidfileState::Absent);
        let held = Pidfile::acquire(&p).unwrap();
        let me = i32::try_from(std::process::id()).unwrap();
        assert_eq!(state(&p).unwrap(), PidfileState::Held(Some(me)));
        let e = Pidfile::acquire(&p).unwrap_err().to_string();
        assert!(
            e.contains("already running") && e.contains(&me.to_string()),
            "{e}"
        );
        assert!(!remove_stale(&p).unwrap());
        held.release().unwrap();
        assert_eq!(state(&p).unwrap(), PidfileState::Absent);
    }

    #[test]
    fn stale_files_are_detected_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.pid");
        std::fs::write(&p, "4242\n").unwrap();
        assert_eq!(state(&p).unwrap(), PidfileState::Stale);
        assert!(remove_stale(&p).unwrap());
        assert!(!p.exists());
        std::fs::write(&p, "garbage").unwrap();
        let held = Pidfile::acquire(&p).unwrap();
        assert_eq!(
            std::fs::read_to_string(held.path()).unwrap().trim(),
            std::process::id().to_string()
        );
    }
}

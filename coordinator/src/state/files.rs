//! Atomic, permission-aware file writes for the state directory.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot find the home directory: set HOME or pass --home")]
    NoHome,
    #[error("cluster name `{0}` is invalid: use 1-63 lowercase letters, digits and `-`")]
    BadClusterName(String),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid ({reason}); fix or remove it")]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "cluster `{cluster}` is busy: {holder} holds {}; wait for it to finish, then re-run (the lock ends with that process)",
        path.display()
    )]
    Locked {
        cluster: String,
        holder: String,
        path: PathBuf,
    },
    #[error("agent PKI in {path}: {source}")]
    Pki {
        path: PathBuf,
        source: ferry_shared::pki::PkiError,
    },
    #[error("agent PKI in {path}: {source}; remove the file to have it issued again")]
    Cert {
        path: PathBuf,
        source: ferry_shared::pki::CertInfoError,
    },
}

pub(crate) fn io_err(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> StateError {
    let path = path.to_path_buf();
    move |source| StateError::Io {
        action,
        path,
        source,
    }
}

/// Creates `dir` (and parents) with mode 0700 if missing.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<(), StateError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err("create directory", dir))
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `data` to `path` atomically with `mode` (temp file in the same
/// directory, fsync, rename, fsync of the directory).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A fresh name per write (pid + counter) opened with O_EXCL: two
    // writers never share a temp file, and nothing already at that name (a
    // symlink planted there, a crash's leftover) is followed or truncated.
    let (tmp, mut f) = loop {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.tmp.{}.{n}", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n % 64 != 63 => {}
            Err(e) => return Err(io_err("create", &tmp)(e)),
        }
    };
    // The mode passed to open() is filtered by the umask; set it exactly.
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_err("chmod", &tmp))?;
    f.write_all(data).map_err(io_err("write", &tmp))?;
    f.sync_all().map_err(io_err("fsync", &tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_err("rename into place", path))?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

pub(crate) fn read_to_string(path: &Path) -> Result<String, StateError> {
    fs::read_to_string(path).map_err(io_err("read", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_never_follows_what_sits_at_its_temp_name() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        let target = d.path().join("state.json");
        // Every temp name the next writes would try first, planted (and
        // the pid-only name of older versions).
        let pid_only = d
            .path()
            .join(format!(".state.json.tmp.{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, pid_only).unwrap();
        let next = TMP_COUNTER.load(Ordering::Relaxed);
        for n in next..next + 8 {
            let planted = d
                .path()
                .join(format!(".state.json.tmp.{}.{n}", std::process::id()));
            std::os::unix::fs::symlink(&victim, planted).unwrap();
        }
        write_atomic(&target, b"new", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(fs::read_to_string(&target).unwrap(), "new");
    }

    #[test]
    fn atomic_write_sets_exact_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k.pem");
        write_atomic(&p, b"secret", 0o600).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        write_atomic(&p, b"again", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"again");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temp files left"
        );
    }
}

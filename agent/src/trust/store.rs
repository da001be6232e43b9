//! The TLS directory on the node (`ca.crt`, `agent.crt`, `agent.key`, and
//! `revoked.json`). A new set is installed crash-safely: each file is staged
//! as `<name>.new` and fsync'd, then a commit marker is written, then the
//! staged files are renamed into place and the marker removed. An agent
//! starting after a crash ([`TlsDir::recover`]) finishes the renames when
//! the marker exists and discards the staged files otherwise, so it always
//! reads one consistent set.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{TrustError, io_err};
use crate::tls::{CA_FILE, CERT_FILE, KEY_FILE, TlsError, TlsMaterial};

const COMMIT_MARKER: &str = "install.commit";
const STAGED: &str = ".new";

/// Writes `path` through a temp file: write, fsync, rename, fsync the dir.
pub fn write_synced(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TrustError> {
    let tmp = tmp_name(path, ".tmp");
    write_file(&tmp, bytes, mode)?;
    std::fs::rename(&tmp, path).map_err(io_err("cannot rename into", path))?;
    sync_parent(path);
    Ok(())
}

fn tmp_name(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TrustError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io_err("cannot create", path))?;
    f.write_all(bytes).map_err(io_err("cannot write", path))?;
    f.sync_all().map_err(io_err("cannot fsync", path))
}

fn sync_parent(path: &Path) {
    if let Some(d) = path.parent().and_then(|d| std::fs::File::open(d).ok()) {
        let _ = d.sync_all();
    }
}

/// The agent's TLS directory.
#[derive(Debug, Clone)]
pub struct TlsDir {
    dir: PathBuf,
}

impl TlsDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn revoked_file(&self) -> PathBuf {
        self.dir.join(super::REVOKED_FILE)
    }

    fn files() -> [(&'static str, u32); 3] {
        [(CA_FILE, 0o644), (CERT_FILE, 0o644), (KEY_FILE, 0o600)]
    }

    /// Finishes or discards an install a crash interrupted.
    pub fn recover(&self) -> Result<(), TrustError> {
        let marker = self.dir.join(COMMIT_MARKER);
        let committed = marker.exists();
        for (name, _) in Self::files() {
            let staged = tmp_name(&self.dir.join(name), STAGED);
            if !staged.exists() {
                continue;
            }
            if committed {
                std::fs::rename(&staged, self.dir.join(name))
                    .map_err(io_err("cannot rename into place", &staged))?;
            } else {
                std::fs::remove_file(&staged).map_err(io_err("cannot remove", &staged))?;
            }
        }
        if committed {
            sync_parent(&marker);
            std::fs::remove_file(&marker).map_err(io_err("cannot remove", &marker))?;
        }
        sync_parent(&marker);
        Ok(())
    }

    /// Recovers, then reads the material.
    pub fn load(&self) -> Result<TlsMaterial, TlsError> {
        self.recover().map_err(|e| TlsError::Config {
            origin: self.dir.display().to_string(),
            detail: e.to_string(),
        })?;
        TlsMaterial::from_dir(&self.dir)
    }

    /// Replaces the three files with `m`'s, crash-safely.
    pub fn install(&self, m: &TlsMaterial) -> Result<(), TrustError> {
        let bytes = [
            m.ca_pem().as_bytes(),
            m.cert_pem().as_bytes(),
            m.key_pem().expose().as_bytes(),
        ];
        for ((name, mode), data) in Self::files().into_iter().zip(bytes) {
            write_file(&tmp_name(&self.dir.join(name), STAGED), data, mode)?;
        }
        let marker = self.dir.join(COMMIT_MARKER);
        write_file(&marker, b"", 0o600)?;
        sync_parent(&marker);
        self.recover()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_shared::pki::AgentCa;
    use time::OffsetDateTime;

    fn material(cn: &str) -> TlsMaterial {
        let now = OffsetDateTime::now_utc();
        let ca = AgentCa::generate(cn, now, time::Duration::days(1)).unwrap();
        let leaf = ca
            .issue_agent(
                cn,
                &["127.0.0.1".parse().unwrap()],
                &[],
                now,
                time::Duration::days(1),
            )
            .unwrap();
        TlsMaterial::from_pem(ca.cert_pem(), leaf.cert_pem, leaf.key_pem, cn).unwrap()
    }

    #[test]
    fn an_install_replaces_the_set_and_a_crash_before_the_marker_keeps_the_old_one() {
        let d = tempfile::tempdir().unwrap();
        let dir = TlsDir::new(d.path());
        let (a, b) = (material("a"), material("b"));
        dir.install(&a).unwrap();
        assert_eq!(dir.load().unwrap().cert_pem(), a.cert_pem());
        // Staged but never committed: discarded.
        std::fs::write(d.path().join("agent.crt.new"), b.cert_pem()).unwrap();
        assert_eq!(dir.load().unwrap().cert_pem(), a.cert_pem());
        assert!(!d.path().join("agent.crt.new").exists());
        dir.install(&b).unwrap();
        let m = dir.load().unwrap();
        assert_eq!(m.cert_pem(), b.cert_pem());
        assert_eq!(m.ca_pem(), b.ca_pem());
    }

    #[test]
    fn a_crash_after_the_marker_is_rolled_forward() {
        let d = tempfile::tempdir().unwrap();
        let dir = TlsDir::new(d.path());
        let (a, b) = (material("a"), material("b"));
        dir.install(&a).unwrap();
        // Crash after the marker, with one file already renamed.
        std::fs::write(d.path().join("ca.crt"), b.ca_pem()).unwrap();
        std::fs::write(d.path().join("agent.crt.new"), b.cert_pem()).unwrap();
        std::fs::write(d.path().join("agent.key.new"), b.key_pem().expose()).unwrap();
        std::fs::write(d.path().join(COMMIT_MARKER), "").unwrap();
        let m = dir.load().unwrap();
        assert_eq!(m.cert_pem(), b.cert_pem());
        assert!(!d.path().join(COMMIT_MARKER).exists());
    }
}

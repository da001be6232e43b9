//! The persisted desired state: `<dir>/state.json`, 0600 in a 0700 dir,
//! replaced atomically (temp file, fsync, rename, fsync dir).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ferry_shared::lb::LbSpec;

use super::LbError;

const FILE: &str = "state.json";

#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    fn err(path: &Path) -> impl FnOnce(std::io::Error) -> LbError + '_ {
        move |source| LbError::Store {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn save(&self, spec: &LbSpec) -> Result<(), LbError> {
        let path = self.path();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(Self::err(&self.dir))?;
        let tmp = self.dir.join(format!(".{FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(spec).map_err(|e| LbError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(Self::err(&tmp))?;
        f.write_all(&bytes).map_err(Self::err(&tmp))?;
        f.sync_all().map_err(Self::err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(Self::err(&path))?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// The saved spec, None if there is none.
    pub fn load(&self) -> Result<Option<LbSpec>, LbError> {
        let path = self.path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Self::err(&path)(e)),
        };
        let spec: LbSpec = serde_json::from_slice(&bytes).map_err(|e| LbError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        spec.validate()?;
        Ok(Some(spec))
    }

    pub fn remove(&self) -> Result<(), LbError> {
        let path = self.path();
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Self::err(&path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_shared::lb::{BackendKind, DEFAULT_VIP, HealthCheck, RealServer, Scheduler};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn save_load_remove_with_private_modes() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path().join("lb"));
        assert_eq!(store.load().unwrap(), None);
        let spec = LbSpec {
            vip: DEFAULT_VIP,
            real_servers: vec![RealServer {
                addr: "10.0.0.2:6443".parse().unwrap(),
                weight: 1,
            }],
            scheduler: Scheduler::Rr,
            health: HealthCheck::default(),
            backend: BackendKind::Auto,
            version: 7,
        };
        store.save(&spec).unwrap();
        store.save(&spec).unwrap();
        assert_eq!(store.load().unwrap(), Some(spec));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&store.path()), 0o600);
        assert_eq!(mode(&d.path().join("lb")), 0o700);
        store.remove().unwrap();
        store.remove().unwrap();
        assert_eq!(store.load().unwrap(), None);
        std::fs::write(store.path(), b"{").unwrap();
        assert!(matches!(store.load(), Err(LbError::Corrupt { .. })));
    }
}

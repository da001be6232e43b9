//! The bastion side of `ferry cert --renew`, crash-safe: the renewed set
//! of every master is written first under `<pki root>/.renew/<ip>/`
//! (atomic files), then `plan.json` seals it. Masters are then pushed one
//! by one; a master whose push succeeded is committed (its files copied
//! over `<pki root>/<ip>/`, then its staged directory removed). A re-run
//! finds the sealed plan and continues with the masters still staged, with
//! the same certificates; an unsealed stage (a crash while generating) is
//! thrown away and generated again.

use std::path::{Path, PathBuf};

use ferry_shared::pki::kube::PkiFile;
use serde::{Deserialize, Serialize};

use super::cert_node::CertError;
use crate::state::write_atomic;

const PLAN: &str = "plan.json";

/// What a sealed renewal covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub started_ms: i64,
    /// Master IPs, in push order.
    pub masters: Vec<String>,
}

/// `<pki root>/.renew`.
pub struct Stage {
    dir: PathBuf,
}

fn bastion_err(path: &Path, step: &'static str, e: impl std::fmt::Display) -> CertError {
    CertError::Bastion {
        path: path.display().to_string(),
        step,
        detail: e.to_string(),
        next: "fix the bastion's state directory (space, permissions), then re-run `ferry cert --renew`"
            .into(),
    }
}

/// The mode a PKI file has on a node (the bastion keeps everything 0600).
pub fn node_mode(rel: &str) -> u32 {
    if rel.ends_with(".key") || rel.ends_with(".conf") {
        0o600
    } else {
        0o644
    }
}

impl Stage {
    pub fn new(pki_root: &Path) -> Self {
        Self {
            dir: pki_root.join(".renew"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The sealed plan, with only the masters still staged; `None` when no
    /// renewal is pending (an unsealed stage is removed).
    pub fn pending(&self) -> Result<Option<Plan>, CertError> {
        let path = self.dir.join(PLAN);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.discard()?;
                return Ok(None);
            }
            Err(e) => return Err(bastion_err(&path, "read the renewal plan", e)),
        };
        let mut plan: Plan = serde_json::from_str(&text).map_err(|e| CertError::Bastion {
            path: path.display().to_string(),
            step: "read the renewal plan",
            detail: e.to_string(),
            next: format!(
                "remove {} (nothing was pushed from it that a new renewal would not replace) and re-run",
                self.dir.display()
            ),
        })?;
        plan.masters.retain(|ip| self.dir.join(ip).is_dir());
        Ok(Some(plan))
    }

    /// Removes the stage (after the last commit, or an unsealed one).
    pub fn discard(&self) -> Result<(), CertError> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(bastion_err(&self.dir, "remove the renewal stage", e)),
        }
    }

    /// Writes one master's renewed files (0600, atomically).
    pub fn write(&self, ip: &str, files: &[PkiFile]) -> Result<(), CertError> {
        store(
            &self.dir.join(ip),
            files
                .iter()
                .map(|f| (f.path.as_str(), f.contents.as_bytes())),
        )
    }

    /// Seals the stage: from now on a re-run continues instead of
    /// generating again.
    pub fn seal(&self, plan: &Plan) -> Result<(), CertError> {
        let path = self.dir.join(PLAN);
        let text = serde_json::to_vec_pretty(plan).map_err(|e| bastion_err(&path, "seal", e))?;
        write_atomic(&path, &text, 0o600).map_err(|e| bastion_err(&path, "seal", e))
    }

    /// One master's staged files: relative path → bytes, sorted.
    pub fn files(&self, ip: &str) -> Result<Vec<(String, Vec<u8>)>, CertError> {
        let root = self.dir.join(ip);
        let mut out = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            let entries =
                std::fs::read_dir(&d).map_err(|e| bastion_err(&d, "read the stage", e))?;
            for e in entries {
                let p = e.map_err(|e| bastion_err(&d, "read the stage", e))?.path();
                if p.is_dir() {
                    stack.push(p);
                } else if !is_temp(&p) {
                    let data =
                        std::fs::read(&p).map_err(|e| bastion_err(&p, "read the stage", e))?;
                    let rel = p.strip_prefix(&root).unwrap_or(&p);
                    out.push((rel.to_string_lossy().into_owned(), data));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The master's renewal reached its node: its files replace the
    /// bastion copy in `master_dir`, then its stage goes.
    pub fn commit(&self, ip: &str, master_dir: &Path) -> Result<(), CertError> {
        let files = self.files(ip)?;
        store(
            master_dir,
            files.iter().map(|(p, d)| (p.as_str(), d.as_slice())),
        )?;
        let d = self.dir.join(ip);
        std::fs::remove_dir_all(&d).map_err(|e| bastion_err(&d, "commit", e))
    }
}

/// Temp files of `write_atomic` (`.<name>.tmp.<pid>`), left by a crash.
fn is_temp(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.') && n.contains(".tmp."))
}

fn store<'a>(
    root: &Path,
    files: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> Result<(), CertError> {
    use std::os::unix::fs::DirBuilderExt;
    for (rel, data) in files {
        let p = root.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| bastion_err(parent, "write", e))?;
        }
        write_atomic(&p, data, 0o600).map_err(|e| bastion_err(&p, "write", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn f(path: &str, contents: &str) -> PkiFile {
        PkiFile {
            path: path.into(),
            contents: contents.into(),
            mode: 0o600,
        }
    }

    #[test]
    fn sealed_stage_resumes_and_commits_per_master() {
        let tmp = tempfile::tempdir().unwrap();
        let st = Stage::new(tmp.path());
        assert_eq!(st.pending().unwrap(), None);
        st.write("10.0.0.2", &[f("pki/a.crt", "A2"), f("admin.conf", "C2")])
            .unwrap();
        // Unsealed (a crash while generating): thrown away.
        assert_eq!(st.pending().unwrap(), None);
        assert!(!st.dir().exists());

        for ip in ["10.0.0.2", "10.0.0.3"] {
            st.write(ip, &[f("pki/etcd/a.crt", ip), f("admin.conf", "new")])
                .unwrap();
        }
        let plan = Plan {
            started_ms: 1,
            masters: vec!["10.0.0.2".into(), "10.0.0.3".into()],
        };
        st.seal(&plan).unwrap();
        std::fs::write(st.dir().join("10.0.0.2/.admin.conf.tmp.9"), "x").unwrap();
        assert_eq!(
            st.files("10.0.0.2").unwrap(),
            [
                ("admin.conf".to_string(), b"new".to_vec()),
                ("pki/etcd/a.crt".to_string(), b"10.0.0.2".to_vec())
            ]
        );

        let m0 = tmp.path().join("10.0.0.2");
        std::fs::create_dir_all(m0.join("pki")).unwrap();
        std::fs::write(m0.join("admin.conf"), "old").unwrap();
        std::fs::write(m0.join("pki/ca.crt"), "CA").unwrap();
        st.commit("10.0.0.2", &m0).unwrap();
        assert_eq!(
            std::fs::read_to_string(m0.join("admin.conf")).unwrap(),
            "new"
        );
        assert_eq!(
            std::fs::read_to_string(m0.join("pki/etcd/a.crt")).unwrap(),
            "10.0.0.2"
        );
        assert_eq!(
            std::fs::read_to_string(m0.join("pki/ca.crt")).unwrap(),
            "CA"
        );
        // A re-run continues with the master left, same plan otherwise.
        let left = st.pending().unwrap().unwrap();
        assert_eq!(left.masters, ["10.0.0.3"]);
        assert_eq!(left.started_ms, 1);
        st.discard().unwrap();
        assert_eq!(st.pending().unwrap(), None);
    }

    #[test]
    fn node_modes() {
        assert_eq!(node_mode("pki/apiserver.key"), 0o600);
        assert_eq!(node_mode("admin.conf"), 0o600);
        assert_eq!(node_mode("pki/etcd/server.crt"), 0o644);
    }
}

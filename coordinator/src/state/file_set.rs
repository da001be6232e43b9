//! Several state files replaced as one (a certificate with its key, the
//! revocation list with the certificate that revoked its predecessor). Each
//! file is staged as `.<name>.new` (written atomically), then a commit
//! marker naming the renames and removals is written, then they are done
//! and the marker removed. [`recover`] (on every load) finishes a set whose
//! marker exists and discards staged files otherwise, so a crash never
//! leaves a certificate beside another certificate's key.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::files::{StateError, io_err, read_to_string, write_atomic};

const MARKER: &str = ".commit.json";

#[derive(Serialize, Deserialize)]
struct Marker {
    rename: Vec<String>,
    remove: Vec<String>,
}

fn staged(name: &str) -> String {
    format!(".{name}.new")
}

/// Replaces `writes` (name, content, mode) and removes `removes` in `dir`,
/// all or nothing across crashes.
pub fn commit(
    dir: &Path,
    writes: &[(&str, &[u8], u32)],
    removes: &[&str],
) -> Result<(), StateError> {
    for (name, data, mode) in writes {
        write_atomic(&dir.join(staged(name)), data, *mode)?;
    }
    let marker = Marker {
        rename: writes.iter().map(|(n, _, _)| n.to_string()).collect(),
        remove: removes.iter().map(|n| n.to_string()).collect(),
    };
    let text = serde_json::to_vec(&marker).map_err(|e| StateError::Corrupt {
        path: dir.join(MARKER),
        reason: e.to_string(),
    })?;
    write_atomic(&dir.join(MARKER), &text, 0o600)?;
    recover(dir)
}

/// Finishes (marker present) or discards (absent) an interrupted [`commit`].
pub fn recover(dir: &Path) -> Result<(), StateError> {
    let marker_path = dir.join(MARKER);
    if marker_path.exists() {
        let m: Marker = serde_json::from_str(&read_to_string(&marker_path)?).map_err(|e| {
            StateError::Corrupt {
                path: marker_path.clone(),
                reason: e.to_string(),
            }
        })?;
        for name in &m.rename {
            let from = dir.join(staged(name));
            if from.exists() {
                fs::rename(&from, dir.join(name)).map_err(io_err("rename into place", &from))?;
            }
        }
        for name in &m.remove {
            match fs::remove_file(dir.join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_err("remove", &dir.join(name))(e));
                }
                _ => {}
            }
        }
        fs::remove_file(&marker_path).map_err(io_err("remove", &marker_path))?;
    } else if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with('.') && n.ends_with(".new") {
                fs::remove_file(e.path()).map_err(io_err("remove", &e.path()))?;
            }
        }
    }
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_lands_whole_or_not_at_all() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        fs::write(p.join("gone"), "x").unwrap();
        commit(
            p,
            &[("a.crt", b"A", 0o644), ("a.key", b"K", 0o600)],
            &["gone"],
        )
        .unwrap();
        assert_eq!(fs::read(p.join("a.key")).unwrap(), b"K");
        assert!(!p.join("gone").exists());
        // Staged without a marker (crash before it): discarded.
        fs::write(p.join(".a.key.new"), "K2").unwrap();
        recover(p).unwrap();
        assert_eq!(fs::read(p.join("a.key")).unwrap(), b"K");
        // Marker written, one rename done (crash after it): rolled forward.
        fs::write(p.join("a.crt"), "A3").unwrap();
        fs::write(p.join(".a.key.new"), "K3").unwrap();
        fs::write(
            p.join(MARKER),
            r#"{"rename":["a.crt","a.key"],"remove":[]}"#,
        )
        .unwrap();
        recover(p).unwrap();
        assert_eq!(fs::read(p.join("a.key")).unwrap(), b"K3");
        assert_eq!(fs::read(p.join("a.crt")).unwrap(), b"A3");
        let left: Vec<_> = fs::read_dir(p)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }
}

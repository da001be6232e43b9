//! The Kubernetes PKI sets on the bastion
//! (`~/.ferry/<cluster>/pki/kubernetes/<ip>/`): written whole or not at
//! all, and checked before they are used.
//!
//! - A new set is written into `.<ip>.new/` (each file fsync'd, then the
//!   directories), and that directory is renamed to `<ip>`: a crash leaves
//!   no set (generated again on the next run) or the whole set, never a
//!   CA certificate without its key.
//! - Every run checks the stored sets before any host changes
//!   ([`check_stored`]): a damaged one (a truncated or foreign key, a
//!   missing CA file) stops the run naming the file and what to do, and
//!   nothing is pushed or signed with it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use ferry_shared::pipeline::Step;
use ferry_shared::pki::kube::{PkiFile, check_set};

use super::{Ctx, PipelineError};
use crate::state::write_atomic;

fn sync_dir(d: &Path) -> Result<(), PipelineError> {
    fs::File::open(d)
        .and_then(|f| f.sync_all())
        .map_err(PipelineError::io("syncing", d))
}

/// Writes `files` as the new set `root` (which must not exist yet).
pub fn store_set(root: &Path, files: &[PkiFile]) -> Result<(), PipelineError> {
    let parent = root.parent().unwrap_or(Path::new("."));
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stage = parent.join(format!(".{name}.new"));
    if stage.exists() {
        fs::remove_dir_all(&stage).map_err(PipelineError::io("removing", &stage))?;
    }
    let mut dirs = vec![stage.clone()];
    for f in files {
        let p = stage.join(&f.path);
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).map_err(PipelineError::io("creating", d))?;
            fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .map_err(PipelineError::io("chmod", d))?;
            if !dirs.iter().any(|x| x == d) {
                dirs.push(d.to_path_buf());
            }
        }
        write_atomic(&p, f.contents.as_bytes(), 0o600)?;
    }
    // Deepest first, so each directory's entries are durable before it.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in &dirs {
        sync_dir(d)?;
    }
    fs::rename(&stage, root).map_err(PipelineError::io("renaming", &stage))?;
    sync_dir(parent)
}

/// Every file of the set `root`, sorted (paths relative to it).
pub fn read_set(root: &Path) -> Result<Vec<PkiFile>, PipelineError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).map_err(PipelineError::io("reading", &d))? {
            let p = e.map_err(PipelineError::io("reading", &d))?.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p
                .strip_prefix(root)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            let contents = fs::read_to_string(&p).map_err(PipelineError::io("reading", &p))?;
            let mode = if rel.ends_with(".key") || rel.ends_with(".conf") {
                0o600
            } else {
                0o644
            };
            out.push(PkiFile {
                path: rel,
                contents,
                mode,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Refuses the set `root` when it is damaged.
pub fn check_dir(root: &Path) -> Result<(), PipelineError> {
    let files: BTreeMap<String, String> = read_set(root)?
        .into_iter()
        .map(|f| (f.path, f.contents))
        .collect();
    let problems = check_set(&files);
    if problems.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = problems
        .iter()
        .map(|p| format!("{}: {}", root.join(&p.file).display(), p.reason))
        .collect();
    Err(PipelineError::cluster(
        Step::Pki,
        format!(
            "the Kubernetes PKI on the bastion is damaged ({}); nothing was pushed or signed with it. next: restore {} from a master's backup (/var/lib/ferry/data/<cluster>/backup/pki), or, if no master was ever initialised with it, move it away and re-run to generate a new one",
            list.join("; "),
            root.display()
        ),
    ))
}

/// The stored sets of this cluster's masters (those that exist).
fn stored_sets(ctx: &Ctx) -> Vec<PathBuf> {
    let base = ctx.state.dir().join("pki").join("kubernetes");
    ctx.masters()
        .iter()
        .map(|m| base.join(m.addr.ip.to_string()))
        .filter(|d| d.is_dir())
        .collect()
}

/// Checks every stored set of the cluster's masters (blocking: RSA key
/// parsing); called before any host changes.
pub fn check_stored(ctx: &Ctx) -> Result<(), PipelineError> {
    stored_sets(ctx).iter().try_for_each(|d| check_dir(d))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_set_lands_whole_and_a_crashed_stage_is_discarded() {
        let f = |path: &str, contents: &str| PkiFile {
            path: path.into(),
            contents: contents.into(),
            mode: 0o600,
        };
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("10.0.0.2");
        // What a crash mid-write left: a stage with a certificate alone.
        let stage = d.path().join(".10.0.0.2.new/pki");
        fs::create_dir_all(&stage).unwrap();
        fs::write(stage.join("ca.crt"), "torn").unwrap();
        assert!(!root.exists(), "a stage is not a set");

        let files = [
            f("pki/ca.crt", "c"),
            f("pki/ca.key", "k"),
            f("pki/etcd/ca.key", "e"),
        ];
        store_set(&root, &files).unwrap();
        assert!(!d.path().join(".10.0.0.2.new").exists());
        let got: Vec<(String, String)> = read_set(&root)
            .unwrap()
            .into_iter()
            .map(|f| (f.path, f.contents))
            .collect();
        assert_eq!(
            got,
            [
                ("pki/ca.crt".to_string(), "c".to_string()),
                ("pki/ca.key".to_string(), "k".to_string()),
                ("pki/etcd/ca.key".to_string(), "e".to_string()),
            ]
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(root.join("pki")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // A damaged set is named with the file and the way out.
        let e = check_dir(&root).unwrap_err().to_string();
        assert!(
            e.contains("pki/front-proxy-ca.crt: missing") && e.contains("next:"),
            "{e}"
        );
    }
}

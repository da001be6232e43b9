//! The backup of the cluster's state on every master
//! (`<data>/backup`, sealos keeps a copy of its state there): only what a
//! recovery on another bastion needs (`docs/backup.md`), root-only
//! (directory 0700, files 0600), replacing the previous backup whole.
//!
//! Kept: the Clusterfile without SSH secrets (`passwd`, `pkData`,
//! `pkPasswd` of the global and per-host `ssh` blocks: SSH passwords never
//! leave the bastion), the agent inventory, the run journal (what is done
//! per host: without it a recovered bastion would run bootstrap hooks on
//! live nodes again), the Kubernetes PKI (`pki/kubernetes/`: the CAs every
//! later master joins under; their keys are on the masters already) and
//! `etc/admin.conf`. Left out: the agent CA and the coordinator's key (a
//! new bastion enrols the agents again with `ferry agent install`), the
//! bootstrap token file (a fresh token is made per join batch), the
//! events, mounts and the lock.

use std::path::Path;

use ferry_shared::clusterfile::{Clusterfile, Ssh};
use ferry_shared::pipeline::Step;
use ferry_shared::{EventKind, Secret};

use super::node::{self, Cmd};
use super::writeback::CLUSTERFILE;
use super::{Ctx, PipelineError};

/// One file of the backup: path relative to the backup dir, content, mode.
pub type BackupFile = (String, Vec<u8>, u32);

/// Trees and files of the state dir that go into the backup.
const KEPT_TREES: [&str; 1] = ["pki/kubernetes"];
const KEPT_FILES: [&str; 3] = ["agents.json", "etc/admin.conf", "journal.jsonl"];

fn strip_ssh(s: &mut Ssh) {
    s.passwd = Secret::default();
    s.pk_data = Secret::default();
    s.pk_passwd = Secret::default();
}

/// `cf` with no SSH secret left in it, as YAML.
pub fn without_ssh_secrets(cf: &Clusterfile) -> Result<String, PipelineError> {
    let mut cf = cf.clone();
    strip_ssh(&mut cf.cluster.spec.ssh);
    for h in &mut cf.cluster.spec.hosts {
        if let Some(s) = h.ssh.as_mut() {
            strip_ssh(s);
        }
    }
    Ok(cf.to_yaml(true)?)
}

/// What goes into the backup: the run's Clusterfile `cf` (the stored one
/// is the previous run's until writeback) and the state dir's `root` files.
pub fn files(root: &Path, cf: &Clusterfile) -> Result<Vec<BackupFile>, PipelineError> {
    let mut out = vec![(
        CLUSTERFILE.to_string(),
        without_ssh_secrets(cf)?.into_bytes(),
        0o600,
    )];
    for rel in KEPT_FILES {
        let p = root.join(rel);
        if p.is_file() {
            let data = std::fs::read(&p).map_err(PipelineError::io("reading", &p))?;
            out.push((rel.to_string(), data, 0o600));
        }
    }
    for tree in KEPT_TREES {
        let mut stack = vec![root.join(tree)];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd {
                let p = e.map_err(PipelineError::io("reading", &d))?.path();
                let rel = p.strip_prefix(root).unwrap_or(&p).to_string_lossy();
                // Temp files and staged sets are not state.
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                if name.starts_with('.') || rel.contains(".tmp") {
                    continue;
                }
                let md = std::fs::symlink_metadata(&p).map_err(PipelineError::io("reading", &p))?;
                if md.is_dir() {
                    stack.push(p);
                } else if md.is_file() {
                    let data = std::fs::read(&p).map_err(PipelineError::io("reading", &p))?;
                    out.push((rel.into_owned(), data, 0o600));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Writes the new backup beside the old one (`<dir>.new`, 0700), then
/// swaps it in: what an older ferry backed up (agent CA key, SSH
/// passwords) does not survive it.
pub async fn backup(ctx: &Ctx) -> Result<(), PipelineError> {
    let files = files(ctx.state.dir(), &ctx.cf)?;
    let dir = format!("{}/backup", ctx.data_dir);
    let staged = format!("{dir}.new");
    const PREPARE: &str = r#"set -e; rm -rf "$1"; mkdir -p "$(dirname "$1")"; mkdir -m 0700 "$1""#;
    const SWAP: &str = r#"set -e; chmod -R go-rwx "$2"; rm -rf "$1.old"; if [ -e "$1" ]; then mv "$1" "$1.old"; fi; mv "$2" "$1"; rm -rf "$1.old"; sync"#;
    for m in ctx.masters() {
        let Some(n) = ctx.node(m) else {
            continue;
        };
        let (tls, rec) = (&ctx.tls, &ctx.rec);
        rec.step_event(Step::Backup, &n.host, EventKind::Started, "");
        let prepare = Cmd::script(PREPARE, &[&staged]).display(format!("prepare {staged}"));
        node::run(n, tls, rec, Step::Backup, prepare).await?;
        node::write_tree(n, tls, rec, Step::Backup, &staged, &files).await?;
        let swap = Cmd::script(SWAP, &[&dir, &staged]).display(format!("replace {dir}"));
        node::run(n, tls, rec, Step::Backup, swap).await?;
        let done = format!("{} files", files.len());
        rec.step_event(Step::Backup, &n.host, EventKind::Finished, &done);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CF: &str = r#"apiVersion: apps.sealos.io/v1beta1
kind: Cluster
metadata:
  name: default
spec:
  image: [labring/kubernetes:v1.29.0]
  ssh: {user: root, passwd: "global-pw", pkPasswd: "pk-pw", port: 22}
  hosts:
  - ips: [10.0.0.2:22]
    roles: [master, amd64]
  - ips: [10.0.0.3:22]
    roles: [node, amd64]
    ssh: {user: alice, passwd: "host-pw", pkData: "-----BEGIN KEY-----"}
"#;

    #[test]
    fn only_what_a_recovery_needs_and_no_ssh_secret() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let put = |rel: &str, data: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        };
        put("Clusterfile", "stale: the previous run's");
        put("agents.json", "{}");
        put("journal.jsonl", "{}");
        for rel in [
            "pki/agent-ca.key",
            "pki/agent-ca.crt",
            "pki/coordinator.key",
            "pki/coordinator.crt",
            "etc/kubeadm-token.json",
            "events.jsonl",
            "lock",
            "mounts/rootfs/etc/x",
            "pki/kubernetes/10.0.0.2/pki/.ca.key.tmp.1",
        ] {
            put(rel, "secret-material");
        }
        put("pki/kubernetes/10.0.0.2/pki/ca.key", "kube-ca-key");
        put("pki/kubernetes/10.0.0.2/admin.conf", "kubeconfig");
        put("etc/admin.conf", "kubeconfig");
        let got = files(root, &Clusterfile::parse(CF).unwrap()).unwrap();
        let names: Vec<&str> = got.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "Clusterfile",
                "agents.json",
                "etc/admin.conf",
                "journal.jsonl",
                "pki/kubernetes/10.0.0.2/admin.conf",
                "pki/kubernetes/10.0.0.2/pki/ca.key",
            ]
        );
        assert!(got.iter().all(|(_, _, mode)| *mode == 0o600));
        let cf = String::from_utf8(got[0].1.clone()).unwrap();
        for secret in [
            "global-pw",
            "pk-pw",
            "host-pw",
            "BEGIN KEY",
            "passwd",
            "pkData",
        ] {
            assert!(!cf.contains(secret), "{secret} in the backup: {cf}");
        }
        let back = Clusterfile::parse(&cf).unwrap();
        assert_eq!(back.cluster.spec.hosts.len(), 2, "hosts kept");
        assert_eq!(back.cluster.spec.ssh.user, "root", "the user is kept");
    }
}

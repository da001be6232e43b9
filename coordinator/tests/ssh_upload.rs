//! Uploads (streamed file, in-memory bytes) against a real sshd + sudo.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Instant;

use ferry_coordinator::ssh::{HostKeyPolicy, SshError, SshSession, SshTarget};
use ferry_shared::Phase;
use sha2::{Digest, Sha256};
use support::sshd::*;

const SIZE: usize = 20 << 20;

/// A ~20 MB file of varied (non-repeating) bytes, and its sha256.
fn big_file(dir: &Path) -> (std::path::PathBuf, String) {
    let path = dir.join("agent.bin");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut h = Sha256::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; 1 << 16];
    for _ in 0..SIZE / block.len() {
        for b in block.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        h.update(&block);
        f.write_all(&block).unwrap();
    }
    f.write_all(b"tail").unwrap();
    h.update(b"tail");
    (path, hex::encode(h.finalize()))
}

fn sha_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// A root-owned 0700 directory the SSH users cannot write to.
fn root_dir(d: &Sshd) -> std::path::PathBuf {
    let dir = d.dir.path().join("opt-ferry");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

async fn upload_20mb_as(d: &Sshd, t: &SshTarget, label: &str) {
    let (local, sum) = big_file(d.dir.path());
    let dir = root_dir(d);
    let remote = dir.join("ferry-agent");
    let s = SshSession::connect(t, &d.opts(HostKeyPolicy::AcceptNew))
        .await
        .unwrap();
    let started = Instant::now();
    let sent = s
        .upload_file(&local, remote.to_str().unwrap(), 0o755)
        .await
        .unwrap();
    eprintln!(
        "timing: upload_file 20 MB as {label}: {:?}",
        started.elapsed()
    );
    assert_eq!(sent, (SIZE + 4) as u64);
    assert_eq!(sha_of(&remote), sum);
    assert_eq!(mode(&remote), 0o755);
    let meta = std::fs::metadata(&remote).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "root-owned");
    // Replacing an existing file works (atomic rename over it).
    let started = Instant::now();
    s.upload_file(&local, remote.to_str().unwrap(), 0o700)
        .await
        .unwrap();
    eprintln!(
        "timing: second upload_file 20 MB as {label}: {:?}",
        started.elapsed()
    );
    assert_eq!(mode(&remote), 0o700);
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left.len(),
        1,
        "no temp files left next to the target: {left:?}"
    );
    s.close().await;
}

#[tokio::test]
async fn upload_file_20mb_as_root() {
    let d = Sshd::start();
    upload_20mb_as(&d, &d.password_target("root", ROOT_PASSWORD), "root").await;
}

#[tokio::test]
async fn upload_file_20mb_via_nopasswd_sudo() {
    let d = Sshd::start();
    upload_20mb_as(&d, &d.key_target(NOPW_USER, None), "NOPASSWD sudo user").await;
}

#[tokio::test]
async fn upload_bytes_key_is_0600_via_password_sudo() {
    let d = Sshd::start();
    let s = SshSession::connect(
        &d.key_target(PW_USER, Some(USER_PASSWORD)),
        &d.opts(HostKeyPolicy::AcceptNew),
    )
    .await
    .unwrap();
    let dir = root_dir(&d);
    let key = b"-----BEGIN PRIVATE KEY-----\nnot really\n-----END PRIVATE KEY-----\n";
    let remote = dir.join("agent.key");
    s.upload_bytes(key, remote.to_str().unwrap(), 0o600)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&remote).unwrap(), key);
    assert_eq!(mode(&remote), 0o600);
    let meta = std::fs::metadata(&remote).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
    // Empty content is fine too.
    let empty = dir.join("empty.conf");
    s.upload_bytes(b"", empty.to_str().unwrap(), 0o644)
        .await
        .unwrap();
    assert_eq!(
        (std::fs::read(&empty).unwrap().len(), mode(&empty)),
        (0, 0o644)
    );
}

#[tokio::test]
async fn upload_failures_are_transfer_errors() {
    let d = Sshd::start();
    let s = SshSession::connect(
        &d.key_target(NOPW_USER, None),
        &d.opts(HostKeyPolicy::AcceptNew),
    )
    .await
    .unwrap();
    let missing = d.dir.path().join("no/such/dir/file");
    let err = s
        .upload_bytes(b"x", missing.to_str().unwrap(), 0o644)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SshError::Transfer { path, .. } if path == missing.to_str().unwrap()),
        "{err:?}"
    );
    assert_eq!(err.phase(), Phase::Upload);
    assert!(
        err.to_string().contains("No such file or directory"),
        "{err}"
    );

    let err = s
        .upload_file(&d.dir.path().join("absent"), "/tmp/x", 0o644)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SshError::Transfer { .. }) && err.to_string().contains("local file"),
        "{err}"
    );
}

#[tokio::test]
async fn upload_as_user_without_sudo_is_refused_before_sending() {
    let d = Sshd::start();
    let s = SshSession::connect(
        &d.key_target(NOSUDO_USER, None),
        &d.opts(HostKeyPolicy::AcceptNew),
    )
    .await
    .unwrap();
    let err = s.upload_bytes(b"x", "/tmp/never", 0o644).await.unwrap_err();
    assert!(matches!(err, SshError::SudoRefused { .. }), "{err:?}");
}

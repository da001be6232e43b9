//! Registry data sync: a docker-distribution v2 tree (`docker/registry/v2/
//! blobs/sha256/<xx>/<hex>/data`, `repositories/<name>/_manifests|_layers|
//! _uploads/...` link files) to the registry hosts, in two transfers over
//! the relay engine:
//!   1. `blobs/` — content addressed by digest, so only blobs a node lacks
//!      (or holds damaged: the node hashes what it has) move;
//!   2. everything else (repositories: manifests' links, tags, layer links)
//!      — only once every blob landed, so a registry reading the directory
//!      never sees a tag whose blobs are missing.
//!
//! Neither transfer prunes: blobs of other images already on the node stay.
//! An interrupted sync resumes: landed chunks are in the nodes' caches.
//!
//! Invariant: a source blob (`blobs/sha256/<xx>/<hex>/data`) whose content
//! does not hash to `<hex>` refuses the whole sync before anything is sent
//! (checked in the walk's one read). Agents verify every chunk against the
//! manifest, whose chunks are the bytes checked here, so what lands on a
//! node is the verified blob.

use std::path::Path;
use std::sync::Arc;

use ferry_shared::transfer::{RelPath, Topology};

use super::TransferError;
use super::relay::{Outcome, SenderStats, Target, relay};
use super::session::{NodeStats, Progress};
use super::source::{BuildOptions, Source, build_with};

/// The blob store inside a registry root.
pub const BLOBS: &str = "docker/registry/v2/blobs";
/// Where repositories (tags, links) live inside a registry root.
pub const REPOSITORIES: &str = "docker/registry/v2/repositories";

/// The two phases' manifests of a registry root.
#[derive(Debug)]
pub struct RegistrySources {
    pub blobs: Arc<Source>,
    pub rest: Arc<Source>,
}

/// The sha256 a registry root's relative path promises: that of
/// `docker/registry/v2/blobs/sha256/<xx>/<64 hex>/data` is `<64 hex>`.
pub fn blob_digest(rel: &str) -> Option<[u8; 32]> {
    let rest = rel.strip_prefix(BLOBS)?.strip_prefix("/sha256/")?;
    let mut parts = rest.split('/');
    let (_, hex, data) = (parts.next()?, parts.next()?, parts.next()?);
    if data != "data" || parts.next().is_some() || hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex, &mut out).ok()?;
    Some(out)
}

fn rel(p: &str) -> Result<RelPath, TransferError> {
    RelPath::new(p).map_err(TransferError::Path)
}

/// Walks and hashes `root` (a registry directory) for destination `dest`.
pub fn sources(root: &Path, dest: &str, chunk_size: u32) -> Result<RegistrySources, TransferError> {
    let v2 = root.join("docker/registry/v2");
    if !v2.is_dir() {
        return Err(TransferError::Io {
            what: "registry layout: expected a directory",
            path: v2,
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    let blobs = BuildOptions {
        prune: false,
        only: vec![rel(BLOBS)?],
        expect_sha256: Some(blob_digest),
        ..BuildOptions::new(chunk_size)
    };
    let rest = BuildOptions {
        prune: false,
        exclude: vec![rel(BLOBS)?],
        ..BuildOptions::new(chunk_size)
    };
    Ok(RegistrySources {
        blobs: Arc::new(build_with(root, dest, &blobs)?),
        rest: Arc::new(build_with(root, dest, &rest)?),
    })
}

fn add(a: &mut NodeStats, b: &NodeStats) {
    let (p, q) = (&mut a.progress, &b.progress);
    p.files_total += q.files_total;
    p.files_unchanged += q.files_unchanged;
    p.content_total += q.content_total;
    p.content_sent += q.content_sent;
    p.wire_sent += q.wire_sent;
    p.reused += q.reused;
    p.to_delete += q.to_delete;
    a.files_written += b.files_written;
    a.deleted += b.deleted;
    a.metadata_fixed += b.metadata_fixed;
    a.duration += b.duration;
}

fn add_sender(a: &mut SenderStats, b: &SenderStats) {
    a.chunks_sent += b.chunks_sent;
    a.content_bytes_sent += b.content_bytes_sent;
    a.wire_bytes_sent += b.wire_bytes_sent;
    a.rounds += b.rounds;
}

/// Syncs a registry to `targets`: blobs first (every node), then the rest
/// to the nodes whose blobs all landed. Per node: both phases' counters
/// summed, or the first failure. `on_progress` gets (target, phase 0|1,
/// counters).
pub async fn sync_registry(
    targets: Vec<Target>,
    src: &RegistrySources,
    topology: Topology,
    op: &str,
    on_progress: &(dyn Fn(usize, usize, &Progress) + Sync),
) -> Outcome {
    let phase = |suffix: &str, idx: &[usize]| -> Vec<Target> {
        idx.iter()
            .map(|i| Target {
                transfer_id: format!("{}-{suffix}", targets[*i].transfer_id),
                ..targets[*i].clone()
            })
            .collect()
    };
    let all: Vec<usize> = (0..targets.len()).collect();
    let first_cb = |i: usize, p: &Progress| on_progress(i, 0, p);
    let first = relay(
        phase("blobs", &all),
        src.blobs.clone(),
        topology,
        op,
        &first_cb,
    )
    .await;
    let mut sender = first.sender;
    let mut nodes: Vec<Result<NodeStats, TransferError>> = first.nodes;
    let ok: Vec<usize> = all.iter().copied().filter(|i| nodes[*i].is_ok()).collect();
    if !ok.is_empty() {
        let second_cb = |t: usize, p: &Progress| on_progress(ok[t], 1, p);
        let second = relay(
            phase("repos", &ok),
            src.rest.clone(),
            topology,
            op,
            &second_cb,
        )
        .await;
        add_sender(&mut sender, &second.sender);
        for (t, res) in second.nodes.into_iter().enumerate() {
            let i = ok[t];
            match (&mut nodes[i], res) {
                (Ok(a), Ok(b)) => add(a, &b),
                (slot, Err(e)) => *slot = Err(e),
                _ => {}
            }
        }
    }
    Outcome { nodes, sender }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_shared::transfer::MIN_CHUNK_SIZE;

    #[test]
    fn splits_blobs_from_repositories() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let blob = r.join("docker/registry/v2/blobs/sha256/ab/abcd");
        std::fs::create_dir_all(&blob).unwrap();
        std::fs::write(blob.join("data"), b"layer").unwrap();
        let tag = r.join("docker/registry/v2/repositories/app/_manifests/tags/v1/current");
        std::fs::create_dir_all(&tag).unwrap();
        std::fs::write(tag.join("link"), b"sha256:abcd").unwrap();
        let s = sources(r, "/var/lib/registry", MIN_CHUNK_SIZE).unwrap();
        let paths = |s: &Source| -> Vec<String> {
            s.manifest
                .entries()
                .iter()
                .map(|e| e.path.to_string())
                .collect()
        };
        let b = paths(&s.blobs);
        assert!(b.iter().any(|p| p.ends_with("abcd/data")), "{b:?}");
        assert!(!b.iter().any(|p| p.contains("repositories")), "{b:?}");
        let rest = paths(&s.rest);
        assert!(rest.iter().any(|p| p.ends_with("current/link")), "{rest:?}");
        assert!(!rest.iter().any(|p| p.contains("blobs")), "{rest:?}");
        assert!(!s.blobs.prune && !s.rest.prune);
        assert!(sources(&r.join("docker"), "/x/y", MIN_CHUNK_SIZE).is_err());
    }

    fn put_blob(root: &Path, data: &[u8]) -> (String, std::path::PathBuf) {
        use sha2::Digest;
        let hex = hex::encode(sha2::Sha256::digest(data));
        let dir = root.join(format!("{BLOBS}/sha256/{}/{hex}", &hex[..2]));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("data"), data).unwrap();
        (hex, dir.join("data"))
    }

    #[test]
    fn blob_paths_name_their_digest() {
        let hex = "ab".repeat(32);
        let p = format!("{BLOBS}/sha256/ab/{hex}/data");
        assert_eq!(blob_digest(&p), Some([0xab; 32]));
        for other in [
            format!("{BLOBS}/sha256/ab/{hex}"),
            format!("{BLOBS}/sha256/ab/{hex}/data/x"),
            format!("{BLOBS}/sha256/ab/{}/data", &hex[..62]),
            format!("{BLOBS}/sha256/ab/{}zz/data", &hex[..62]),
            format!("{BLOBS}/sha512/ab/{hex}/data"),
            format!("{REPOSITORIES}/app/_layers/sha256/{hex}/link"),
        ] {
            assert_eq!(blob_digest(&other), None, "{other}");
        }
    }

    #[test]
    fn a_tampered_blob_refuses_the_source() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        // Several chunks, so the whole-file hash spans chunk boundaries.
        let big: Vec<u8> = (0..3 * MIN_CHUNK_SIZE + 17)
            .map(|i| (i % 251) as u8)
            .collect();
        let (_, big_path) = put_blob(r, &big);
        put_blob(r, b"config");
        std::fs::create_dir_all(r.join(REPOSITORIES)).unwrap();
        let s = sources(r, "/var/lib/registry", MIN_CHUNK_SIZE).unwrap();
        assert_eq!(s.blobs.manifest.file_count(), 2);
        // Same size, one byte changed.
        let mut bad = big.clone();
        bad[MIN_CHUNK_SIZE as usize + 5] ^= 0xff;
        std::fs::write(&big_path, &bad).unwrap();
        let e = sources(r, "/var/lib/registry", MIN_CHUNK_SIZE).unwrap_err();
        let msg = e.to_string();
        use sha2::Digest;
        let (want, got) = (
            hex::encode(sha2::Sha256::digest(&big)),
            hex::encode(sha2::Sha256::digest(&bad)),
        );
        assert!(msg.contains(&big_path.display().to_string()), "{msg}");
        assert!(msg.contains(&format!("sha256:{want}")), "{msg}");
        assert!(msg.contains(&format!("sha256:{got}")), "{msg}");
        assert!(msg.contains("re-pull the image"), "{msg}");
        assert!(!msg.contains("more blob"), "{msg}");
        // A second bad blob is counted.
        let (_, small) = put_blob(r, b"layer");
        std::fs::write(&small, b"LAYER").unwrap();
        let msg = sources(r, "/x/reg", MIN_CHUNK_SIZE)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("and 1 more blob"), "{msg}");
        // Outside blobs/ (and without the option) nothing is checked.
        let plain = build_with(r, "/x/reg", &BuildOptions::new(MIN_CHUNK_SIZE)).unwrap();
        assert_eq!(plain.manifest.file_count(), 3);
    }
}

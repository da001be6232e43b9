//! The transfer service in-process over real mTLS: plan, push, commit,
//! no-op re-run, local reuse, corruption repair, bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ferry_proto::transfer_pb as pb;
use ferry_proto::transfer_pb::transfer_client::TransferClient;
use ferry_shared::transfer::ChunkHash;
use tonic::transport::Channel;

const CS: usize = 4096;

fn file(path: &str, data: &[u8], mode: u32) -> pb::Entry {
    pb::Entry {
        path: path.into(),
        kind: pb::EntryKind::File as i32,
        mode,
        size: data.len() as u64,
        chunks: data
            .chunks(CS)
            .map(|c| ChunkHash::of(c).0.to_vec())
            .collect(),
        mtime_ns: 1_700_000_000_000_000_000,
        ..Default::default()
    }
}

fn dir(path: &str) -> pb::Entry {
    pb::Entry {
        path: path.into(),
        kind: pb::EntryKind::Dir as i32,
        mode: 0o755,
        ..Default::default()
    }
}

fn link(path: &str, target: &str) -> pb::Entry {
    pb::Entry {
        path: path.into(),
        kind: pb::EntryKind::Symlink as i32,
        symlink_target: target.into(),
        ..Default::default()
    }
}

async fn client(a: &common::TestAgent) -> TransferClient<Channel> {
    common::transfer_client(a).await
}

async fn plan(
    c: &mut TransferClient<Channel>,
    id: &str,
    dest: &Path,
    entries: Vec<pb::Entry>,
) -> Result<pb::PlanReply, tonic::Status> {
    plan_with(c, id, dest, entries, true).await
}

async fn plan_with(
    c: &mut TransferClient<Channel>,
    id: &str,
    dest: &Path,
    entries: Vec<pb::Entry>,
    prune: bool,
) -> Result<pb::PlanReply, tonic::Status> {
    let header = pb::PlanHeader {
        transfer_id: id.into(),
        destination: dest.display().to_string(),
        chunk_size: CS as u32,
        prune,
        operation_id: "op".into(),
        entry_count: entries.len() as u64,
        exclude: Vec::new(),
    };
    let msgs = vec![
        pb::PlanRequest {
            msg: Some(pb::plan_request::Msg::Header(header)),
        },
        pb::PlanRequest {
            msg: Some(pb::plan_request::Msg::Entries(pb::EntryBatch { entries })),
        },
    ];
    c.plan(futures::stream::iter(msgs))
        .await
        .map(|r| r.into_inner())
}

/// Pushes the missing chunks found in `sources` (zstd-compressed): every
/// other chunk whole, the others in parts of 7 bytes (cut-through relay).
async fn push(c: &mut TransferClient<Channel>, id: &str, missing: &[Vec<u8>], sources: &[&[u8]]) {
    let mut frames = vec![pb::PushFrame {
        frame: Some(pb::push_frame::Frame::TransferId(id.into())),
    }];
    for (i, h) in missing.iter().enumerate() {
        let chunk = sources
            .iter()
            .flat_map(|s| s.chunks(CS))
            .find(|c| ChunkHash::of(c).0.as_slice() == h.as_slice())
            .unwrap();
        let whole = pb::Chunk {
            hash: h.clone(),
            raw_len: chunk.len() as u32,
            encoding: pb::ChunkEncoding::Zstd as i32,
            data: zstd::bulk::compress(chunk, 3).unwrap(),
            ..Default::default()
        };
        let parts = if i % 2 == 0 {
            vec![whole]
        } else {
            let wire_len = whole.data.len() as u32;
            whole
                .data
                .chunks(7)
                .enumerate()
                .map(|(k, d)| pb::Chunk {
                    data: d.to_vec(),
                    wire_len,
                    offset: (k * 7) as u32,
                    ..whole.clone()
                })
                .collect()
        };
        for p in parts {
            frames.push(pb::PushFrame {
                frame: Some(pb::push_frame::Frame::Chunk(p)),
            });
        }
    }
    let mut acks = c
        .push(futures::stream::iter(frames))
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while let Some(a) = acks.message().await.unwrap() {
        assert!(missing.contains(&a.hash));
        n += 1;
    }
    assert_eq!(n, missing.len());
}

#[tokio::test]
async fn plan_push_commit_then_no_op_then_repair() {
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_path_buf();
    let agent = common::start_agent(|c| c.transfer.cache_dir = cache_dir).await;
    let mut c = client(&agent).await;
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join("dest");
    std::fs::create_dir_all(dest.join("stale/deep")).unwrap();
    std::fs::write(dest.join("stale/deep/x"), b"old").unwrap();

    let big: Vec<u8> = (0..CS * 3 + 100).map(|i| (i % 251) as u8).collect();
    let small = b"hello".to_vec();
    let entries = || {
        vec![
            dir("d"),
            file("d/big", &big, 0o755),
            file("small", &small, 0o600),
            dir("empty"),
            link("l", "d/big"),
        ]
    };
    let r = plan(&mut c, "t1", &dest, entries()).await.unwrap();
    assert_eq!(r.missing.len(), 5, "4 chunks of big + small");
    assert_eq!(r.to_delete, 1);
    push(&mut c, "t1", &r.missing, &[&big, &small]).await;
    let done = c
        .commit(pb::CommitRequest {
            transfer_id: "t1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.files_written, 2);
    assert_eq!(std::fs::read(dest.join("d/big")).unwrap(), big);
    let mode = std::fs::metadata(dest.join("small"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o600);
    assert!(dest.join("empty").is_dir() && !dest.join("stale").exists());
    assert_eq!(
        std::fs::read_link(dest.join("l")).unwrap(),
        Path::new("d/big")
    );

    // The landed tree holds every chunk now: the cache gave up its copies.
    let cached = walk_files(&cache.path().join("chunks"));
    assert!(cached.is_empty(), "chunks left in the cache: {cached:?}");

    // No-op: nothing missing, everything unchanged.
    let r = plan(&mut c, "t2", &dest, entries()).await.unwrap();
    assert!(r.missing.is_empty() && r.files_unchanged == 2 && r.to_delete == 0);
    c.commit(pb::CommitRequest {
        transfer_id: "t2".into(),
    })
    .await
    .unwrap();

    // Corrupt a file on the node: detected; its chunk is sent again.
    std::fs::write(dest.join("small"), b"HELLO").unwrap();
    let r = plan(&mut c, "t3", &dest, entries()).await.unwrap();
    assert_eq!(r.files_unchanged, 1);
    assert_eq!(
        r.missing,
        vec![ChunkHash::of(&small).0.to_vec()],
        "only the damaged file's chunk"
    );
    push(&mut c, "t3", &r.missing, &[&small]).await;
    c.commit(pb::CommitRequest {
        transfer_id: "t3".into(),
    })
    .await
    .unwrap();
    assert_eq!(std::fs::read(dest.join("small")).unwrap(), small);

    // Renamed file with an empty cache: content is reused from the old path.
    std::fs::remove_dir_all(cache.path().join("chunks")).unwrap();
    let mut renamed = entries();
    renamed[1].path = "d/big2".into();
    renamed.sort_by(|a, b| a.path.cmp(&b.path));
    let r = plan(&mut c, "t4", &dest, renamed).await.unwrap();
    assert!(r.missing.is_empty(), "{:?}", r.missing.len());
    assert_eq!(r.reused_bytes, big.len() as u64);
    c.commit(pb::CommitRequest {
        transfer_id: "t4".into(),
    })
    .await
    .unwrap();
    assert_eq!(std::fs::read(dest.join("d/big2")).unwrap(), big);
    assert!(!dest.join("d/big").exists());
    agent.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_input_is_refused() {
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_path_buf();
    let agent = common::start_agent(|c| c.transfer.cache_dir = cache_dir).await;
    let mut c = client(&agent).await;
    let e = plan(&mut c, "x", Path::new("/"), vec![]).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    let e = plan(&mut c, "x", Path::new("/etc"), vec![])
        .await
        .unwrap_err();
    assert!(e.message().contains("top-level"), "{e}");
    let dest = tempfile::tempdir().unwrap();
    let e = plan(
        &mut c,
        "x",
        dest.path(),
        vec![file("../escape", b"x", 0o644)],
    )
    .await
    .unwrap_err();
    assert!(e.message().contains(".."), "{e}");
    let e = plan(&mut c, "x", dest.path(), vec![file("a/b", b"x", 0o644)])
        .await
        .unwrap_err();
    assert!(e.message().contains("parent"), "{e}");
    // A single-file copy (no prune) never removes a directory in its way.
    std::fs::create_dir_all(dest.path().join("conf/keep")).unwrap();
    let header = pb::PlanHeader {
        transfer_id: "f".into(),
        destination: dest.path().display().to_string(),
        chunk_size: CS as u32,
        prune: false,
        operation_id: "op".into(),
        entry_count: 1,
        exclude: Vec::new(),
    };
    let msgs = vec![
        pb::PlanRequest {
            msg: Some(pb::plan_request::Msg::Header(header)),
        },
        pb::PlanRequest {
            msg: Some(pb::plan_request::Msg::Entries(pb::EntryBatch {
                entries: vec![file("conf", b"x", 0o644)],
            })),
        },
    ];
    let e = c.plan(futures::stream::iter(msgs)).await.unwrap_err();
    assert!(e.message().contains("is a directory"), "{e}");
    assert!(dest.path().join("conf/keep").is_dir());
    let e = c
        .commit(pb::CommitRequest {
            transfer_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    // A chunk whose content does not match its hash.
    let frames = vec![pb::PushFrame {
        frame: Some(pb::push_frame::Frame::Chunk(pb::Chunk {
            hash: ChunkHash::of(b"a").0.to_vec(),
            raw_len: 1,
            encoding: pb::ChunkEncoding::Raw as i32,
            data: b"b".to_vec(),
            ..Default::default()
        })),
    }];
    let mut acks = c
        .push(futures::stream::iter(frames))
        .await
        .unwrap()
        .into_inner();
    let e = acks.message().await.unwrap_err();
    assert!(e.message().contains("does not match"), "{e}");
    agent.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_interrupted_push_resumes_without_resending_what_landed() {
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_path_buf();
    let agent = common::start_agent(|c| c.transfer.cache_dir = cache_dir).await;
    let mut c = client(&agent).await;
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join("dest");
    let big: Vec<u8> = (0..CS * 6).map(|i| (i * 7 % 253) as u8).collect();
    let entries = || vec![file("big", &big, 0o644)];
    let r = plan(&mut c, "i1", &dest, entries()).await.unwrap();
    assert_eq!(r.missing.len(), 6);
    // Only half the chunks arrive before the sender goes away.
    push(&mut c, "i1", &r.missing[..3], &[&big]).await;
    let e = c
        .commit(pb::CommitRequest {
            transfer_id: "i1".into(),
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("3 chunks are still missing"), "{e}");
    assert!(!dest.join("big").exists(), "nothing half-written");
    // A re-run asks only for the rest.
    let r2 = plan(&mut c, "i2", &dest, entries()).await.unwrap();
    assert_eq!(r2.missing, r.missing[3..].to_vec());
    push(&mut c, "i2", &r2.missing, &[&big]).await;
    c.commit(pb::CommitRequest {
        transfer_id: "i2".into(),
    })
    .await
    .unwrap();
    assert_eq!(std::fs::read(dest.join("big")).unwrap(), big);
    agent.shutdown().await.unwrap();
}

async fn commit(
    c: &mut TransferClient<Channel>,
    id: &str,
) -> Result<pb::CommitReply, tonic::Status> {
    c.commit(pb::CommitRequest {
        transfer_id: id.into(),
    })
    .await
    .map(|r| r.into_inner())
}

/// An agent with its own cache dir (kept alive by the returned guard).
async fn agent_with_cache() -> (
    tempfile::TempDir,
    common::TestAgent,
    TransferClient<Channel>,
) {
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_path_buf();
    let agent = common::start_agent(|c| c.transfer.cache_dir = cache_dir).await;
    let c = client(&agent).await;
    (cache, agent, c)
}

/// Mode, owner and content of every entry under `dir`, for "nothing
/// changed" checks.
fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, u32, u32, Vec<u8>)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let m = std::fs::symlink_metadata(&d).unwrap();
        let data = if m.is_file() {
            std::fs::read(&d).unwrap()
        } else {
            Vec::new()
        };
        out.push((d.clone(), m.mode(), m.uid(), data));
        if m.is_dir() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn a_copy_keeps_what_the_destination_held_and_a_symlinked_root_is_refused() {
    let (_cache, agent, mut c) = agent_with_cache().await;
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join("dest");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(dest.join("keep.txt"), b"keep").unwrap();
    let data = b"new".to_vec();
    let r = plan_with(
        &mut c,
        "k",
        &dest,
        vec![file("new.txt", &data, 0o644)],
        false,
    )
    .await
    .unwrap();
    assert_eq!(r.to_delete, 0);
    push(&mut c, "k", &r.missing, &[&data]).await;
    assert_eq!(commit(&mut c, "k").await.unwrap().deleted, 0);
    assert_eq!(std::fs::read(dest.join("keep.txt")).unwrap(), b"keep");
    assert_eq!(std::fs::read(dest.join("new.txt")).unwrap(), data);

    // /root/link -> /root/victim: refused, with or without prune, and the
    // victim keeps everything.
    let victim = root.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("keep.txt"), b"keep").unwrap();
    let link = root.path().join("link");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let before = snapshot(&victim);
    for prune in [true, false] {
        let e = plan_with(&mut c, "v", &link, vec![file("x", &data, 0o644)], prune)
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e}");
        assert!(e.message().contains("is a symlink"), "{e}");
        assert!(e.message().contains(&victim.display().to_string()), "{e}");
    }
    assert_eq!(snapshot(&victim), before, "nothing written");
    agent.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_symlink_swapped_in_after_the_plan_redirects_nothing() {
    let (_cache, agent, mut c) = agent_with_cache().await;
    let root = tempfile::tempdir().unwrap();
    let (dest, outside) = (root.path().join("dest"), root.path().join("outside"));
    std::fs::create_dir_all(dest.join("sub")).unwrap();
    std::fs::write(dest.join("sub/conf"), b"old").unwrap();
    std::fs::write(dest.join("meta-only"), b"same").unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("conf"), b"outside").unwrap();
    std::fs::write(outside.join("meta-only"), b"same").unwrap();
    for p in [outside.join("conf"), outside.join("meta-only")] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::chown(&p, Some(1234), Some(1234)).unwrap();
    }
    let data = b"new content".to_vec();
    let entries = || {
        vec![
            file("meta-only", b"same", 0o600),
            dir("sub"),
            file("sub/conf", &data, 0o600),
        ]
    };
    let before = snapshot(&outside);
    // A directory on the way becomes a symlink to `outside`.
    let r = plan(&mut c, "s1", &dest, entries()).await.unwrap();
    push(&mut c, "s1", &r.missing, &[&data]).await;
    std::fs::rename(dest.join("sub"), root.path().join("sub.moved")).unwrap();
    std::os::unix::fs::symlink(&outside, dest.join("sub")).unwrap();
    let e = commit(&mut c, "s1").await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e}");
    assert!(e.message().contains("is a symlink"), "{e}");
    assert_eq!(
        snapshot(&outside),
        before,
        "nothing written through the link"
    );
    assert_eq!(std::fs::read(dest.join("meta-only")).unwrap(), b"same");
    std::fs::remove_file(dest.join("sub")).unwrap();
    std::fs::rename(root.path().join("sub.moved"), dest.join("sub")).unwrap();

    // A file whose mode only is fixed becomes a symlink: no chmod/chown
    // of its target.
    let r = plan(&mut c, "s2", &dest, entries()).await.unwrap();
    push(&mut c, "s2", &r.missing, &[&data]).await;
    std::fs::remove_file(dest.join("meta-only")).unwrap();
    std::os::unix::fs::symlink(outside.join("meta-only"), dest.join("meta-only")).unwrap();
    let e = commit(&mut c, "s2").await.unwrap_err();
    assert!(e.message().contains("is a symlink"), "{e}");
    assert_eq!(
        snapshot(&outside),
        before,
        "no chmod/chown through the link"
    );
    std::fs::remove_file(dest.join("meta-only")).unwrap();
    std::fs::write(dest.join("meta-only"), b"same").unwrap();

    // The root itself becomes a symlink.
    let r = plan(&mut c, "s3", &dest, entries()).await.unwrap();
    push(&mut c, "s3", &r.missing, &[&data]).await;
    std::fs::rename(&dest, root.path().join("dest.moved")).unwrap();
    std::os::unix::fs::symlink(&outside, &dest).unwrap();
    let e = commit(&mut c, "s3").await.unwrap_err();
    assert!(e.message().contains("is a symlink"), "{e}");
    assert_eq!(
        snapshot(&outside),
        before,
        "nothing written through the root"
    );
    agent.shutdown().await.unwrap();
}

#[tokio::test]
async fn staged_chunks_are_private_after_an_interrupted_push() {
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().join("cache");
    let dir = cache_dir.clone();
    let agent = common::start_agent(|c| c.transfer.cache_dir = dir).await;
    let mut c = client(&agent).await;
    let root = tempfile::tempdir().unwrap();
    let secret: Vec<u8> = (0..CS * 2).map(|i| (i * 13 % 251) as u8).collect();
    let r = plan(
        &mut c,
        "p",
        &root.path().join("dest"),
        vec![file("key", &secret, 0o600)],
    )
    .await
    .unwrap();
    push(&mut c, "p", &r.missing[..1], &[&secret]).await;
    let staged = walk_files(&cache_dir.join("chunks"));
    assert_eq!(staged.len(), 1);
    for f in &staged {
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
    let mut d = staged[0].parent().unwrap();
    while d.starts_with(&cache_dir) {
        let mode = std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
        d = d.parent().unwrap();
    }
    agent.shutdown().await.unwrap();
}

/// Regular files under `dir` (none if it does not exist).
fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

//! The transfer protocol edge of the agent: prost ↔ domain. Invalid input
//! is rejected here with `InvalidArgument`.

use ferry_proto::transfer_pb as pb;
use ferry_shared::transfer::{
    ChunkHash, DestRoot, Entry, EntryKind, MIN_MTIME_NS, Meta, RelPath, chunk_count,
};
use tonic::Status;

use super::TransferError;
use super::apply::Applied;

pub fn entry(e: pb::Entry, chunk_size: u32) -> Result<Entry, Status> {
    let path = RelPath::new(e.path).map_err(|err| Status::invalid_argument(err.to_string()))?;
    let bad = |reason: &str| Status::invalid_argument(format!("entry `{path}`: {reason}"));
    let kind = match pb::EntryKind::try_from(e.kind) {
        Ok(pb::EntryKind::Dir) => EntryKind::Dir,
        Ok(pb::EntryKind::Symlink) => EntryKind::Symlink {
            target: e.symlink_target,
        },
        Ok(pb::EntryKind::File) => {
            if e.chunks.len() as u64 != chunk_count(e.size, chunk_size) {
                return Err(bad("chunk list does not match the size"));
            }
            let chunks = e
                .chunks
                .iter()
                .map(|c| ChunkHash::from_slice(c))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| bad(&err.to_string()))?;
            if e.mtime_ns < MIN_MTIME_NS {
                return Err(bad(&format!(
                    "mtime {} ns is before 1901-12-13, which no node file system keeps; give the source file a later time (touch it)",
                    e.mtime_ns
                )));
            }
            EntryKind::File {
                size: e.size,
                chunks,
                mtime_ns: e.mtime_ns,
            }
        }
        _ => return Err(bad("unknown entry kind")),
    };
    Ok(Entry {
        path,
        meta: Meta {
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
        },
        kind,
    })
}

pub fn rel_path(s: &str) -> Result<RelPath, Status> {
    RelPath::new(s).map_err(|e| Status::invalid_argument(format!("excluded path: {e}")))
}

pub fn destination(s: String) -> Result<DestRoot, Status> {
    DestRoot::new(s).map_err(|e| Status::invalid_argument(e.to_string()))
}

pub fn hash(b: &[u8]) -> Result<ChunkHash, Status> {
    ChunkHash::from_slice(b).map_err(|e| Status::invalid_argument(e.to_string()))
}

pub fn commit_reply(a: Applied) -> pb::CommitReply {
    pb::CommitReply {
        files_written: a.files_written,
        files_unchanged: a.files_unchanged,
        metadata_fixed: a.metadata_fixed,
        symlinks_written: a.symlinks_written,
        dirs_created: a.dirs_created,
        deleted: a.deleted,
        bytes_written: a.bytes_written,
    }
}

pub fn error(e: &TransferError) -> Status {
    match e {
        TransferError::NoSession(_)
        | TransferError::MissingChunks { .. }
        | TransferError::DirectoryInTheWay(_)
        | TransferError::NotADirectory(_)
        | TransferError::SymlinkRoot { .. }
        | TransferError::SymlinkInTheWay(_)
        | TransferError::TypeChanged(_) => Status::failed_precondition(e.to_string()),
        TransferError::BadChunk(_) | TransferError::Manifest(_) => {
            Status::invalid_argument(e.to_string())
        }
        TransferError::Busy(_) => Status::resource_exhausted(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

//! The coordinator's transfer protocol edge: domain → prost.

use ferry_proto::transfer_pb as pb;
use ferry_shared::transfer::{Entry, EntryKind};

pub fn entry(e: &Entry) -> pb::Entry {
    let mut out = pb::Entry {
        path: e.path.to_string(),
        mode: e.meta.mode,
        uid: e.meta.uid,
        gid: e.meta.gid,
        ..Default::default()
    };
    match &e.kind {
        EntryKind::Dir => out.kind = pb::EntryKind::Dir as i32,
        EntryKind::File {
            size,
            chunks,
            mtime_ns,
        } => {
            out.kind = pb::EntryKind::File as i32;
            out.size = *size;
            out.chunks = chunks.iter().map(|h| h.0.to_vec()).collect();
            out.mtime_ns = *mtime_ns;
        }
        EntryKind::Symlink { target } => {
            out.kind = pb::EntryKind::Symlink as i32;
            out.symlink_target = target.clone();
        }
    }
    out
}

//! A Plan request as the agent decodes it: the header, then entry batches,
//! checked message by message and turned into a manifest. The gRPC handler
//! feeds the stream through [`PlanDecoder`]; the fuzz target
//! (`fuzz/fuzz_targets/transfer_plan.rs`) feeds it decoded bytes, so both
//! see the same validation. Every refusal is `InvalidArgument`.

use ferry_proto::transfer_pb as pb;
use ferry_shared::transfer::{DestRoot, Entry, Manifest, RelPath};
use tonic::Status;

use super::convert;

/// Entries a manifest may hold.
pub const MAX_ENTRIES: u64 = 10_000_000;

/// A Plan request that passed every check, ready to plan.
#[derive(Debug)]
pub struct DecodedPlan {
    pub transfer_id: String,
    pub operation_id: String,
    pub dest: DestRoot,
    pub prune: bool,
    pub manifest: Manifest,
    pub exclude: Vec<RelPath>,
}

/// Checks a Plan stream as it arrives.
#[derive(Debug)]
pub struct PlanDecoder {
    header: pb::PlanHeader,
    dest: DestRoot,
    entries: Vec<Entry>,
}

impl PlanDecoder {
    /// Starts from the stream's first message, which must be the header.
    pub fn start(first: Option<pb::PlanRequest>) -> Result<Self, Status> {
        let header = match first {
            Some(pb::PlanRequest {
                msg: Some(pb::plan_request::Msg::Header(h)),
            }) => h,
            _ => return Err(Status::invalid_argument("Plan must start with a header")),
        };
        let dest = convert::destination(header.destination.clone())?;
        if header.prune && !dest.may_prune() {
            return Err(Status::invalid_argument(format!(
                "refusing to mirror onto the top-level directory {dest}: everything not in the source would be removed"
            )));
        }
        if header.entry_count > MAX_ENTRIES {
            return Err(Status::invalid_argument("manifest has too many entries"));
        }
        Ok(Self {
            header,
            dest,
            entries: Vec::new(),
        })
    }

    pub fn transfer_id(&self) -> &str {
        &self.header.transfer_id
    }

    /// The entries the header announced (at most [`MAX_ENTRIES`]).
    pub fn entry_count(&self) -> u64 {
        self.header.entry_count
    }

    /// Takes one later message: an entry batch (a second header is refused).
    pub fn add(&mut self, msg: pb::PlanRequest) -> Result<(), Status> {
        let Some(pb::plan_request::Msg::Entries(batch)) = msg.msg else {
            return Err(Status::invalid_argument("a second Plan header"));
        };
        for e in batch.entries {
            if self.entries.len() as u64 >= self.header.entry_count {
                return Err(Status::invalid_argument("more entries than announced"));
            }
            self.entries
                .push(convert::entry(e, self.header.chunk_size)?);
        }
        Ok(())
    }

    /// Ends the stream: all announced entries arrived, they make a valid
    /// manifest, and no excluded path is in it.
    pub fn finish(self) -> Result<DecodedPlan, Status> {
        let h = self.header;
        if self.entries.len() as u64 != h.entry_count {
            return Err(Status::invalid_argument(format!(
                "manifest ended after {} of {} entries",
                self.entries.len(),
                h.entry_count
            )));
        }
        let manifest = Manifest::new(h.chunk_size, self.entries)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let exclude = h
            .exclude
            .iter()
            .map(|x| convert::rel_path(x))
            .collect::<Result<Vec<_>, _>>()?;
        for x in &exclude {
            let inside = format!("{}/", x.as_str());
            if manifest
                .entries()
                .iter()
                .any(|e| e.path.as_str() == x.as_str() || e.path.as_str().starts_with(&inside))
            {
                return Err(Status::invalid_argument(format!(
                    "excluded path `{x}` is in the manifest"
                )));
            }
        }
        Ok(DecodedPlan {
            transfer_id: h.transfer_id,
            operation_id: h.operation_id,
            dest: self.dest,
            prune: h.prune,
            manifest,
            exclude,
        })
    }
}

/// Decodes a whole Plan request sequence at once (tests, the fuzz target).
pub fn decode_plan(msgs: impl IntoIterator<Item = pb::PlanRequest>) -> Result<DecodedPlan, Status> {
    let mut msgs = msgs.into_iter();
    let mut d = PlanDecoder::start(msgs.next())?;
    for m in msgs {
        d.add(m)?;
    }
    d.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn header(entry_count: u64, exclude: &[&str]) -> pb::PlanRequest {
        pb::PlanRequest {
            msg: Some(pb::plan_request::Msg::Header(pb::PlanHeader {
                transfer_id: "t".into(),
                destination: "/opt/x".into(),
                chunk_size: 1 << 20,
                prune: true,
                operation_id: "op".into(),
                entry_count,
                exclude: exclude.iter().map(|s| (*s).to_owned()).collect(),
            })),
        }
    }

    fn dirs(paths: &[&str]) -> pb::PlanRequest {
        let entries = paths
            .iter()
            .map(|p| pb::Entry {
                path: (*p).to_owned(),
                kind: pb::EntryKind::Dir as i32,
                mode: 0o755,
                ..Default::default()
            })
            .collect();
        pb::PlanRequest {
            msg: Some(pb::plan_request::Msg::Entries(pb::EntryBatch { entries })),
        }
    }

    #[test]
    fn a_plan_decodes_into_a_manifest() {
        let p = decode_plan([header(2, &["skip"]), dirs(&["a"]), dirs(&["a/b"])]).unwrap();
        assert_eq!(p.transfer_id, "t");
        assert_eq!(p.manifest.entries().len(), 2);
        assert_eq!(p.exclude.len(), 1);
    }

    fn file_with_mtime(mtime_ns: i64) -> pb::PlanRequest {
        let data = b"x";
        let entries = vec![pb::Entry {
            path: "f".into(),
            kind: pb::EntryKind::File as i32,
            mode: 0o644,
            size: 1,
            chunks: vec![ferry_shared::transfer::ChunkHash::of(data).0.to_vec()],
            mtime_ns,
            ..Default::default()
        }];
        pb::PlanRequest {
            msg: Some(pb::plan_request::Msg::Entries(pb::EntryBatch { entries })),
        }
    }

    #[test]
    fn far_past_mtimes_are_refused_and_far_future_ones_apply() {
        let e = decode_plan([header(1, &[]), file_with_mtime(i64::MIN)]).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("entry `f`: mtime"), "{}", e.message());
        assert!(e.message().contains("before 1901"), "{}", e.message());
        let min = ferry_shared::transfer::MIN_MTIME_NS;
        decode_plan([header(1, &[]), file_with_mtime(min - 1)]).unwrap_err();
        // u64::MAX read as int64 is -1 ns: 1969, fine.
        for ok in [min, u64::MAX as i64, 0, i64::MAX] {
            let p = decode_plan([header(1, &[]), file_with_mtime(ok)]).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let f = std::fs::File::create(dir.path().join("f")).unwrap();
            let e = &p.manifest.entries()[0];
            // What Commit does with it: no panic, and it reads back.
            super::super::apply::apply_meta_fd(&f, &dir.path().join("f"), e).unwrap();
            use std::os::unix::fs::MetadataExt;
            let m = f.metadata().unwrap();
            let back = ferry_shared::transfer::mtime_ns(m.mtime(), m.mtime_nsec());
            assert_eq!(back, ok);
        }
    }

    #[test]
    fn malformed_streams_are_refused() {
        let msg = |r: Result<DecodedPlan, Status>| r.unwrap_err().message().to_owned();
        assert!(msg(decode_plan([dirs(&["a"])])).contains("must start with a header"));
        assert!(msg(decode_plan([header(1, &[]), dirs(&["a", "b"])])).contains("more entries"));
        assert!(msg(decode_plan([header(2, &[]), dirs(&["a"])])).contains("after 1 of 2"));
        assert!(msg(decode_plan([header(0, &[]), header(0, &[])])).contains("second Plan header"));
        assert!(msg(decode_plan([header(1, &["a"]), dirs(&["a"])])).contains("excluded path"));
    }
}

//! The agent's Plan edge: a stream of `PlanRequest` messages, each decoded
//! from protobuf as tonic would, checked and turned into a manifest by
//! `ferry_agent::transfer::decode`. Input: length-delimited messages.
#![no_main]

use ferry_agent::transfer::decode::decode_plan;
use ferry_proto::transfer_pb as pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    let mut msgs = Vec::new();
    while !buf.is_empty() {
        match pb::PlanRequest::decode_length_delimited(&mut buf) {
            Ok(m) => msgs.push(m),
            Err(_) => return,
        }
    }
    if let Ok(plan) = decode_plan(msgs) {
        let _ = plan.manifest.file_count();
        let _ = plan.dest.may_prune();
    }
});

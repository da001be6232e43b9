//! Unpacking one image layer (plain, gzip or zstd tar, sniffed) into a
//! fresh directory, then a second layer of the same bytes over it
//! (whiteouts, hardlinks to lower layers). Limits are small so a run
//! spends its time on structure, not on writing bytes.
#![no_main]

use ferry_coordinator::image::unpack::{LayerId, UnpackOptions, unpack_layer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(dir) = ferry_fuzz::scratch_dir() else {
        return;
    };
    let opts = UnpackOptions {
        max_entry_size: 1 << 20,
        max_total_size: 4 << 20,
        max_entries: 4096,
        max_header_size: 64 << 10,
        ..UnpackOptions::default()
    };
    for index in 0..2 {
        let layer = LayerId {
            index,
            digest: "sha256:fuzz".to_owned(),
        };
        if unpack_layer(data, dir.path(), &layer, &opts).is_err() {
            break;
        }
    }
});

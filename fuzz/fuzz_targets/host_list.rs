//! sealos host lists (`10.0.0.1-10.0.0.9,10.0.1.1:2222,[::1]:22`).
#![no_main]

use ferry_shared::parse_host_list;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_host_list(text);
    }
});

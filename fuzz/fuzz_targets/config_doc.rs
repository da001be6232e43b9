//! Config documents (`kind: Config`): parsed, then applied (merge or
//! overwrite) to an existing file. Input: the documents, a NUL byte, the
//! existing file's text.
#![no_main]

use ferry_shared::config_doc::parse_config_docs;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (docs, existing) = match text.split_once('\0') {
        Some((d, e)) => (d, Some(e)),
        None => (text, None),
    };
    let Ok(docs) = parse_config_docs(docs) else {
        return;
    };
    for doc in &docs {
        let _ = doc.matches("fuzz/image:v1");
        let _ = doc.apply_to(existing);
    }
});

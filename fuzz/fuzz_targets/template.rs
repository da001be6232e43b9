//! The template engine (Go text/template syntax plus sprig-like functions)
//! on an untrusted template, with env and `.Values` data.
#![no_main]

use std::collections::BTreeMap;

use ferry_shared::template::{TemplateData, output_name, render, render_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env: BTreeMap<String, String> = [
        ("HostIP", "10.0.0.1"),
        ("SEALOS_SYS_KUBE_VERSION", "v1.30.0"),
        ("list", "a,b,c"),
        ("n", "3"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let plain = TemplateData::from_env(env.clone());
    let _ = render("fuzz", text, &plain);
    let values = serde_json::json!({"a": {"b": [1, "two", null, true]}, "s": "x"});
    let _ = render_bytes(
        "fuzz",
        text,
        &TemplateData::from_env(env).with_values(values),
    );
    let _ = output_name(text);
});

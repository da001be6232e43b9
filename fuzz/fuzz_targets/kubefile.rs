//! The Kubefile parser, its resolution with build args (shell words,
//! `$VAR` expansion), and ignore-file rules matched against a path.
#![no_main]

use ferry_shared::kubefile::{BuildArgs, IgnoreRules, Kubefile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(kf) = Kubefile::parse(text) {
        let mut args = BuildArgs::new();
        args.insert("VERSION".to_owned(), "v1.2.3".to_owned());
        let _ = kf.resolve(&args, &["PATH=/usr/bin".to_owned(), "A=b".to_owned()]);
    }
    // Ignore rules, then after a NUL byte a path to match against them.
    let (rules, path) = text
        .split_once('\0')
        .unwrap_or((text, "etc/kubernetes/admin.conf"));
    if let Ok(rules) = IgnoreRules::parse(rules) {
        let _ = rules.is_excluded(path);
    }
});

#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Renders every `templates/NAME.tmpl` with `NAME.env` and compares the result
//! byte for byte with `NAME.expected` (Go `text/template` output).

use std::collections::BTreeMap;
use std::path::Path;

use ferry_shared::template::{TemplateData, render};

fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=VALUE line");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[test]
fn corpus_matches_go_output() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/templates");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".tmpl").map(str::to_owned)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 20, "corpus has {} templates", names.len());
    let mut failures = Vec::new();
    for name in &names {
        let tmpl = std::fs::read_to_string(dir.join(format!("{name}.tmpl"))).unwrap();
        let env = std::fs::read_to_string(dir.join(format!("{name}.env"))).unwrap();
        let expected = std::fs::read_to_string(dir.join(format!("{name}.expected"))).unwrap();
        match render(name, &tmpl, &TemplateData::from_env(parse_env(&env))) {
            Ok(out) if out == expected => {}
            Ok(out) => failures.push(format!(
                "{name}: mismatch\n--- expected\n{expected:?}\n--- got\n{out:?}"
            )),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

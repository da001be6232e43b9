#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Byte-for-byte comparison of ferry's template engine with Go's own
//! `text/template`.
//!
//! `go-oracle/` is a standard-library Go program (see its `main.go` for the
//! case format): it renders every case of `go-oracle/corpus/` with Go and
//! prints the output bytes, or that parsing or executing failed. This test
//! builds it once with the `go` on PATH (missing Go is a failure, not a
//! skip), renders the same cases with `ferry_shared::template`, and asserts
//! that both succeed with identical bytes or both fail.
//!
//! The cases named `known-*` are the differences ferry documents
//! (`ferry_shared::template`); they are listed in [`KNOWN`] and must still
//! differ the way listed, so the list and the docs stay true.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ferry_shared::template::{TemplateData, render_bytes};

/// How a `known-*` case differs from Go.
enum Known {
    /// ferry refuses what Go renders (a clear error, not a wrong value).
    Refused,
    /// ferry renders something else.
    Differs,
}

const KNOWN: &[(&str, Known, &str)] = &[
    (
        "known-bytes-printf-width",
        Known::Refused,
        "printf with flags, width or precision on bytes that are not UTF-8",
    ),
    (
        "known-complex-constant",
        Known::Refused,
        "complex constants: ferry has no complex values",
    ),
    (
        "known-float-zero-truth",
        Known::Differs,
        "gtmpl-ng's if/with/and/or take a float zero as true",
    ),
    (
        "known-index-byte-type",
        Known::Differs,
        "a byte from index has %T int (Go: uint8)",
    ),
];

/// What Go did with one case.
#[derive(Debug)]
enum GoResult {
    Ok(Vec<u8>),
    Failed { phase: String, message: String },
}

fn oracle_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go-oracle")
}

/// Runs `go` with the oracle's settings: the machine's toolchain only,
/// modules as go.mod says, no cgo.
fn go(args: &[&str]) -> Command {
    let mut cmd = Command::new("go");
    cmd.args(args)
        .current_dir(oracle_dir())
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0");
    cmd
}

/// Builds the oracle into this test's target tmpdir, once per Go version
/// and oracle source (a stamp records both). The Go build cache is a
/// temporary directory, removed after the build (~45 MB, ~12 s cold).
fn build_oracle() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-oracle");
    let (bin, stamp) = (dir.join("template-oracle"), dir.join("stamp"));
    let version = go(&["version"]).output().unwrap_or_else(|e| {
        panic!(
            "cannot run `go` for the text/template oracle ({e}); \
             install Go (https://go.dev/dl) and put `go` on PATH"
        )
    });
    assert!(version.status.success(), "`go version` failed");
    let mut want = version.stdout;
    for file in ["go.mod", "main.go"] {
        want.extend(std::fs::read(oracle_dir().join(file)).unwrap());
    }
    if bin.exists() && std::fs::read(&stamp).is_ok_and(|have| have == want) {
        return bin;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = go(&["build", "-trimpath", "-o"])
        .arg(&bin)
        .arg(".")
        .env("GOCACHE", cache.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "go build of {} failed:\n{}",
        oracle_dir().display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&stamp, want).unwrap();
    bin
}

fn run_oracle(bin: &Path, corpus: &Path) -> BTreeMap<String, GoResult> {
    let out = Command::new(bin).arg(corpus).output().unwrap();
    assert!(
        out.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .map(|line| {
            let mut parts = line.splitn(3, '\t');
            let (name, phase, payload) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                hex::decode(parts.next().unwrap()).unwrap(),
            );
            let result = match phase {
                "ok" => GoResult::Ok(payload),
                _ => GoResult::Failed {
                    phase: phase.to_owned(),
                    message: String::from_utf8_lossy(&payload).into_owned(),
                },
            };
            (name.to_owned(), result)
        })
        .collect()
}

fn template_count(corpus: &Path) -> usize {
    std::fs::read_dir(corpus)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "tmpl")
        })
        .count()
}

fn case_data(corpus: &Path, name: &str) -> TemplateData {
    let path = corpus.join(format!("{name}.json"));
    let env: BTreeMap<String, String> = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap(),
        Err(_) => BTreeMap::new(),
    };
    TemplateData::from_env(env)
}

fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

#[test]
fn corpus_matches_go_text_template() {
    let corpus = oracle_dir().join("corpus");
    let go = run_oracle(&build_oracle(), &corpus);
    assert_eq!(go.len(), template_count(&corpus), "oracle skipped cases");
    assert!(go.len() >= 40, "corpus has {} cases", go.len());
    assert!(
        KNOWN.iter().all(|(k, ..)| go.contains_key(*k)),
        "a KNOWN case is missing from the corpus"
    );
    let mut failures = Vec::new();
    for name in go.keys() {
        let text = std::fs::read_to_string(corpus.join(format!("{name}.tmpl"))).unwrap();
        let ferry = render_bytes(name, &text, &case_data(&corpus, name));
        let known = KNOWN.iter().find(|(k, ..)| k == name);
        assert_eq!(
            known.is_some(),
            name.starts_with("known-"),
            "{name}: known-* cases and KNOWN must agree"
        );
        if let Some((_, expect, why)) = known {
            let still = match (expect, &go[name], &ferry) {
                (Known::Refused, GoResult::Ok(_), Err(_)) => true,
                (Known::Differs, GoResult::Ok(want), Ok(got)) => want != got,
                _ => false,
            };
            if !still {
                failures.push(format!(
                    "{name}: no longer differs as documented ({why}); go: {:?}, ferry: {:?}",
                    go[name], ferry
                ));
            }
            continue;
        }
        match (&go[name], ferry) {
            (GoResult::Ok(want), Ok(got)) if *want == got => {}
            (GoResult::Ok(want), Ok(got)) => failures.push(format!(
                "{name}: output differs\n  go:    {}\n  ferry: {}",
                show(want),
                show(&got)
            )),
            (GoResult::Ok(want), Err(e)) => failures.push(format!(
                "{name}: go renders {} but ferry fails: {e}",
                show(want)
            )),
            (GoResult::Failed { phase, message }, Ok(got)) => failures.push(format!(
                "{name}: go fails ({phase}: {message}) but ferry renders {}",
                show(&got)
            )),
            (GoResult::Failed { .. }, Err(_)) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from Go:\n{}",
        failures.len(),
        go.len(),
        failures.join("\n")
    );
}

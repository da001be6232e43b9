//! Journal records: one line per step attempt (`~/.ferry/<cluster>/
//! journal.jsonl`, written by the coordinator). A step is skipped on a
//! re-run when its last record for the host says `done` with the same
//! inputs digest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Step;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Done,
    Failed,
    /// The step's effects were undone (delete/reset): it must run again.
    Undone,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRecord {
    pub ts_ms: i64,
    pub op: String,
    pub step: Step,
    /// Empty for cluster-wide steps.
    pub host: String,
    pub digest: String,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Journal key of one part of a step on a host (one image's commands, one
/// distributed tree): `<host>#<part>`. Parts are journaled and skipped on
/// their own; a teardown of the host undoes them with the host.
pub fn part_key(host: &str, part: &str) -> String {
    if part.is_empty() {
        host.to_string()
    } else {
        format!("{host}#{part}")
    }
}

/// The host a journal key belongs to (`<host>` of `<host>#<part>`).
pub fn key_host(key: &str) -> &str {
    key.split_once('#').map_or(key, |(h, _)| h)
}

/// `sha256:<hex>` over the parts, each length-prefixed (no ambiguity).
pub fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// The last record of every (step, host).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Journal {
    last: BTreeMap<(Step, String), JournalRecord>,
}

impl Journal {
    /// Folds records in file order; lines that do not parse are returned
    /// (a torn last line after a crash is expected).
    pub fn from_lines(text: &str) -> (Self, Vec<String>) {
        let mut j = Self::default();
        let mut bad = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<JournalRecord>(line) {
                Ok(r) => j.record(r),
                Err(_) => bad.push(line.to_string()),
            }
        }
        (j, bad)
    }

    pub fn record(&mut self, r: JournalRecord) {
        self.last.insert((r.step, r.host.clone()), r);
    }

    /// Whether `step` on `host` finished with exactly these inputs.
    pub fn is_done(&self, step: Step, host: &str, digest: &str) -> bool {
        self.last
            .get(&(step, host.to_string()))
            .is_some_and(|r| r.outcome == Outcome::Done && r.digest == digest)
    }

    /// Whether `step` on `host` ever finished (any inputs) and was not undone.
    pub fn ever_done(&self, step: Step, host: &str) -> bool {
        self.last
            .get(&(step, host.to_string()))
            .is_some_and(|r| r.outcome == Outcome::Done)
    }

    /// Every key of `step` on `host` (the host's own and its parts') whose
    /// last record is not `undone`.
    pub fn live_keys(&self, step: Step, host: &str) -> Vec<String> {
        self.last
            .iter()
            .filter(|((s, k), r)| *s == step && key_host(k) == host && r.outcome != Outcome::Undone)
            .map(|((_, k), _)| k.clone())
            .collect()
    }

    pub fn records(&self) -> impl Iterator<Item = &JournalRecord> {
        self.last.values()
    }
}

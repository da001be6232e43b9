//! The runs of a cluster folded from its `run` events: per run (one
//! operation id) start, end, outcome, the per-step timings of its final
//! `timings:` event, per host and step the state and duration, and the
//! failures with their host, step and `next:` advice. Also each host's
//! current step. What `/runs` and `/hosts` serve; the page folds the same
//! events itself.

use std::collections::{BTreeMap, VecDeque};

use ferry_shared::pipeline::Step;
use ferry_shared::{Event, EventKind, Phase};
use serde::Serialize;

/// Runs kept (older ones are dropped from the view, not from the file).
pub const MAX_RUNS: usize = 50;
/// Failures kept per run.
pub const MAX_FAILURES: usize = 100;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HostStep {
    /// `running`, `done` or `failed`.
    pub state: &'static str,
    pub skipped: bool,
    pub started_ms: i64,
    pub duration_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Failure {
    pub ts_ms: i64,
    /// Empty for a cluster-wide failure.
    pub host: String,
    pub step: String,
    pub message: String,
    /// The text after `next:`, if the message has one.
    pub advice: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Run {
    pub op: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    /// `running`, `succeeded` or `failed`.
    pub outcome: &'static str,
    pub duration_ms: Option<u64>,
    /// (step, seconds) from the run's final `timings:` event.
    pub timings: Vec<(String, f64)>,
    /// host → step → state.
    pub hosts: BTreeMap<String, BTreeMap<String, HostStep>>,
    pub failures: Vec<Failure>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HostNow {
    pub op: String,
    pub step: String,
    pub state: &'static str,
    pub ts_ms: i64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ClusterView {
    pub runs: VecDeque<Run>,
    /// Each host's latest step in the latest run that touched it.
    pub hosts: BTreeMap<String, HostNow>,
}

/// The step a `run` event's message starts with (`distribute: rootfs ...`).
pub fn step_of(message: &str) -> Option<Step> {
    let end = message
        .find(|c: char| !(c.is_ascii_lowercase() || c == '-'))
        .unwrap_or(message.len());
    let word = &message[..end];
    Step::ALL.into_iter().find(|s| s.as_str() == word)
}

/// The advice of an error message: what follows its last `next:`.
pub fn advice_of(message: &str) -> String {
    message
        .rfind("next:")
        .map(|i| message[i + 5..].trim().to_string())
        .unwrap_or_default()
}

/// `timings: check 0.10s, images 1.20s` → [(check, 0.1), (images, 1.2)].
pub fn parse_timings(message: &str) -> Vec<(String, f64)> {
    let Some(rest) = message.strip_prefix("timings:") else {
        return Vec::new();
    };
    rest.split(',')
        .filter_map(|part| {
            let (step, secs) = part.trim().rsplit_once(' ')?;
            Some((step.to_string(), secs.strip_suffix('s')?.parse().ok()?))
        })
        .collect()
}

impl ClusterView {
    pub fn apply(&mut self, ev: &Event) {
        // Log events carry command output, not a step's message.
        if ev.phase != Phase::Run || ev.kind == EventKind::Log {
            return;
        }
        let idx = match self.runs.iter().rposition(|r| r.op == ev.op) {
            Some(i) => i,
            None => {
                if self.runs.len() >= MAX_RUNS {
                    self.runs.pop_front();
                }
                self.runs.push_back(Run {
                    op: ev.op.clone(),
                    started_ms: ev.ts_ms,
                    ended_ms: None,
                    outcome: "running",
                    duration_ms: None,
                    timings: Vec::new(),
                    hosts: BTreeMap::new(),
                    failures: Vec::new(),
                });
                self.runs.len() - 1
            }
        };
        let Some(run) = self.runs.get_mut(idx) else {
            return;
        };
        let terminal = matches!(ev.kind, EventKind::Finished | EventKind::Failed);
        if ev.node.is_empty() && terminal && ev.message.starts_with("timings:") {
            run.ended_ms = Some(ev.ts_ms);
            run.outcome = if ev.kind == EventKind::Finished {
                "succeeded"
            } else {
                "failed"
            };
            run.duration_ms = ev.counters.get("duration_ms").copied();
            run.timings = parse_timings(&ev.message);
            return;
        }
        let step = step_of(&ev.message).map(|s| s.as_str().to_string());
        if ev.kind == EventKind::Failed && run.failures.len() < MAX_FAILURES {
            run.failures.push(Failure {
                ts_ms: ev.ts_ms,
                host: ev.node.clone(),
                step: step.clone().unwrap_or_default(),
                message: ev.message.clone(),
                advice: advice_of(&ev.message),
            });
        }
        let (Some(step), false) = (step, ev.node.is_empty()) else {
            return;
        };
        let steps = run.hosts.entry(ev.node.clone()).or_default();
        // Progress alone (check's facts, a master's part in a worker's
        // join) does not make a step of that host.
        if ev.kind == EventKind::Progress && !steps.contains_key(&step) {
            return;
        }
        let entry = steps.entry(step.clone()).or_insert(HostStep {
            state: "running",
            skipped: false,
            started_ms: ev.ts_ms,
            duration_ms: None,
        });
        match ev.kind {
            EventKind::Started => {
                entry.state = "running";
                entry.started_ms = ev.ts_ms;
            }
            EventKind::Finished => {
                entry.state = "done";
                entry.skipped = ev.counters.get("skipped") == Some(&1);
                entry.duration_ms = ev.counters.get("duration_ms").copied();
            }
            EventKind::Failed => {
                entry.state = "failed";
                entry.duration_ms = ev.counters.get("duration_ms").copied();
            }
            EventKind::Progress | EventKind::Log => {}
        }
        let state = entry.state;
        self.hosts.insert(
            ev.node.clone(),
            HostNow {
                op: ev.op.clone(),
                step,
                state,
                ts_ms: ev.ts_ms,
            },
        );
    }
}

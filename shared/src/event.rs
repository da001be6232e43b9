//! Structured progress events: what agents stream and what `--output json`
//! prints, one JSON object per line. The schema is documented in
//! `docs/events.md` and versioned by [`EVENT_SCHEMA_VERSION`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::phase::Phase;

/// Bumped on any incompatible change of the JSON event shape.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Started,
    Progress,
    Log,
    Finished,
    Failed,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [
        EventKind::Started,
        EventKind::Progress,
        EventKind::Log,
        EventKind::Finished,
        EventKind::Failed,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Started => "started",
            EventKind::Progress => "progress",
            EventKind::Log => "log",
            EventKind::Finished => "finished",
            EventKind::Failed => "failed",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown event kind `{0}`")]
pub struct UnknownEventKind(pub String);

impl FromStr for EventKind {
    type Err = UnknownEventKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownEventKind(s.to_string()))
    }
}

/// Which side produced an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Coordinator,
    Agent,
}

/// Which output stream a `log` event's message came from, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Schema version, always [`EVENT_SCHEMA_VERSION`].
    pub v: u32,
    /// Milliseconds since the Unix epoch on the producing host.
    pub ts_ms: i64,
    pub source: Source,
    /// The node the event is about (its inventory address), or empty for
    /// cluster-wide coordinator events.
    pub node: String,
    /// Correlates everything one CLI invocation did.
    pub op: String,
    pub phase: Phase,
    pub kind: EventKind,
    /// Monotonic per producer; 0 for coordinator events.
    #[serde(default)]
    pub seq: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<OutputStream>,
    #[serde(default)]
    pub message: String,
}

impl Event {
    pub fn new(
        source: Source,
        ts_ms: i64,
        node: impl Into<String>,
        op: impl Into<String>,
        phase: Phase,
        kind: EventKind,
    ) -> Self {
        Self {
            v: EVENT_SCHEMA_VERSION,
            ts_ms,
            source,
            node: node.into(),
            op: op.into(),
            phase,
            kind,
            seq: 0,
            counters: BTreeMap::new(),
            stream: None,
            message: String::new(),
        }
    }

    pub fn message(mut self, m: impl Into<String>) -> Self {
        self.message = m.into();
        self
    }

    pub fn counter(mut self, name: &str, value: u64) -> Self {
        self.counters.insert(name.to_string(), value);
        self
    }

    pub fn stream(mut self, s: OutputStream) -> Self {
        self.stream = Some(s);
        self
    }

    /// One line of JSON, no trailing newline.
    pub fn to_json_line(&self) -> String {
        // Serializing a struct of plain fields cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_shape_is_stable() {
        let e = Event::new(
            Source::Agent,
            1700000000000,
            "10.0.0.2",
            "op1",
            Phase::Exec,
            EventKind::Finished,
        )
        .counter("exit_code", 0)
        .message("done");
        let j: serde_json::Value = serde_json::from_str(&e.to_json_line()).unwrap();
        assert_eq!(j["v"], 1);
        assert_eq!(j["source"], "agent");
        assert_eq!(j["phase"], "exec");
        assert_eq!(j["kind"], "finished");
        assert_eq!(j["counters"]["exit_code"], 0);
        assert!(j.get("stream").is_none());
        let back: Event = serde_json::from_value(j).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn kinds_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>().unwrap(), k);
        }
    }
}

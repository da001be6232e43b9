//! SSE event ids: a cursor over the two sources a cluster's stream merges.
//!
//! `GEN.LINE.EPOCH.ASEQ`: `GEN` is the generation of `events.jsonl` (the
//! `ts_ms` of its first event, so a truncated or replaced file starts a
//! higher one), `LINE` the 1-based line of the last file event sent;
//! `EPOCH` is when this dashboard process started (ms) and `ASEQ` the
//! number of agent-stream events it has published for the cluster. Each
//! message's id is the cursor *after* it, so `Last-Event-ID` says exactly
//! what a client holds: file lines up to (GEN, LINE), agent events up to
//! (EPOCH, ASEQ). Along a stream no component ever decreases.

use std::fmt;
use std::str::FromStr;

use super::error::DashboardError;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct EventId {
    pub gen_ms: u64,
    pub line: u64,
    pub epoch: u64,
    pub aseq: u64,
}

impl EventId {
    /// Whether the file position of `self` is past `other`'s.
    pub fn file_after(&self, other: &EventId) -> bool {
        (self.gen_ms, self.line) > (other.gen_ms, other.line)
    }

    /// Whether the agent position of `self` is past `other`'s.
    pub fn agent_after(&self, other: &EventId) -> bool {
        (self.epoch, self.aseq) > (other.epoch, other.aseq)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}.{}",
            self.gen_ms, self.line, self.epoch, self.aseq
        )
    }
}

impl FromStr for EventId {
    type Err = DashboardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || DashboardError::BadEventId(s.chars().take(80).collect());
        let mut it = s.trim().split('.').map(|p| p.parse::<u64>());
        let mut next = || it.next().ok_or_else(bad)?.map_err(|_| bad());
        let id = EventId {
            gen_ms: next()?,
            line: next()?,
            epoch: next()?,
            aseq: next()?,
        };
        if it.next().is_some() {
            return Err(bad());
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_junk() {
        let id = EventId {
            gen_ms: 1_763_780_000_000,
            line: 42,
            epoch: 7,
            aseq: 3,
        };
        assert_eq!(id.to_string().parse::<EventId>().unwrap(), id);
        for bad in ["", "1.2.3", "1.2.3.4.5", "a.b.c.d", "1.2.3.-4"] {
            assert!(bad.parse::<EventId>().is_err(), "{bad}");
        }
    }
}

//! The coordinator's list of revoked agent-PKI certificates (removed hosts'
//! leaves, replaced coordinator and agent certificates). Every agent holds
//! the serials and refuses them on every RPC; the generation only grows, so
//! an agent never goes back to an older list.

use serde::{Deserialize, Serialize};

/// The agent's copy of the list, in its TLS directory: written by the
/// agent (Trust.SetRevoked) and by the installer over SSH (with the TLS
/// files it uploads, so a new agent refuses from its first handshake on).
pub const AGENT_REVOKED_FILE: &str = "revoked.json";

/// What an agent keeps of the list: the generation and the serials.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRevoked {
    pub generation: u64,
    #[serde(default)]
    pub serials: Vec<String>,
}

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// DER serial octets, lowercase hex.
    pub serial: String,
    /// What it was ("agent 10.0.0.3", "coordinator"), for people.
    #[serde(default)]
    pub what: String,
    /// Its expiry (Unix seconds): after it the entry is dropped, the
    /// certificate being refused by TLS anyway.
    pub not_after: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedList {
    pub generation: u64,
    #[serde(default)]
    pub entries: Vec<Revoked>,
}

impl RevokedList {
    /// Adds `r` unless its serial is listed; returns whether it was new.
    pub fn add(&mut self, r: Revoked) -> bool {
        if self.contains(&r.serial) {
            return false;
        }
        self.entries.push(r);
        self.generation += 1;
        true
    }

    pub fn contains(&self, serial: &str) -> bool {
        self.entries.iter().any(|e| e.serial == serial)
    }

    /// Drops entries expired before `now` (Unix seconds).
    pub fn prune(&mut self, now: i64) {
        let before = self.entries.len();
        self.entries.retain(|e| e.not_after >= now);
        if self.entries.len() != before {
            self.generation += 1;
        }
    }

    pub fn serials(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.serial.clone()).collect()
    }

    /// The agent's copy ([`AGENT_REVOKED_FILE`]), serials sorted.
    pub fn for_agent(&self) -> AgentRevoked {
        let mut serials = self.serials();
        serials.sort();
        serials.dedup();
        AgentRevoked {
            generation: self.generation,
            serials,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(serial: &str, not_after: i64) -> Revoked {
        Revoked {
            serial: serial.into(),
            what: "agent 10.0.0.3".into(),
            not_after,
        }
    }

    #[test]
    fn generation_grows_with_every_change_only() {
        let mut l = RevokedList::default();
        assert!(l.add(r("01", 100)));
        assert!(!l.add(r("01", 100)), "listed once");
        assert!(l.add(r("02", 300)));
        assert_eq!(l.generation, 2);
        l.prune(50);
        assert_eq!(l.generation, 2, "nothing expired");
        l.prune(200);
        assert_eq!(l.serials(), ["02"]);
        assert_eq!(l.generation, 3);
        let text = serde_json::to_string(&l).unwrap();
        assert_eq!(serde_json::from_str::<RevokedList>(&text).unwrap(), l);
        let a = l.for_agent();
        assert_eq!((a.generation, a.serials), (3, vec!["02".to_string()]));
    }
}

//! What planned transfers may hold at once: manifest entries (memory: a
//! Plan's entries are reserved at its header, before they are decoded) and
//! the bytes still to come (disk: the chunk cache stages them until the
//! commit). A reservation lives as long as its transfer is being planned or
//! open, and is released when it commits, expires or is dropped.

use std::sync::{Arc, Mutex};

use tonic::Status;

/// Default bound on the entries of every planned transfer together: one
/// maximal manifest (`decode::MAX_ENTRIES`), or many smaller ones.
pub const DEFAULT_BUDGET_ENTRIES: u64 = super::decode::MAX_ENTRIES;
/// Default bound on the missing bytes of every open transfer together.
pub const DEFAULT_BUDGET_BYTES: u64 = 64 << 30;

/// The bounds (`ferry-agent serve --transfer-budget-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanBudget {
    pub entries: u64,
    pub bytes: u64,
}

impl Default for PlanBudget {
    fn default() -> Self {
        Self {
            entries: DEFAULT_BUDGET_ENTRIES,
            bytes: DEFAULT_BUDGET_BYTES,
        }
    }
}

#[derive(Debug, Default)]
struct Held {
    entries: u64,
    bytes: u64,
    transfers: usize,
}

/// The shared account of every reservation.
#[derive(Debug, Clone, Default)]
pub struct Budget {
    limit: PlanBudget,
    held: Arc<Mutex<Held>>,
}

/// One transfer's share of the budget, returned when dropped.
#[derive(Debug)]
pub struct Reservation {
    held: Arc<Mutex<Held>>,
    entries: u64,
    bytes: u64,
}

fn lock(held: &Mutex<Held>) -> std::sync::MutexGuard<'_, Held> {
    held.lock().unwrap_or_else(|p| p.into_inner())
}

const NEXT: &str = "commit or abandon the other transfers (an uncommitted one expires after an hour, \
     or when the agent restarts), send less at once, or start the agent with a larger \
     --transfer-budget-entries/--transfer-budget-bytes";

impl Budget {
    pub fn new(limit: PlanBudget) -> Self {
        Self {
            limit,
            held: Arc::default(),
        }
    }

    /// Reserves `entries` for a Plan whose header announced them.
    pub fn reserve_entries(&self, entries: u64) -> Result<Reservation, Status> {
        let mut h = lock(&self.held);
        let total = h.entries.saturating_add(entries);
        if total > self.limit.entries {
            return Err(Status::resource_exhausted(format!(
                "transfer plan of {entries} entries refused: {} open or planning transfers hold {} \
                 of this agent's {} entry budget; {NEXT}",
                h.transfers, h.entries, self.limit.entries
            )));
        }
        h.entries = total;
        h.transfers += 1;
        Ok(Reservation {
            held: self.held.clone(),
            entries,
            bytes: 0,
        })
    }
}

impl Reservation {
    /// Adds the bytes the planned transfer still needs to receive.
    pub fn add_bytes(&mut self, bytes: u64, limit: &Budget) -> Result<(), Status> {
        let mut h = lock(&self.held);
        let total = h.bytes.saturating_add(bytes);
        if total > limit.limit.bytes {
            return Err(Status::resource_exhausted(format!(
                "transfer plan needing {bytes} bytes refused: {} open transfers still need {} \
                 of this agent's {} byte budget; {NEXT}",
                h.transfers.saturating_sub(1),
                h.bytes,
                limit.limit.bytes
            )));
        }
        h.bytes = total;
        self.bytes += bytes;
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut h = lock(&self.held);
        h.entries = h.entries.saturating_sub(self.entries);
        h.bytes = h.bytes.saturating_sub(self.bytes);
        h.transfers = h.transfers.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn reservations_are_bounded_and_returned() {
        let b = Budget::new(PlanBudget {
            entries: 10,
            bytes: 100,
        });
        let mut a = b.reserve_entries(6).unwrap();
        let e = b.reserve_entries(5).unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(
            e.message()
                .contains("hold 6 of this agent's 10 entry budget")
        );
        assert!(e.message().contains("--transfer-budget-entries"));
        a.add_bytes(80, &b).unwrap();
        let mut c = b.reserve_entries(4).unwrap();
        let e = c.add_bytes(30, &b).unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(e.message().contains("1 open transfers still need 80"));
        drop(a);
        c.add_bytes(30, &b).unwrap();
        b.reserve_entries(6).unwrap();
    }
}

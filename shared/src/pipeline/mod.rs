//! The run pipeline's pure parts: the typed steps (stable names), the
//! journal records that make a re-run resume instead of redo, input
//! digests, and the plan (which hosts are added or removed, which steps a
//! host still needs).

pub mod check;
mod journal;
mod plan;
mod step;

pub use journal::{Journal, JournalRecord, Outcome, digest, key_host, part_key};
pub use plan::{HostChange, HostPlan, HostReach, Plan, host_diff};
pub use step::Step;

#[cfg(test)]
mod tests;

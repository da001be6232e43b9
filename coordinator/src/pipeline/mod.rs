//! `ferry run` / `apply` / `add`: the cluster pipeline over the agents.
//!
//! check (agents installed, facts, unique hostnames) → images (mount,
//! Config docs, render) → distribute → bootstrap (hosts entries, hooks,
//! registry) → pki → init master0 → join masters (sequential) → LB sync +
//! join workers (parallel, bounded) → guest → writeback → backup.
//!
//! Every per-host step is journaled (`journal.jsonl`) with a digest of its
//! inputs; a re-run skips what is done with the same inputs and resumes
//! from the first unfinished step of each host. kubeadm init/join are
//! journaled as "ever done" (they are not re-runnable) until a delete or
//! reset marks them undone.

mod backup;
mod bootstrap;
mod check;
mod ctx;
mod distribute;
mod error;
pub mod guest;
mod host_render;
mod htpasswd;
pub mod image_store;
pub mod images;
mod journal;
mod kube;
pub mod kube_nodes;
mod kubeadm_ops;
mod node;
mod node_tree;
mod pki_store;
mod prepare;
/// Agent addressing for commands outside a run (delete, reset).
pub mod node_ref {
    pub use super::node::NodeRef;
}
mod steps;
pub mod teardown;
pub mod upgrade;
mod writeback;

pub use ctx::{Ctx, DEFAULT_VIP, Inputs};
pub use error::PipelineError;
pub use journal::{EVENTS_FILE, JOURNAL_FILE, Recorder};
pub use steps::run;
pub use writeback::{CLUSTERFILE, load_clusterfile, save_clusterfile};

/// On-node data root of a cluster (sealos: /var/lib/sealos/data/<cluster>).
pub fn data_dir(cluster: &str) -> String {
    format!("/var/lib/ferry/data/{cluster}")
}

//! ferry's domain types and pure logic.
//!
//! Invariant: no network, no process spawning, no filesystem access. Callers
//! hand in bytes and get bytes back; the coordinator and agent do the IO.

pub mod clusterfile;
pub mod config_doc;
pub mod event;
pub mod exec;
pub mod facts;
pub mod hosts;
pub mod image;
pub mod kubeadm;
pub mod kubefile;
pub mod lb;
pub mod phase;
pub mod pipeline;
pub mod pki;
pub mod secret;
pub mod template;
pub mod transfer;

pub use event::{Event, EventKind, OutputStream, Source};
pub use exec::{ExecSpec, ExitOutcome, Program};
pub use facts::Facts;
pub use hosts::{HostAddr, parse_host_list};
pub use phase::Phase;
pub use secret::{Secret, redact_env};

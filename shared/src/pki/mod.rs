//! Certificate material ferry generates. Pure: keys and PEM text in, PEM text
//! out; the coordinator decides where files go (private keys 0600).

pub mod agent_ca;
#[cfg(feature = "kube-pki")]
pub mod kube;

pub use agent_ca::{AgentCa, Issued, PkiError};

//! Certificate material ferry generates. Pure: keys and PEM text in, PEM text
//! out; the coordinator decides where files go (private keys 0600).

pub mod agent_ca;
pub mod cert_info;
#[cfg(feature = "kube-pki")]
pub mod kube;
pub mod revoked;

pub use agent_ca::{AgentCa, Issued, PkiError};
pub use cert_info::{CertInfo, CertInfoError};
pub use revoked::{Revoked, RevokedList};

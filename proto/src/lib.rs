//! Generated protocol types. Invariant: this is the only crate that defines
//! prost/tonic types; `shared` never depends on it, and the coordinator and
//! agent convert to domain types in one `convert` module each.

#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]
pub mod agent {
    pub mod v1 {
        tonic::include_proto!("ferry.agent.v1");
    }
}

#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]
pub mod transfer {
    pub mod v1 {
        tonic::include_proto!("ferry.transfer.v1");
    }
}

#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]
pub mod lb {
    pub mod v1 {
        tonic::include_proto!("ferry.lb.v1");
    }
}

pub use agent::v1 as pb;
pub use lb::v1 as lb_pb;
pub use transfer::v1 as transfer_pb;

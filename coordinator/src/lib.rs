//! `ferry`, the coordinator: bootstraps agents over SSH once, then drives
//! them over mTLS gRPC. `main.rs` only parses flags and maps the exit code.

pub mod build;
pub mod cli;
pub mod client;
pub mod commands;
pub mod dashboard;
pub mod fanout;
pub mod image;
pub mod install;
pub mod lb;
pub mod oci;
pub mod output;
pub mod pipeline;
pub mod ssh;
pub mod state;
pub mod tarball;
pub mod transfer;
pub mod trust;

pub use commands::{CliError, Exit, run};

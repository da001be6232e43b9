//! Shared test fixtures; each test binary uses a different subset.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod sshd;

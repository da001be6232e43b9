//! ferry-tests: the testbed harness and end-to-end tests.
//!
//! [`Testbed`] drives `tests/testbed/testbed.sh`: N namespaced "nodes", each
//! with its own hostname, overlay root, PID 1 and a real OpenSSH `sshd`, on a
//! private bridge, plus a bastion network namespace from which tests run
//! `ssh` or the `ferry` binary. Needs root (CI runs as root).
//!
//! ```no_run
//! use ferry_tests::{Testbed, TestbedConfig};
//! let tb = Testbed::up(TestbedConfig::nodes(3))?;
//! let out = tb.ssh_command(0, "root")?.arg("hostname").output().map_err(|e| e.to_string());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod poll;
pub mod testbed;

pub use poll::{poll_until, wait_until};
pub use testbed::{
    ALICE_PASSWORD, BOB_PASSWORD, CAROL_PASSWORD, KEY_PASSPHRASE, Node, ROOT_PASSWORD, Testbed,
    TestbedConfig, TestbedError, require_root,
};

//! Running `testbed.sh`, root check, and unique testbed names.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use super::TestbedError;
use super::error::tail;

/// PATH inside nodes and for the tools the harness runs.
pub(crate) const NODE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `tests/testbed/testbed.sh` of this checkout.
pub(crate) fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testbed/testbed.sh")
}

/// Fails with a clear message unless running as root (the testbed needs it).
pub fn require_root() -> Result<(), TestbedError> {
    let uid = rustix::process::geteuid().as_raw();
    if uid == 0 {
        Ok(())
    } else {
        Err(TestbedError::NotRoot { uid })
    }
}

/// Renders a command for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion, capturing output; spawn failures become errors,
/// a non-zero exit does not.
pub(crate) fn output(cmd: &mut Command) -> Result<Output, TestbedError> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|source| TestbedError::Spawn {
            command: describe(cmd),
            source,
        })
}

/// Runs `cmd`; a non-zero exit is an error carrying the stderr tail.
pub(crate) fn run_ok(cmd: &mut Command) -> Result<Output, TestbedError> {
    let out = output(cmd)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(TestbedError::Failed {
            command: describe(cmd),
            status: out.status,
            stderr_tail: tail(&out.stderr),
        })
    }
}

/// Runs `testbed.sh ARGS...`, requiring success.
pub(crate) fn script<I, S>(args: I) -> Result<Output, TestbedError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("bash");
    cmd.arg(script_path()).args(args);
    run_ok(&mut cmd)
}

/// A testbed name unique among live processes: prefix, pid, per-process
/// counter (base 36). At most 15 characters.
pub(crate) fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let mut clean: String = prefix
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .take(4)
        .collect();
    if clean.is_empty() {
        clean.push_str("ft");
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{clean}{}-{}",
        base36(u64::from(std::process::id())),
        base36(u64::from(n))
    )
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        // `n % 36` is always a valid index.
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_short_and_valid() {
        let a = unique_name("Ferry_Test!");
        let b = unique_name("Ferry_Test!");
        assert_ne!(a, b);
        for name in [&a, &b] {
            assert!(name.len() <= 15, "{name}");
            assert!(name.starts_with("ferr"), "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            );
        }
        assert!(unique_name("").starts_with("ft"));
    }

    #[test]
    fn base36_digits() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        assert_eq!(base36(u64::from(u32::MAX)), "1z141z3");
    }

    #[test]
    fn script_exists() {
        assert!(script_path().is_file());
    }
}

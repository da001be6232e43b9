use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Everything that can go wrong while driving a testbed.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    #[error(
        "the testbed needs root (running as uid {uid}): it creates network, mount and PID \
         namespaces; run the tests as root (CI does), e.g. `sudo -E cargo nextest run -p ferry-tests`"
    )]
    NotRoot { uid: u32 },
    #[error("could not run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed ({status}); stderr tail:\n{stderr_tail}")]
    Failed {
        command: String,
        status: ExitStatus,
        stderr_tail: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("testbed {testbed} has no node {index} (it has {count}; indexes start at 0)")]
    NoSuchNode {
        testbed: String,
        index: usize,
        count: usize,
    },
    #[error("node {node} of testbed {testbed} is not running (killed? use start_node)")]
    NodeDown { testbed: String, node: String },
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout { what: String, timeout: Duration },
}

/// The last lines of a command's stderr, for error messages.
pub(crate) fn tail(bytes: &[u8]) -> String {
    const LINES: usize = 25;
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_lines() {
        let input: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let t = tail(input.as_bytes());
        assert!(t.starts_with("line 75"), "{t}");
        assert!(t.ends_with("line 99"), "{t}");
    }
}

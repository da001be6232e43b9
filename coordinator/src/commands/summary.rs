//! The end of every fan-out command: one row per host, a headline
//! `<what>: N of M nodes ok in Xs`, and the exit code.

use std::fmt::Display;
use std::time::Instant;

use ferry_shared::EventKind;

use super::Exit;
use crate::output::Reporter;

#[derive(Debug, Default)]
pub(super) struct Summary {
    rows: Vec<String>,
    failed: usize,
}

impl Summary {
    pub fn ok(&mut self, host: &str, detail: impl Display) {
        self.rows.push(format!("  {host:<22} ok      {detail}"));
    }

    pub fn failed(&mut self, host: &str, detail: impl Display) {
        self.failed += 1;
        self.rows.push(format!("  {host:<22} FAILED  {detail}"));
    }

    pub fn total(&self) -> usize {
        self.rows.len()
    }

    pub fn failed_count(&self) -> usize {
        self.failed
    }

    /// `finished` when every host succeeded, `failed` otherwise.
    pub fn kind(&self) -> EventKind {
        if self.failed == 0 {
            EventKind::Finished
        } else {
            EventKind::Failed
        }
    }

    /// Prints the headline and the rows (human mode only) and returns the
    /// exit code.
    pub fn print(&self, r: &Reporter, what: &str, started: Instant) -> Exit {
        r.text(&format!(
            "{what}: {} of {} nodes ok in {:.2}s",
            self.total() - self.failed,
            self.total(),
            started.elapsed().as_secs_f64()
        ));
        for row in &self.rows {
            r.text(row);
        }
        Exit::from_failures(self.failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_exit() {
        let mut s = Summary::default();
        s.ok("10.0.0.2", "0.01s");
        assert_eq!(s.kind(), EventKind::Finished);
        assert_eq!(Exit::from_failures(s.failed_count()), Exit::Ok);
        s.failed("10.0.0.3", "exit code 1");
        assert_eq!((s.total(), s.failed_count()), (2, 1));
        assert_eq!(s.kind(), EventKind::Failed);
        assert_eq!(
            s.rows[1],
            format!("  {:<22} FAILED  exit code 1", "10.0.0.3")
        );
    }
}

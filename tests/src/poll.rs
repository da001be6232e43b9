//! Deadline polling for tests: wait for a condition, never for a fixed time.

use std::time::{Duration, Instant};

use crate::testbed::TestbedError;

/// Calls `cond` until it returns true or `deadline` passes; returns whether it
/// became true. The pause between calls grows from 10 ms to 200 ms.
pub fn poll_until(deadline: Instant, mut cond: impl FnMut() -> bool) -> bool {
    let mut pause = Duration::from_millis(10);
    loop {
        if cond() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// [`poll_until`] with a timeout, as a `Result` naming what was awaited.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    cond: impl FnMut() -> bool,
) -> Result<(), TestbedError> {
    if poll_until(Instant::now() + timeout, cond) {
        Ok(())
    } else {
        Err(TestbedError::Timeout {
            what: what.to_owned(),
            timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_until_sees_condition_become_true() {
        let mut calls = 0;
        assert!(poll_until(Instant::now() + Duration::from_secs(5), || {
            calls += 1;
            calls >= 3
        }));
        assert_eq!(calls, 3);
    }

    #[test]
    fn wait_until_times_out_with_context() {
        let err = wait_until("never", Duration::from_millis(30), || false).unwrap_err();
        assert!(err.to_string().contains("never"), "{err}");
    }
}

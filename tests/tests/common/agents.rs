//! Agents on testbed nodes: their serving process, their chunk cache, and
//! waiting for one to answer again after it was killed.

use std::time::{Duration, Instant};

use ferry_tests::testbed::Testbed;

use super::Bastion;

/// The pid of node `i`'s serving agent (`ferry-agent serve`).
pub fn serving_agent_pid(tb: &Testbed, i: usize) -> String {
    let ps = tb.exec_ok(i, &["ps", "-eo", "pid=,args="]).unwrap();
    ps.lines()
        .find(|l| l.contains("ferry-agent serve"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no serving agent in:\n{ps}"))
        .to_string()
}

/// Chunks in node `i`'s transfer cache (what landed so far).
pub fn cached_chunks(tb: &Testbed, i: usize) -> u64 {
    let out = tb
        .exec(
            i,
            &[
                "sh",
                "-c",
                "find /var/lib/ferry/cache/chunks -type f 2>/dev/null | wc -l",
            ],
        )
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Polls `ferry agent status --ips ip` until it succeeds (deadline).
pub fn wait_agent_answers(b: &Bastion, ip: &str, within: Duration) {
    let end = Instant::now() + within;
    while !b
        .command(&["agent", "status", "--ips", ip])
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(Instant::now() < end, "agent on {ip} did not come back");
        std::thread::sleep(Duration::from_millis(300));
    }
}

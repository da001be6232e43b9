//! Helpers of the distribution-engine tests: incompressible test data and
//! the counters of `ferry --output json` transfer events.

use serde_json::Value;

use super::find;

/// `n` incompressible bytes (xorshift), the same for the same `seed`.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Counter `k` of an event's counters; panics naming it when missing.
pub fn counter(c: &Value, k: &str) -> u64 {
    c[k].as_u64()
        .unwrap_or_else(|| panic!("counter {k} missing in {c}"))
}

/// The counters of the one `transfer finished` event of node `ip`.
pub fn finished<'e>(ev: &'e [Value], ip: &str) -> &'e Value {
    let f = find(ev, ip, "transfer", "finished");
    assert_eq!(f.len(), 1, "one transfer finished event for {ip}");
    &f[0]["counters"]
}

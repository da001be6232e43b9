//! The terminal side's state machine, on a hidden draw target: which line
//! an event lands on, when it becomes a byte bar, how it ends.

use ferry_shared::Source;
use ferry_shared::transfer::counters as c;

use super::*;

const MIB: u64 = 1 << 20;

fn tty() -> Human {
    Human {
        bars: Some(MultiProgress::with_draw_target(ProgressDrawTarget::hidden())),
        lines: Mutex::new(Lines::default()),
        err: Mutex::new(std::io::stderr()),
    }
}

fn ev(node: &str, kind: EventKind, msg: &str, counters: &[(&str, u64)]) -> Event {
    let mut e = Event::new(Source::Coordinator, 0, node, "op", Phase::Transfer, kind);
    for (k, v) in counters {
        e = e.counter(k, *v);
    }
    e.message(msg)
}

fn bytes(done: u64, total: u64) -> [(&'static str, u64); 4] {
    [
        (c::CONTENT_BYTES_SENT, done),
        (c::CONTENT_BYTES_TOTAL, total),
        (c::FILES_TOTAL, 3),
        (c::FILES_SKIPPED, 1),
    ]
}

/// (is a byte bar, finished, position, length, message) of `node`'s line.
fn line(h: &Human, node: &str) -> (bool, bool, u64, Option<u64>, String) {
    let l = h.lines.lock().unwrap();
    let l = &l.per_node[node];
    (
        l.bytes.is_some(),
        l.pb.is_finished(),
        l.pb.position(),
        l.pb.length(),
        l.pb.message(),
    )
}

#[test]
fn a_node_line_turns_into_a_byte_bar_and_ends_with_its_summary() {
    let h = tty();
    let a = "10.0.0.2";
    h.render(&ev(a, EventKind::Started, "/opt/x", &[(c::BYTES_TOTAL, 9)]));
    let (is_bar, done, _, _, msg) = line(&h, a);
    assert!(!is_bar && !done);
    assert_eq!(msg, "transfer started: /opt/x (bytes_total=9)");

    h.render(&ev(a, EventKind::Progress, "", &bytes(2 * MIB, 6 * MIB)));
    let (is_bar, done, pos, len, msg) = line(&h, a);
    assert!(is_bar && !done);
    assert_eq!((pos, len), (2 * MIB, Some(6 * MIB)));
    assert_eq!(
        msg,
        "transfer progress: 2.0/6.0 MiB (files 2 to send, 1 skipped)"
    );

    let mut end = bytes(6 * MIB, 6 * MIB).to_vec();
    end.extend([(c::FILES_SENT, 2), (c::DURATION_MS, 1500)]);
    h.render(&ev(a, EventKind::Finished, "2 files written", &end));
    let (is_bar, done, pos, _, msg) = line(&h, a);
    assert!(is_bar && done);
    assert_eq!(pos, 6 * MIB);
    assert_eq!(
        msg,
        "transfer finished: 6.0/6.0 MiB in 1.5s (files 2 sent, 1 skipped)"
    );

    // Another activity of the node afterwards: a new spinner.
    h.render(&ev(a, EventKind::Started, "next", &[]));
    let (is_bar, done, _, _, msg) = line(&h, a);
    assert!(!is_bar && !done);
    assert_eq!(msg, "transfer started: next");
}

#[test]
fn a_failure_without_counters_abandons_the_bar_keeping_its_bytes() {
    let h = tty();
    let a = "10.0.0.3";
    h.render(&ev(a, EventKind::Progress, "", &bytes(MIB, 4 * MIB)));
    h.render(&ev(
        a,
        EventKind::Failed,
        "agent at 10.0.0.3:7443 went silent",
        &[],
    ));
    let (is_bar, done, pos, _, msg) = line(&h, a);
    assert!(is_bar && done);
    assert_eq!(pos, MIB);
    assert_eq!(
        msg,
        "transfer failed: 1.0/4.0 MiB (files 3, 1 skipped) — agent at 10.0.0.3:7443 went silent"
    );
}

#[test]
fn the_total_gets_its_own_bar_and_ends_with_the_run_summary() {
    let h = tty();
    h.render(&ev(
        "",
        EventKind::Progress,
        "hashed",
        &[(c::BYTES_TOTAL, 9)],
    ));
    let hashed = h.lines.lock().unwrap().per_node[TOTAL].pb.clone();
    h.render(&ev("", EventKind::Progress, "", &bytes(3 * MIB, 12 * MIB)));
    {
        let l = h.lines.lock().unwrap();
        assert!(hashed.is_finished(), "the hashed line stays as it was");
        assert_eq!(
            hashed.message(),
            "transfer progress: hashed (bytes_total=9)"
        );
        let total = l.total.as_ref().expect("a total bar");
        assert_eq!(total.length(), Some(12 * MIB));
    }
    // A node appearing later still goes above the total.
    h.render(&ev("10.0.0.4", EventKind::Started, "", &[]));
    h.render(&ev("", EventKind::Progress, "", &bytes(12 * MIB, 12 * MIB)));
    h.render(&ev(
        "",
        EventKind::Finished,
        "topology chain",
        &[(c::DURATION_MS, 4000), ("hosts", 2)],
    ));
    let (is_bar, done, _, _, msg) = line(&h, TOTAL);
    assert!(is_bar && done);
    assert_eq!(
        msg,
        "transfer finished: 12.0/12.0 MiB in 4.0s (files 3, 1 skipped) — topology chain"
    );
    h.finish();
    assert!(h.closed());
    assert!(h.lines.lock().unwrap().per_node.is_empty());
}

//! The byte progress an event carries, and how humans read it. Keyed on
//! counters, not on the phase: any event with `content_bytes_sent` and
//! `content_bytes_total` (scp's transfers, the run pipeline's distribute
//! step) is shown as a byte bar on a terminal and as one readable line
//! otherwise:
//!
//! `10.0.0.2  transfer progress: 120.0/400.0 MiB 38.2 MiB/s eta 7s (files 10 to send, 3 skipped)`

use ferry_shared::transfer::counters as c;
use ferry_shared::{Event, EventKind, Phase};

/// The byte counters of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteProgress {
    pub kind: EventKind,
    pub done: u64,
    pub total: u64,
    pub rate_bps: Option<u64>,
    pub eta_ms: Option<u64>,
    pub duration_ms: Option<u64>,
    pub files_total: Option<u64>,
    pub files_sent: Option<u64>,
    pub files_skipped: Option<u64>,
}

impl ByteProgress {
    /// `Some` when `ev` carries bytes done and total (output lines never do).
    pub fn from_event(ev: &Event) -> Option<Self> {
        if ev.kind == EventKind::Log {
            return None;
        }
        let get = |k: &str| ev.counters.get(k).copied();
        Some(Self {
            kind: ev.kind,
            done: get(c::CONTENT_BYTES_SENT)?,
            total: get(c::CONTENT_BYTES_TOTAL)?,
            rate_bps: get(c::RATE_BPS),
            eta_ms: get(c::ETA_MS),
            duration_ms: get(c::DURATION_MS),
            files_total: get(c::FILES_TOTAL),
            files_sent: get(c::FILES_SENT),
            files_skipped: get(c::FILES_SKIPPED),
        })
    }

    /// How an end event without byte counters (e.g. the run's summary)
    /// ends a bar last at `self`: its kind, and its duration when it has one.
    pub fn ended_by(&self, ev: &Event) -> Self {
        Self {
            kind: ev.kind,
            duration_ms: ev
                .counters
                .get(c::DURATION_MS)
                .copied()
                .or(self.duration_ms),
            ..*self
        }
    }

    pub fn is_end(&self) -> bool {
        matches!(self.kind, EventKind::Finished | EventKind::Failed)
    }

    /// `120.0/400.0 MiB 38.2 MiB/s eta 7s (files 10 to send, 3 skipped)`;
    /// once finished: `400.0/400.0 MiB in 10.4s 38.5 MiB/s (files 13 sent,
    /// 3 skipped)`.
    pub fn text(&self) -> String {
        let mut s = byte_pair(self.done, self.total);
        if self.is_end()
            && let Some(ms) = self.duration_ms
        {
            s.push_str(&format!(" in {}", duration(ms)));
        }
        if let Some(r) = self.rate_bps {
            s.push_str(&format!(" {}/s", bytes(r)));
        }
        if let Some(ms) = self.eta_ms
            && !self.is_end()
            && ms > 0
            && self.done < self.total
            && self.rate_bps.is_some_and(|r| r > 0)
        {
            s.push_str(&format!(" eta {}", eta(ms)));
        }
        let files = match (self.files_sent, self.files_total, self.files_skipped) {
            (Some(sent), _, Some(skipped)) => Some(format!("{sent} sent, {skipped} skipped")),
            (Some(sent), _, None) => Some(format!("{sent} sent")),
            (None, Some(total), Some(skipped)) if self.is_end() => {
                Some(format!("{total}, {skipped} skipped"))
            }
            (None, Some(total), Some(skipped)) => Some(format!(
                "{} to send, {skipped} skipped",
                total.saturating_sub(skipped)
            )),
            (None, Some(total), None) => Some(format!("{total} total")),
            (None, None, Some(skipped)) => Some(format!("{skipped} skipped")),
            (None, None, None) => None,
        };
        if let Some(f) = files {
            s.push_str(&format!(" (files {f})"));
        }
        s
    }
}

/// What a byte event says beyond its counters: transfer events' messages
/// restate the counters; other phases' (the run pipeline's) name the step
/// and tree, so they are kept.
pub fn context(ev: &Event) -> Option<&str> {
    (ev.phase != Phase::Transfer && !ev.message.is_empty()).then_some(ev.message.as_str())
}

/// `{phase} {kind}: {bytes...}[ — context]`: a bar's message, and the plain
/// line after the node.
pub fn describe(ev: &Event, p: &ByteProgress) -> String {
    let mut s = format!("{} {}: {}", ev.phase, ev.kind, p.text());
    if let Some(ctx) = context(ev) {
        s.push_str(" — ");
        s.push_str(ctx);
    }
    s
}

/// The whole plain (non-terminal) line for a byte event about `node`.
pub fn plain_line(node: &str, ev: &Event, p: &ByteProgress) -> String {
    format!("{node:>18}  {}", describe(ev, p))
}

const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];

fn unit_of(b: u64) -> usize {
    let mut u = 0;
    let mut v = b;
    while v >= 1024 && u + 1 < UNITS.len() {
        v /= 1024;
        u += 1;
    }
    u
}

fn in_unit(b: u64, u: usize) -> String {
    if u == 0 {
        return b.to_string();
    }
    format!("{:.1}", b as f64 / (1u64 << (10 * u)) as f64)
}

/// `38.2 MiB`, `512 B`.
pub fn bytes(b: u64) -> String {
    let u = unit_of(b);
    format!("{} {}", in_unit(b, u), UNITS[u])
}

/// `120.0/400.0 MiB`: both in the unit of the larger.
pub fn byte_pair(done: u64, total: u64) -> String {
    let u = unit_of(done.max(total));
    format!("{}/{} {}", in_unit(done, u), in_unit(total, u), UNITS[u])
}

/// Time left in whole seconds (rounded up): `7s`, then as [`duration`].
pub fn eta(ms: u64) -> String {
    let s = ms.div_ceil(1000);
    if s < 60 {
        format!("{s}s")
    } else {
        duration(s * 1000)
    }
}

/// `7s`, `1.2s` below 10 s, `3m05s`, `1h02m`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    if s < 10 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_shared::Source;

    const MIB: u64 = 1 << 20;

    fn ev(phase: Phase, kind: EventKind, counters: &[(&str, u64)]) -> Event {
        let mut e = Event::new(Source::Coordinator, 0, "10.0.0.2", "op", phase, kind);
        for (k, v) in counters {
            e = e.counter(k, *v);
        }
        e.message("120.0 MiB / 400.0 MiB to send")
    }

    #[test]
    fn a_progress_event_reads_as_bytes_rate_eta_and_files() {
        let e = ev(
            Phase::Transfer,
            EventKind::Progress,
            &[
                (c::CONTENT_BYTES_SENT, 120 * MIB),
                (c::CONTENT_BYTES_TOTAL, 400 * MIB),
                (c::RATE_BPS, 40_055_603),
                (c::ETA_MS, 7_300),
                (c::FILES_TOTAL, 13),
                (c::FILES_SKIPPED, 3),
                (c::WIRE_BYTES_SENT, 1),
            ],
        );
        let p = ByteProgress::from_event(&e).unwrap();
        assert_eq!((p.done, p.total), (120 * MIB, 400 * MIB));
        assert_eq!(
            plain_line("10.0.0.2", &e, &p),
            "          10.0.0.2  transfer progress: 120.0/400.0 MiB 38.2 MiB/s eta 8s (files 10 to send, 3 skipped)"
        );
    }

    #[test]
    fn a_finished_event_is_a_summary() {
        let e = ev(
            Phase::Transfer,
            EventKind::Finished,
            &[
                (c::CONTENT_BYTES_SENT, 6 * MIB),
                (c::CONTENT_BYTES_TOTAL, 6 * MIB),
                (c::RATE_BPS, 3 * MIB),
                (c::ETA_MS, 0),
                (c::DURATION_MS, 2_000),
                (c::FILES_TOTAL, 4),
                (c::FILES_SENT, 4),
                (c::FILES_SKIPPED, 0),
            ],
        );
        let p = ByteProgress::from_event(&e).unwrap();
        assert_eq!(
            describe(&e, &p),
            "transfer finished: 6.0/6.0 MiB in 2.0s 3.0 MiB/s (files 4 sent, 0 skipped)"
        );
    }

    #[test]
    fn a_summary_event_without_bytes_ends_the_last_progress() {
        let e = ev(
            Phase::Transfer,
            EventKind::Progress,
            &[
                (c::CONTENT_BYTES_SENT, 12 * MIB),
                (c::CONTENT_BYTES_TOTAL, 12 * MIB),
                (c::RATE_BPS, 4 * MIB),
                (c::FILES_TOTAL, 6),
                (c::FILES_SKIPPED, 1),
            ],
        );
        let p = ByteProgress::from_event(&e).unwrap();
        let end = ev(
            Phase::Transfer,
            EventKind::Finished,
            &[(c::DURATION_MS, 3_000)],
        );
        assert_eq!(ByteProgress::from_event(&end), None);
        assert_eq!(
            p.ended_by(&end).text(),
            "12.0/12.0 MiB in 3.0s 4.0 MiB/s (files 6, 1 skipped)"
        );
    }

    #[test]
    fn other_phases_keep_their_message_and_need_only_the_byte_pair() {
        let e = ev(
            Phase::Run,
            EventKind::Progress,
            &[(c::CONTENT_BYTES_SENT, 0), (c::CONTENT_BYTES_TOTAL, 0)],
        )
        .message("distribute: rootfs");
        let p = ByteProgress::from_event(&e).unwrap();
        assert_eq!(describe(&e, &p), "run progress: 0/0 B — distribute: rootfs");
    }

    #[test]
    fn events_without_both_byte_counters_are_not_byte_progress() {
        for counters in [
            &[][..],
            &[(c::CONTENT_BYTES_SENT, 1)][..],
            &[(c::BYTES_TOTAL, 5), (c::FILES_TOTAL, 1)][..],
        ] {
            let e = ev(Phase::Transfer, EventKind::Progress, counters);
            assert_eq!(ByteProgress::from_event(&e), None, "{counters:?}");
        }
        let log = ev(
            Phase::Transfer,
            EventKind::Log,
            &[(c::CONTENT_BYTES_SENT, 1), (c::CONTENT_BYTES_TOTAL, 2)],
        );
        assert_eq!(ByteProgress::from_event(&log), None);
    }

    #[test]
    fn units_and_durations() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(byte_pair(512, 3 * MIB), "0.0/3.0 MiB");
        assert_eq!(byte_pair(5 * MIB, 4 * MIB), "5.0/4.0 MiB");
        assert_eq!(duration(1_234), "1.2s");
        assert_eq!(duration(42_000), "42s");
        assert_eq!(duration(185_000), "3m05s");
        assert_eq!(duration(3_720_000), "1h02m");
        assert_eq!(
            (eta(7_000), eta(7_001), eta(90_000)),
            ("7s".into(), "8s".into(), "1m30s".into())
        );
    }
}

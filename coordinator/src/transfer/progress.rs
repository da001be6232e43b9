//! Transfer progress as events: per node and in total, throttled, with
//! bytes done/total, rate and ETA. Shared by `ferry scp` and the run
//! pipeline's distribute step.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ferry_shared::transfer::counters as c;
use ferry_shared::{Event, EventKind, Phase};

use super::session::Progress;
use crate::output::Reporter;

/// Minimum time between two progress events of one node.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(500);

pub fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

fn rate(bytes: u64, d: Duration) -> u64 {
    let ms = d.as_millis().max(1) as u64;
    bytes.saturating_mul(1000) / ms
}

/// `ev` with the transfer counters of `p` (rate and ETA over `elapsed`).
pub fn with_progress(ev: Event, p: &Progress, elapsed: Duration) -> Event {
    let r = rate(p.content_sent, elapsed);
    let left = p.content_total.saturating_sub(p.content_sent);
    let eta_ms = left.saturating_mul(1000).checked_div(r).unwrap_or(0);
    ev.counter(c::FILES_TOTAL, p.files_total)
        .counter(c::FILES_SKIPPED, p.files_unchanged)
        .counter(c::CONTENT_BYTES_TOTAL, p.content_total)
        .counter(c::CONTENT_BYTES_SENT, p.content_sent)
        .counter(c::WIRE_BYTES_SENT, p.wire_sent)
        .counter(c::REUSED_BYTES, p.reused)
        .counter(c::RATE_BPS, r)
        .counter(c::ETA_MS, eta_ms)
}

/// Last progress and emit time per node, and of the total.
type TrackerState = (Vec<(Progress, Option<Instant>)>, Option<Instant>);

/// Where a tracker's events go (a reporter, or the pipeline's recorder).
pub type Sink = Box<dyn Fn(Event) + Send + Sync>;

/// Throttled progress events: per node, and the total over all nodes.
pub struct Tracker {
    r: Reporter,
    phase: Phase,
    /// Message prefix (`"distribute: rootfs"`), empty for none.
    label: String,
    sink: Sink,
    hosts: Vec<String>,
    started: Instant,
    state: Mutex<TrackerState>,
}

impl Tracker {
    /// `transfer` events emitted straight to `r`.
    pub fn new(r: Reporter, hosts: Vec<String>) -> Self {
        let rr = r.clone();
        Self::with_sink(r, Phase::Transfer, "", Box::new(move |e| rr.emit(e)), hosts)
    }

    /// Events of `phase`, messages prefixed with `label`, handed to `sink`.
    pub fn with_sink(
        r: Reporter,
        phase: Phase,
        label: &str,
        sink: Sink,
        hosts: Vec<String>,
    ) -> Self {
        let n = hosts.len();
        Self {
            r,
            phase,
            label: label.to_string(),
            sink,
            hosts,
            started: Instant::now(),
            state: Mutex::new((vec![(Progress::default(), None); n], None)),
        }
    }

    fn msg(&self, text: String) -> String {
        if self.label.is_empty() {
            text
        } else {
            format!("{}: {text}", self.label)
        }
    }

    /// Node `i` reached `p`; emits at most every [`PROGRESS_EVERY`] per
    /// node (and for the total), always when the node is complete.
    pub fn update(&self, i: usize, p: &Progress) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(slot) = st.0.get_mut(i) else {
            return;
        };
        slot.0 = *p;
        let done = p.content_sent >= p.content_total;
        if slot.1.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) && !done {
            return;
        }
        slot.1 = Some(Instant::now());
        let ev = self
            .r
            .event(&self.hosts[i], self.phase, EventKind::Progress);
        let msg = self.msg(format!(
            "{} / {} to send",
            mib(p.content_sent),
            mib(p.content_total)
        ));
        (self.sink)(with_progress(ev, p, self.started.elapsed()).message(msg));
        // The total's last state is never throttled away.
        let all_done = done && st.0.iter().all(|(q, _)| q.content_sent >= q.content_total);
        if st.1.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) && !all_done {
            return;
        }
        st.1 = Some(Instant::now());
        let mut total = Progress::default();
        for (q, _) in &st.0 {
            total.files_total += q.files_total;
            total.files_unchanged += q.files_unchanged;
            total.content_total += q.content_total;
            total.content_sent += q.content_sent;
            total.wire_sent += q.wire_sent;
            total.reused += q.reused;
        }
        let ev = self.r.event("", self.phase, EventKind::Progress);
        let msg = self.msg(format!(
            "total {} / {} delivered",
            mib(total.content_sent),
            mib(total.content_total)
        ));
        (self.sink)(with_progress(ev, &total, self.started.elapsed()).message(msg));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::output::OutputMode;

    fn tracker() -> (Tracker, Arc<Mutex<Vec<Event>>>) {
        let got: Arc<Mutex<Vec<Event>>> = Arc::default();
        let g = got.clone();
        let r = Reporter::new(OutputMode::Json, "op".into());
        let t = Tracker::with_sink(
            r,
            Phase::Run,
            "distribute: rootfs",
            Box::new(move |e| g.lock().unwrap().push(e)),
            vec!["10.0.0.1".into(), "10.0.0.2".into()],
        );
        (t, got)
    }

    fn p(sent: u64, total: u64) -> Progress {
        Progress {
            content_sent: sent,
            content_total: total,
            ..Progress::default()
        }
    }

    #[test]
    fn throttles_per_node_but_never_the_last_state() {
        let (t, got) = tracker();
        t.update(0, &p(0, 100));
        t.update(1, &p(0, 100));
        t.update(0, &p(10, 100)); // within PROGRESS_EVERY: dropped
        t.update(0, &p(100, 100)); // complete: always shown
        t.update(1, &p(100, 100));
        t.update(7, &p(1, 1)); // unknown index: ignored
        let ev = got.lock().unwrap();
        let of = |node: &str| -> Vec<&Event> { ev.iter().filter(|e| e.node == node).collect() };
        let n0 = of("10.0.0.1");
        assert_eq!(n0.len(), 2, "{n0:?}");
        assert_eq!(n0[1].counters.get(c::CONTENT_BYTES_SENT), Some(&100));
        assert!(
            n0.iter()
                .all(|e| e.phase == Phase::Run && e.message.starts_with("distribute: rootfs: "))
        );
        let total = of("");
        let last = total.last().unwrap();
        assert_eq!(last.counters.get(c::CONTENT_BYTES_SENT), Some(&200));
        assert_eq!(last.counters.get(c::CONTENT_BYTES_TOTAL), Some(&200));
        assert!(
            last.message.starts_with("distribute: rootfs: total"),
            "{last:?}"
        );
    }

    #[test]
    fn eta_and_rate_follow_the_bytes_left() {
        let ev = Event::new(
            ferry_shared::Source::Coordinator,
            0,
            "n",
            "op",
            Phase::Transfer,
            EventKind::Progress,
        );
        let e = with_progress(ev, &p(50, 150), Duration::from_secs(2));
        assert_eq!(e.counters.get(c::RATE_BPS), Some(&25));
        assert_eq!(e.counters.get(c::ETA_MS), Some(&4000));
        assert_eq!(mib(3 << 20), "3.0 MiB");
    }
}

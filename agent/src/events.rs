//! The agent's event bus: every event gets the next per-agent `seq`, is kept
//! in a bounded ring for replay (`since_seq`) and broadcast to live
//! subscribers. A subscriber that falls behind never blocks the bus: it
//! catches up from the ring where it can, and otherwise receives one `log`
//! event (seq 0) saying how many events it missed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_shared::{Event, EventKind, Phase, Source};
use tokio::sync::{broadcast, mpsc};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// Events kept for replay.
pub const DEFAULT_RING: usize = 1024;
/// Events a live subscriber may lag behind before it has to catch up.
pub const DEFAULT_BROADCAST: usize = 256;
/// Frames buffered per `Events` stream.
const STREAM_BUFFER: usize = 32;

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

struct Ring {
    next_seq: u64,
    events: VecDeque<Event>,
    cap: usize,
}

struct Inner {
    node: String,
    ring: Mutex<Ring>,
    live: broadcast::Sender<Event>,
}

/// Cheap to clone; all clones share one bus.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

/// One item of an `Events` stream.
#[derive(Debug, Clone, PartialEq)]
pub enum EventItem {
    Event(Event),
    Heartbeat { unix_ms: i64 },
}

impl EventBus {
    pub fn new(node: impl Into<String>) -> Self {
        Self::with_capacity(node, DEFAULT_RING, DEFAULT_BROADCAST)
    }

    pub fn with_capacity(node: impl Into<String>, ring: usize, broadcast_cap: usize) -> Self {
        let (live, _) = broadcast::channel(broadcast_cap.max(1));
        Self {
            inner: Arc::new(Inner {
                node: node.into(),
                ring: Mutex::new(Ring {
                    next_seq: 1,
                    events: VecDeque::with_capacity(ring.max(1)),
                    cap: ring.max(1),
                }),
                live,
            }),
        }
    }

    pub fn node(&self) -> &str {
        &self.inner.node
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        // A panic while holding the lock cannot leave the ring inconsistent.
        self.inner.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new event for this node, not yet published.
    pub fn event(&self, op: &str, phase: Phase, kind: EventKind) -> Event {
        Event::new(Source::Agent, unix_ms(), self.node(), op, phase, kind)
    }

    /// Assigns the next seq and publishes. Returns the seq.
    pub fn publish(&self, mut event: Event) -> u64 {
        let mut ring = self.ring();
        event.seq = ring.next_seq;
        ring.next_seq += 1;
        if ring.events.len() == ring.cap {
            ring.events.pop_front();
        }
        ring.events.push_back(event.clone());
        let seq = event.seq;
        // Sent under the lock so the broadcast order equals seq order. No
        // receivers is fine.
        let _ = self.inner.live.send(event);
        seq
    }

    /// The seq of the last published event (0 if none).
    pub fn last_seq(&self) -> u64 {
        self.ring().next_seq - 1
    }

    /// Buffered events with seq > `since`, and how many such events are no
    /// longer buffered.
    fn buffered_since(ring: &Ring, since: u64) -> (Vec<Event>, u64) {
        let events: Vec<Event> = ring
            .events
            .iter()
            .filter(|e| e.seq > since)
            .cloned()
            .collect();
        let first = events.first().map_or(ring.next_seq, |e| e.seq);
        (events, first.saturating_sub(since + 1))
    }

    /// Replay (seq > `since`) plus a live receiver, with no gap or overlap:
    /// both are taken under the lock `publish` holds while sending.
    /// A `since` beyond the last seq comes from before an agent restart
    /// (seqs start over at 1): everything buffered is new to the caller.
    fn subscribe(&self, since: u64) -> (Vec<Event>, u64, broadcast::Receiver<Event>, u64) {
        let ring = self.ring();
        let since = if since >= ring.next_seq { 0 } else { since };
        let rx = self.inner.live.subscribe();
        let (events, missed) = Self::buffered_since(&ring, since);
        (events, missed, rx, since)
    }

    fn missed_notice(&self, missed: u64) -> Event {
        self.event("", Phase::Agent, EventKind::Log)
            .counter("dropped_events", missed)
            .message(format!(
                "{missed} agent events were dropped before this subscriber could read them"
            ))
    }

    /// Streams replay, then live events, with a heartbeat after each
    /// `heartbeat` without events. Ends when the receiver is dropped or
    /// `shutdown` fires.
    pub fn stream(
        &self,
        since: u64,
        heartbeat: Duration,
        shutdown: CancellationToken,
    ) -> mpsc::Receiver<EventItem> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let bus = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = bus.pump(since, heartbeat, &tx) => {}
                () = tx.closed() => {}
                () = shutdown.cancelled() => {}
            }
        });
        rx
    }

    async fn pump(&self, since: u64, heartbeat: Duration, tx: &mpsc::Sender<EventItem>) {
        let (replay, missed, mut rx, mut last) = self.subscribe(since);
        if missed > 0 && self.send(tx, self.missed_notice(missed)).await.is_err() {
            return;
        }
        for e in replay {
            last = e.seq;
            if self.send(tx, e).await.is_err() {
                return;
            }
        }
        let mut hb = tokio::time::interval(heartbeat.max(Duration::from_millis(1)));
        hb.set_missed_tick_behavior(MissedTickBehavior::Delay);
        hb.reset();
        loop {
            let sent = tokio::select! {
                r = rx.recv() => match r {
                    Ok(e) if e.seq <= last => continue,
                    Ok(e) => {
                        last = e.seq;
                        self.send(tx, e).await
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let (events, missed) = Self::buffered_since(&self.ring(), last);
                        if missed > 0 && self.send(tx, self.missed_notice(missed)).await.is_err() {
                            return;
                        }
                        let mut res = Ok(());
                        for e in events {
                            last = e.seq;
                            res = self.send(tx, e).await;
                            if res.is_err() {
                                break;
                            }
                        }
                        res
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = hb.tick() => tx
                    .send(EventItem::Heartbeat { unix_ms: unix_ms() })
                    .await
                    .map_err(|_| ()),
            };
            if sent.is_err() {
                return;
            }
            hb.reset();
        }
    }

    async fn send(&self, tx: &mpsc::Sender<EventItem>, e: Event) -> Result<(), ()> {
        tx.send(EventItem::Event(e)).await.map_err(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish_n(bus: &EventBus, n: usize) {
        for i in 0..n {
            bus.publish(
                bus.event("op", Phase::Exec, EventKind::Progress)
                    .message(format!("{i}")),
            );
        }
    }

    async fn next_event(rx: &mut mpsc::Receiver<EventItem>) -> Event {
        loop {
            match rx.recv().await.unwrap() {
                EventItem::Event(e) => return e,
                EventItem::Heartbeat { .. } => continue,
            }
        }
    }

    #[tokio::test]
    async fn seq_is_monotonic_and_replay_honours_since() {
        let bus = EventBus::new("n1");
        publish_n(&bus, 5);
        assert_eq!(bus.last_seq(), 5);
        let mut rx = bus.stream(2, Duration::from_secs(60), CancellationToken::new());
        for want in 3..=5 {
            let e = next_event(&mut rx).await;
            assert_eq!((e.seq, e.node.as_str()), (want, "n1"));
        }
        publish_n(&bus, 1);
        assert_eq!(next_event(&mut rx).await.seq, 6);
    }

    #[tokio::test]
    async fn a_since_from_before_a_restart_replays_everything() {
        let bus = EventBus::new("n");
        publish_n(&bus, 2);
        let mut rx = bus.stream(500, Duration::from_secs(60), CancellationToken::new());
        assert_eq!(next_event(&mut rx).await.seq, 1);
        assert_eq!(next_event(&mut rx).await.seq, 2);
    }

    #[tokio::test]
    async fn ring_overflow_is_reported_once() {
        let bus = EventBus::with_capacity("n", 4, 4);
        publish_n(&bus, 10);
        let mut rx = bus.stream(0, Duration::from_secs(60), CancellationToken::new());
        let notice = next_event(&mut rx).await;
        assert_eq!(notice.kind, EventKind::Log);
        assert_eq!(notice.counters.get("dropped_events"), Some(&6));
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(next_event(&mut rx).await.seq);
        }
        assert_eq!(got, vec![7, 8, 9, 10]);
    }

    #[tokio::test]
    async fn lagging_subscriber_does_not_block_the_bus() {
        let bus = EventBus::with_capacity("n", 8, 2);
        let mut rx = bus.stream(0, Duration::from_secs(60), CancellationToken::new());
        // Let the subscriber attach, then publish far more than the stream
        // buffer and the broadcast hold, without reading.
        publish_n(&bus, 1);
        assert_eq!(next_event(&mut rx).await.seq, 1);
        publish_n(&bus, 200);
        assert_eq!(bus.last_seq(), 201);
        let (mut last, mut noticed, mut gaps) = (1, 0, 0);
        while last < 201 {
            let e = next_event(&mut rx).await;
            if e.seq == 0 {
                noticed += e.counters["dropped_events"];
                continue;
            }
            assert!(e.seq > last, "seq went backwards: {} after {last}", e.seq);
            gaps += e.seq - last - 1;
            last = e.seq;
        }
        assert!(gaps > 0, "expected the subscriber to lag");
        assert_eq!(noticed, gaps, "every missed event is accounted for");
    }

    #[tokio::test]
    async fn heartbeats_while_idle_and_shutdown_ends_the_stream() {
        let bus = EventBus::new("n");
        let stop = CancellationToken::new();
        let mut rx = bus.stream(0, Duration::from_millis(20), stop.clone());
        assert!(matches!(rx.recv().await, Some(EventItem::Heartbeat { .. })));
        stop.cancel();
        while rx.recv().await.is_some() {}
    }
}

//! One cluster's live event feed: a bounded ring of recent items for
//! resuming clients, a broadcast channel for live ones, and the folds
//! (runs/hosts view, metrics) fed from every item as it is published.
//!
//! Invariant: publishing never waits for a consumer. Items are appended
//! to the ring and broadcast under one lock, so a subscriber that takes
//! its snapshot under that lock misses nothing between the two.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use ferry_shared::Event;
use tokio::sync::broadcast;

use super::event_id::EventId;
use super::metrics::Metrics;
use super::view::ClusterView;

/// Items kept for resuming clients (older ones are re-read from the file).
pub const RING_CAPACITY: usize = 20_000;
/// Items a live client may fall behind before it gets a `lag` notice.
pub const CLIENT_BUFFER: usize = 4_096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A line of `events.jsonl`.
    File,
    /// An agent's own Events stream, as the dashboard received it.
    Agent,
}

/// One event as sent to SSE clients: its cursor and its JSON line.
#[derive(Debug)]
pub struct Item {
    pub id: EventId,
    pub origin: Origin,
    pub json: Arc<str>,
}

impl Item {
    /// Whether a client that holds `last` has not seen this item.
    pub fn is_after(&self, last: &EventId) -> bool {
        match self.origin {
            Origin::File => self.id.file_after(last),
            Origin::Agent => self.id.agent_after(last),
        }
    }
}

/// File lines a resuming client needs that the ring no longer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileGap {
    pub gen_ms: u64,
    /// First line to re-read (1-based).
    pub from_line: u64,
    /// Last line to re-read.
    pub to_line: u64,
}

/// What a subscriber starts from.
pub struct Subscription {
    pub gap: Option<FileGap>,
    pub backlog: VecDeque<Arc<Item>>,
    pub rx: broadcast::Receiver<Arc<Item>>,
}

struct Inner {
    ring: VecDeque<Arc<Item>>,
    cursor: EventId,
    capacity: usize,
}

pub struct Hub {
    name: String,
    events_path: PathBuf,
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Item>>,
    view: Mutex<ClusterView>,
    metrics: Arc<Metrics>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Hub {
    pub fn new(name: &str, events_path: PathBuf, epoch: u64, metrics: Arc<Metrics>) -> Self {
        Self::with_capacity(
            name,
            events_path,
            epoch,
            metrics,
            RING_CAPACITY,
            CLIENT_BUFFER,
        )
    }

    pub fn with_capacity(
        name: &str,
        events_path: PathBuf,
        epoch: u64,
        metrics: Arc<Metrics>,
        ring: usize,
        client_buffer: usize,
    ) -> Self {
        let (tx, _) = broadcast::channel(client_buffer.max(1));
        Self {
            name: name.to_string(),
            events_path,
            inner: Mutex::new(Inner {
                ring: VecDeque::new(),
                cursor: EventId {
                    epoch,
                    ..EventId::default()
                },
                capacity: ring.max(1),
            }),
            tx,
            view: Mutex::new(ClusterView::default()),
            metrics,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn events_path(&self) -> &std::path::Path {
        &self.events_path
    }

    /// The cursor after the newest item.
    pub fn cursor(&self) -> EventId {
        lock(&self.inner).cursor
    }

    /// Line `line` of the `events.jsonl` generation `gen_ms`.
    pub fn publish_file(&self, gen_ms: u64, line: u64, ev: &Event, json: &str) {
        self.publish(Origin::File, ev, json, |c| {
            c.gen_ms = gen_ms;
            c.line = line;
        });
    }

    /// An event from an agent's stream (`ev.node` already the inventory address).
    pub fn publish_agent(&self, ev: &Event) {
        let json = ev.to_json_line();
        self.publish(Origin::Agent, ev, &json, |c| c.aseq += 1);
    }

    fn publish(&self, origin: Origin, ev: &Event, json: &str, advance: impl FnOnce(&mut EventId)) {
        lock(&self.view).apply(ev);
        self.metrics.observe(&self.name, ev);
        let mut g = lock(&self.inner);
        advance(&mut g.cursor);
        let item = Arc::new(Item {
            id: g.cursor,
            origin,
            json: Arc::from(json),
        });
        if g.ring.len() >= g.capacity {
            g.ring.pop_front();
        }
        g.ring.push_back(item.clone());
        // No receivers is fine; a full receiver lags, the sender never waits.
        let _ = self.tx.send(item);
    }

    /// Everything after `last`, then live items. A new client (None) gets
    /// the last [`RING_CAPACITY`] lines of the file (re-read where agent
    /// events pushed them out of the ring) and the ring's agent events.
    pub fn subscribe(&self, last: Option<&EventId>) -> Subscription {
        let g = lock(&self.inner);
        let rx = self.tx.subscribe();
        let fresh = EventId {
            gen_ms: g.cursor.gen_ms,
            line: g.cursor.line.saturating_sub(g.capacity as u64),
            ..EventId::default()
        };
        let last = last.unwrap_or(&fresh);
        let backlog: VecDeque<Arc<Item>> = g
            .ring
            .iter()
            .filter(|i| i.is_after(last))
            .cloned()
            .collect();
        // The first file line still in the ring of the current generation.
        let first_in_ring = g
            .ring
            .iter()
            .find(|i| i.origin == Origin::File && i.id.gen_ms == g.cursor.gen_ms)
            .map_or(g.cursor.line + 1, |i| i.id.line);
        let from_line = if last.gen_ms == g.cursor.gen_ms {
            last.line + 1
        } else {
            1
        };
        let gap =
            (last.gen_ms <= g.cursor.gen_ms && g.cursor.gen_ms != 0 && from_line < first_in_ring)
                .then_some(FileGap {
                    gen_ms: g.cursor.gen_ms,
                    from_line,
                    to_line: first_in_ring - 1,
                });
        Subscription { gap, backlog, rx }
    }

    /// A copy of the folded runs/hosts view.
    pub fn view(&self) -> ClusterView {
        lock(&self.view).clone()
    }
}

//! `GET /api/clusters/{name}/events`: the cluster's events as SSE, each
//! with its cursor as `id:`. A client that reconnects with
//! `Last-Event-ID` (or `?last_event_id=`) gets everything after it: from
//! the hub's ring, and what the ring no longer holds re-read from
//! `events.jsonl`. A client that falls more than the per-client buffer
//! behind gets an `event: lag` notice and is caught up the same way; the
//! producer never waits for it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::event_id::EventId;
use super::hub::{FileGap, Hub, Item, Origin};
use super::tail::read_gap;

/// File lines re-read per batch while catching a client up.
const GAP_BATCH: usize = 2_000;

struct Conn {
    hub: Arc<Hub>,
    last: EventId,
    /// File lines still to re-read, then the lines read but not sent.
    gap: Option<FileGap>,
    replay: VecDeque<Arc<Item>>,
    backlog: VecDeque<Arc<Item>>,
    rx: tokio::sync::broadcast::Receiver<Arc<Item>>,
}

impl Conn {
    fn new(hub: Arc<Hub>, resume: Option<EventId>) -> Self {
        let sub = hub.subscribe(resume.as_ref());
        Self {
            last: resume.unwrap_or_default(),
            hub,
            gap: sub.gap,
            replay: VecDeque::new(),
            backlog: sub.backlog,
            rx: sub.rx,
        }
    }

    /// Re-reads the next batch of the file gap.
    async fn fill_gap(&mut self) {
        let Some(gap) = self.gap.take() else {
            return;
        };
        let path = self.hub.events_path().to_path_buf();
        let (lines, rest) = tokio::task::spawn_blocking(move || read_gap(&path, gap, GAP_BATCH))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        self.gap = rest;
        let (epoch, aseq) = (self.last.epoch, self.last.aseq);
        self.replay.extend(lines.into_iter().map(|(line, json)| {
            Arc::new(Item {
                id: EventId {
                    gen_ms: gap.gen_ms,
                    line,
                    epoch,
                    aseq,
                },
                origin: Origin::File,
                json: Arc::from(json),
            })
        }));
    }

    fn send(&mut self, item: &Item) -> Option<Out> {
        if !item.is_after(&self.last) {
            return None;
        }
        match item.origin {
            Origin::File => {
                self.last.gen_ms = item.id.gen_ms;
                self.last.line = item.id.line;
            }
            Origin::Agent => {
                self.last.epoch = item.id.epoch;
                self.last.aseq = item.id.aseq;
            }
        }
        Some(Out::Event {
            id: self.last,
            json: item.json.clone(),
        })
    }

    async fn next(&mut self) -> Option<Out> {
        loop {
            if let Some(item) = self.replay.pop_front() {
                match self.send(&item) {
                    Some(ev) => return Some(ev),
                    None => continue,
                }
            }
            if self.gap.is_some() {
                self.fill_gap().await;
                continue;
            }
            if let Some(item) = self.backlog.pop_front() {
                match self.send(&item) {
                    Some(ev) => return Some(ev),
                    None => continue,
                }
            }
            match self.rx.recv().await {
                Ok(item) => {
                    if let Some(ev) = self.send(&item) {
                        return Some(ev);
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    let sub = self.hub.subscribe(Some(&self.last));
                    self.replay.clear();
                    self.gap = sub.gap;
                    self.backlog = sub.backlog;
                    self.rx = sub.rx;
                    return Some(Out::Lag {
                        missed,
                        resumed_after: self.last,
                    });
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// What a client is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// An event; `id` is the client's cursor after it.
    Event { id: EventId, json: Arc<str> },
    /// The client fell `missed` items behind; what follows catches it up
    /// from `resumed_after`.
    Lag { missed: u64, resumed_after: EventId },
}

impl Out {
    pub fn to_sse(&self) -> SseEvent {
        match self {
            Out::Event { id, json } => SseEvent::default().id(id.to_string()).data(&**json),
            Out::Lag {
                missed,
                resumed_after,
            } => {
                let note = serde_json::json!({
                    "missed": missed,
                    "resumed_after": resumed_after.to_string(),
                });
                SseEvent::default().event("lag").data(note.to_string())
            }
        }
    }
}

/// One client's messages, resuming after `resume` when given.
pub fn messages(hub: Arc<Hub>, resume: Option<EventId>) -> impl Stream<Item = Out> + Send {
    futures::stream::unfold(Conn::new(hub, resume), |mut c| async move {
        c.next().await.map(|m| (m, c))
    })
}

pub fn response(
    hub: Arc<Hub>,
    resume: Option<EventId>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>> + Send> {
    use futures::StreamExt;
    let s = messages(hub, resume).map(|m| Ok(m.to_sse()));
    Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

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

    fn send(&mut self, item: &Item) -> Option<SseEvent> {
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
        Some(
            SseEvent::default()
                .id(self.last.to_string())
                .data(&*item.json),
        )
    }

    async fn next(&mut self) -> Option<SseEvent> {
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
                    let note = serde_json::json!({
                        "missed": missed,
                        "resumed_after": self.last.to_string(),
                    });
                    return Some(SseEvent::default().event("lag").data(note.to_string()));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// The SSE stream for one client, resuming after `resume` when given.
pub fn stream(
    hub: Arc<Hub>,
    resume: Option<EventId>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send {
    futures::stream::unfold(Conn::new(hub, resume), |mut c| async move {
        c.next().await.map(|ev| (Ok(ev), c))
    })
}

pub fn response(
    hub: Arc<Hub>,
    resume: Option<EventId>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>> + Send> {
    Sse::new(stream(hub, resume)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

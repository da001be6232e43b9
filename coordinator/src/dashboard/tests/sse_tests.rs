//! SSE: resume with Last-Event-ID from the ring and the file, lag
//! notices for a stalled client without slowing the producer, a new file
//! generation after truncation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::super::event_id::EventId;
use super::super::hub::Hub;
use super::super::metrics::Metrics;
use super::super::sse::{Out, messages};
use super::super::tail::Tailer;
use super::{append, ev, serve, sse, until};

/// The `i` counter of each message's event.
fn indices(msgs: &[super::Msg]) -> Vec<u64> {
    msgs.iter()
        .map(|m| {
            let e: ferry_shared::Event = serde_json::from_str(&m.data).unwrap();
            e.counters["i"]
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_resume_with_last_event_id_misses_no_event() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("c1");
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("events.jsonl");
    append(&file, 1..=50);
    // A ring of 10: a client resuming 60 lines back is served from the file.
    let (reg, addr) = serve(home.path(), None, (10, 64)).await;
    let hub = reg.get("c1").unwrap().hub.clone();
    until("50 lines tailed", Duration::from_secs(10), || {
        hub.cursor().line == 50
    })
    .await;

    // A fresh client gets what the ring holds (the last 10), in order.
    let first = sse(addr, "/api/clusters/c1/events", &[], 10).await;
    assert_eq!(indices(&first), (41..=50).collect::<Vec<_>>());

    let at20 = EventId {
        gen_ms: 1_700_000_000_001,
        line: 20,
        ..EventId::default()
    }
    .to_string();
    append(&file, 51..=80);
    until("80 lines tailed", Duration::from_secs(10), || {
        hub.cursor().line == 80
    })
    .await;
    let resumed = sse(
        addr,
        "/api/clusters/c1/events",
        &[("last-event-id", &at20)],
        60,
    )
    .await;
    assert_eq!(indices(&resumed), (21..=80).collect::<Vec<_>>());
    let lines: Vec<u64> = resumed
        .iter()
        .map(|m| m.id.parse::<EventId>().unwrap().line)
        .collect();
    assert_eq!(lines, (21..=80).collect::<Vec<_>>(), "ids follow the file");

    // The query form (for EventSource reopened by the page), live after it.
    let q = format!("/api/clusters/c1/events?last_event_id={}", resumed[58].id);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let reader = tokio::spawn(async move {
        let _ = tx.send(());
        sse(addr, &q, &[], 3).await
    });
    rx.await.unwrap();
    append(&file, 81..=82);
    let tail = reader.await.unwrap();
    assert_eq!(indices(&tail), vec![80, 81, 82]);

    let (status, _) = get_bad_id(addr).await;
    assert_eq!(status, 400);
}

async fn get_bad_id(addr: std::net::SocketAddr) -> (u16, String) {
    super::get(
        addr,
        "/api/clusters/c1/events",
        &[("last-event-id", "nope")],
    )
    .await
}

#[tokio::test]
async fn slow_client_gets_a_lag_notice_and_never_slows_the_producer() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Arc::new(Hub::with_capacity(
        "c1",
        dir.path().join("events.jsonl"),
        7,
        Arc::new(Metrics::default()),
        100_000,
        16,
    ));
    // Subscribed, then never read while the producer publishes.
    let mut slow = Box::pin(messages(hub.clone(), None));
    let t = Instant::now();
    for i in 1..=20_000 {
        hub.publish_agent(&ev(i));
    }
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "20000 publishes took {took:?} with a stalled client"
    );
    let first = tokio::time::timeout(Duration::from_secs(5), slow.next())
        .await
        .unwrap()
        .unwrap();
    let Out::Lag {
        missed,
        resumed_after,
    } = first
    else {
        panic!("the stalled client's first message is not a lag notice: {first:?}");
    };
    assert!(missed >= 20_000 - 16, "missed {missed}");
    assert_eq!(resumed_after.aseq, 0);
    // Then it is caught up from the ring: every event, in order, once.
    for want in 1..=20_000u64 {
        let m = tokio::time::timeout(Duration::from_secs(5), slow.next())
            .await
            .unwrap()
            .unwrap();
        let Out::Event { id, json } = m else {
            panic!("a second lag notice at {want}");
        };
        assert_eq!(id.aseq, want);
        assert!(json.contains(&format!("\"i\":{want}")), "{json}");
    }
}

#[tokio::test]
async fn a_truncated_file_starts_a_new_generation() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let hub = Hub::with_capacity("c1", file.clone(), 7, Arc::new(Metrics::default()), 100, 16);
    let mut t = Tailer::new(&file);
    append(&file, 1..=3);
    // A torn last line is not published until its newline arrives.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"v\":1"))
        .unwrap();
    assert_eq!(t.poll(&hub).unwrap(), 3);
    let old = hub.cursor();
    assert_eq!((old.gen_ms, old.line), (1_700_000_000_001, 3));
    std::fs::write(&file, "").unwrap();
    append(&file, 100..=101);
    assert_eq!(t.poll(&hub).unwrap(), 2);
    let new = hub.cursor();
    assert_eq!((new.gen_ms, new.line), (1_700_000_000_100, 2));
    assert!(new.file_after(&old), "ids keep increasing across files");
}

#[tokio::test]
async fn a_new_client_gets_the_file_even_when_agent_events_filled_the_ring() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let hub = Arc::new(Hub::with_capacity(
        "c1",
        file.clone(),
        7,
        Arc::new(Metrics::default()),
        10,
        64,
    ));
    append(&file, 1..=5);
    assert_eq!(Tailer::new(&file).poll(&hub).unwrap(), 5);
    for i in 100..120 {
        hub.publish_agent(&ev(i));
    }
    let got: Vec<Out> = messages(hub.clone(), None).take(15).collect().await;
    let ids: Vec<(u64, u64)> = got
        .iter()
        .map(|m| match m {
            Out::Event { id, .. } => (id.line, id.aseq),
            Out::Lag { .. } => panic!("lag: {m:?}"),
        })
        .collect();
    let mut want: Vec<(u64, u64)> = (1..=5).map(|l| (l, 0)).collect();
    want.extend((11..=20).map(|a| (5, a)));
    assert_eq!(
        ids, want,
        "file lines re-read, then the ring's agent events"
    );
}

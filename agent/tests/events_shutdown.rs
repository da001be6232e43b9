//! The Events RPC (replay with since_seq, live delivery, heartbeats) and
//! graceful shutdown (streams end, running process groups are killed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{DEADLINE, alive, argv, poll_until, run, start_agent};
use ferry_proto::pb;
use futures::StreamExt;
use tonic::Streaming;

/// The next event (skipping heartbeats), within the deadline.
async fn next_event(s: &mut Streaming<pb::EventFrame>) -> pb::Event {
    let fut = async {
        loop {
            match s.next().await.unwrap().unwrap().frame.unwrap() {
                pb::event_frame::Frame::Event(e) => return e,
                pb::event_frame::Frame::Heartbeat(_) => continue,
            }
        }
    };
    tokio::time::timeout(DEADLINE, fut).await.unwrap()
}

#[tokio::test]
async fn events_replay_then_deliver_live_in_seq_order() {
    let agent = start_agent(|_| {}).await;
    let mut c = agent.client().await;
    let mut req = argv(&["echo", "hi"]);
    req.operation_id = "op-1".into();
    assert_eq!(run(&mut c, req).await.exit().code, 0);

    let mut s = c
        .events(pb::EventsRequest { since_seq: 0 })
        .await
        .unwrap()
        .into_inner();
    let started = next_event(&mut s).await;
    assert_eq!(
        (started.seq, started.phase.as_str(), started.kind.as_str()),
        (1, "agent", "started")
    );
    assert_eq!(started.node, "test-node");
    let exec_started = next_event(&mut s).await;
    assert_eq!(exec_started.seq, 2);
    assert_eq!(
        (
            exec_started.operation_id.as_str(),
            exec_started.phase.as_str(),
            exec_started.kind.as_str()
        ),
        ("op-1", "exec", "started")
    );
    let finished = next_event(&mut s).await;
    assert_eq!((finished.seq, finished.kind.as_str()), (3, "finished"));
    assert_eq!(finished.counters.get("exit_code"), Some(&0));
    assert!(finished.counters.contains_key("duration_ms"));

    // Live: a failing command while the stream is open.
    let mut req = argv(&["sh", "-c", "exit 4"]);
    req.operation_id = "op-2".into();
    assert_eq!(run(&mut c, req).await.exit().code, 4);
    let live_started = next_event(&mut s).await;
    let failed = next_event(&mut s).await;
    assert_eq!(
        (live_started.seq, live_started.kind.as_str()),
        (4, "started")
    );
    assert_eq!((failed.seq, failed.kind.as_str()), (5, "failed"));
    assert_eq!(failed.operation_id, "op-2");
    assert_eq!(failed.counters.get("exit_code"), Some(&4));
    assert!(failed.message.contains("exit code 4"), "{}", failed.message);

    // since_seq skips what the caller has already seen.
    let mut s2 = c
        .events(pb::EventsRequest { since_seq: 3 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_event(&mut s2).await.seq, 4);
    assert_eq!(next_event(&mut s2).await.seq, 5);
}

#[tokio::test]
async fn idle_event_streams_carry_heartbeats() {
    let agent = start_agent(|c| c.heartbeat = Duration::from_millis(50)).await;
    let mut c = agent.client().await;
    let mut s = c
        .events(pb::EventsRequest { since_seq: 1 })
        .await
        .unwrap()
        .into_inner();
    let beats = async {
        let mut n = 0;
        while n < 3 {
            if let Some(pb::event_frame::Frame::Heartbeat(h)) =
                s.next().await.unwrap().unwrap().frame
            {
                assert!(h.unix_time_ms > 0);
                n += 1;
            }
        }
    };
    tokio::time::timeout(DEADLINE, beats).await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_ends_streams_and_kills_running_commands() {
    let mut agent = start_agent(|_| {}).await;
    let mut c = agent.client().await;
    let mut exec = c
        .exec(argv(&["sh", "-c", "sleep 300 & echo $!; wait"]))
        .await
        .unwrap()
        .into_inner();
    let mut out = String::new();
    let read = async {
        while !out.contains('\n') {
            if let Some(pb::exec_frame::Frame::Stdout(o)) =
                exec.next().await.unwrap().unwrap().frame
            {
                out.push_str(&String::from_utf8_lossy(&o.data));
            }
        }
    };
    tokio::time::timeout(DEADLINE, read).await.unwrap();
    let grandchild: u32 = out.trim().parse().unwrap();
    let mut events = c
        .events(pb::EventsRequest { since_seq: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_event(&mut events).await.seq, 1);

    agent.trigger_shutdown();

    // The exec stream ends with an exit frame: killed by SIGKILL.
    let rest = common::collect(exec).await;
    let exit = rest.exit();
    assert_eq!((exit.code, exit.signal, exit.timed_out), (-1, 9, false));
    assert!(
        poll_until(Duration::from_secs(10), || !alive(grandchild)).await,
        "running command survived shutdown"
    );
    // The events stream ends too.
    let drained = async { while let Some(Ok(_)) = events.next().await {} };
    tokio::time::timeout(DEADLINE, drained).await.unwrap();
    agent.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_stops_accepting_connections() {
    let agent = start_agent(|_| {}).await;
    let addr = agent.addr;
    let ca = agent.pki.ca.cert_pem().to_string();
    let (cert, key) = (
        agent.pki.client.cert_pem.clone(),
        agent.pki.client.key_pem.clone(),
    );
    agent.shutdown().await.unwrap();
    let late = common::connect(addr, &ca, Some((&cert, &key))).await;
    if let Ok(mut c) = late {
        assert!(c.facts(pb::FactsRequest {}).await.is_err());
    }
}

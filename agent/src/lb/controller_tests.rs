use super::*;
use crate::lb::health::tests::tls_server;
use ferry_shared::lb::{BackendKind, HealthCheck, MemberState, RealServer, Scheduler};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};

/// Records applies; reads back the effective rules.
#[derive(Default)]
struct Mock {
    rules: Mutex<Option<LbRules>>,
    applies: AtomicUsize,
    /// Applies that fail before one succeeds.
    failing: AtomicUsize,
}

#[tonic::async_trait]
impl Backend for Mock {
    fn name(&self) -> &'static str {
        "mock"
    }
    async fn apply(&self, rules: &LbRules) -> Result<(), LbError> {
        self.applies.fetch_add(1, Ordering::SeqCst);
        if self
            .failing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(LbError::Parse {
                argv: "nft -f -".into(),
                detail: "injected".into(),
            });
        }
        *self.rules.lock().unwrap() = Some(rules.effective());
        Ok(())
    }
    async fn read(&self) -> Result<Option<LbRules>, LbError> {
        Ok(self.rules.lock().unwrap().clone())
    }
    async fn clear(&self) -> Result<(), LbError> {
        *self.rules.lock().unwrap() = None;
        Ok(())
    }
}

struct Factory(Arc<Mock>);

impl BackendFactory for Factory {
    fn backend(&self, _kind: BackendKind) -> Result<Arc<dyn Backend>, LbError> {
        Ok(self.0.clone())
    }
}

fn spec(members: &[std::net::SocketAddrV4], version: u64) -> LbSpec {
    LbSpec {
        vip: ferry_shared::lb::DEFAULT_VIP,
        real_servers: members
            .iter()
            .map(|a| RealServer {
                addr: *a,
                weight: 1,
            })
            .collect(),
        scheduler: Scheduler::Rr,
        health: HealthCheck {
            interval_ms: 100,
            timeout_ms: 300,
            ..HealthCheck::default()
        },
        backend: BackendKind::Auto,
        version,
    }
}

async fn until(mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn health_drives_membership_versions_persist_and_delete_clears() {
    let (s1, s2) = (Arc::new(AtomicU16::new(200)), Arc::new(AtomicU16::new(200)));
    let (a1, a2) = (tls_server(s1.clone()).await, tls_server(s2.clone()).await);
    let mock = Arc::new(Mock::default());
    let dir = tempfile::tempdir().unwrap();
    let events = EventBus::new("n1");
    let ctl = LbController::new(
        events.clone(),
        Arc::new(Factory(mock.clone())),
        Some(Store::new(dir.path())),
        CancellationToken::new(),
    )
    .unwrap();
    let out = ctl.set(spec(&[a1, a2], 5), "op").await.unwrap();
    assert!(out.changed);
    assert_eq!(mock.read().await.unwrap().unwrap().members.len(), 2);

    // Same state: no-op; older: refused; same version, other state: refused.
    assert!(!ctl.set(spec(&[a1, a2], 5), "op").await.unwrap().changed);
    assert!(matches!(
        ctl.set(spec(&[a1], 4), "op").await,
        Err(LbError::Stale { .. })
    ));
    assert!(matches!(
        ctl.set(spec(&[a1], 5), "op").await,
        Err(LbError::Conflict(5))
    ));

    // a2 fails: drained (weight 0), then removed.
    s2.store(500, Ordering::SeqCst);
    let m = mock.clone();
    until(|| {
        m.rules
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|r| !r.members.contains_key(&a2))
    })
    .await;
    let st = ctl.status();
    let member = st.membership.unwrap().members[1].clone();
    assert_eq!(member.state, MemberState::Removed);
    // Back: re-added.
    s2.store(200, Ordering::SeqCst);
    let m = mock.clone();
    until(|| {
        m.rules
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|r| r.members.get(&a2) == Some(&1))
    })
    .await;

    // Every change is an event naming the member and the reason.
    let mut rx = events.stream(0, Duration::from_secs(60), CancellationToken::new());
    let mut msgs = Vec::new();
    while msgs.len() < 3 {
        if let Some(crate::events::EventItem::Event(e)) = rx.recv().await
            && e.phase == Phase::LoadBalancer
            && e.kind == EventKind::Progress
        {
            msgs.push(e.message);
        }
    }
    assert!(
        msgs[0].contains(&format!("{a2} drained")) && msgs[0].contains("HTTP status 500"),
        "{msgs:?}"
    );
    assert!(msgs[1].contains("removed"), "{msgs:?}");
    assert!(msgs[2].contains("re-added"), "{msgs:?}");

    // Someone flushes the rules: the next tick puts them back.
    mock.clear().await.unwrap();
    let m = mock.clone();
    until(|| m.rules.lock().unwrap().is_some()).await;

    // A new controller (agent restart) restores the persisted state.
    let ctl2 = LbController::new(
        EventBus::new("n1"),
        Arc::new(Factory(mock.clone())),
        Some(Store::new(dir.path())),
        CancellationToken::new(),
    )
    .unwrap();
    ctl2.restore().await;
    assert_eq!(ctl2.status().spec.unwrap().version, 5);

    assert!(ctl.delete("op").await.unwrap());
    assert_eq!(mock.read().await.unwrap(), None);
    assert!(!dir.path().join("state.json").exists());
    assert_eq!(ctl.status(), LbStatus::default());
}

#[tokio::test]
async fn a_failed_first_apply_is_reported_and_retried() {
    let ok = Arc::new(AtomicU16::new(200));
    let a1 = tls_server(ok).await;
    let mock = Arc::new(Mock::default());
    mock.failing.store(1, Ordering::SeqCst);
    let events = EventBus::new("n1");
    let ctl = LbController::new(
        events,
        Arc::new(Factory(mock.clone())),
        None,
        CancellationToken::new(),
    )
    .unwrap();
    let err = ctl.set(spec(&[a1], 1), "op").await.unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");
    assert!(ctl.status().last_error.contains("injected"));
    let m = mock.clone();
    until(|| m.rules.lock().unwrap().is_some()).await;
    let c = ctl.clone();
    until(move || c.status().last_error.is_empty()).await;
    // The state is held: the same version again is a no-op.
    assert!(!ctl.set(spec(&[a1], 1), "op").await.unwrap().changed);
}

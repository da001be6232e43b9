//! The controller: one desired state at a time, a reconcile task per state.
//! Each tick probes every member concurrently, feeds the lvscare state
//! machine, publishes an event per membership change, and (re)applies the
//! rules when the kernel differs from what the members call for (which also
//! repairs rules someone else removed).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ferry_shared::lb::{LbRules, LbSpec, Membership, Transition};
use ferry_shared::{EventKind, Phase};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::LbError;
use super::backend::{Backend, BackendFactory};
use super::health::Prober;
use super::store::Store;
use crate::events::EventBus;

/// What `GetLoadBalancer` reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LbStatus {
    pub spec: Option<LbSpec>,
    pub backend: String,
    pub membership: Option<Membership>,
    pub last_error: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetOutcome {
    pub changed: bool,
    pub version: u64,
    pub backend: &'static str,
}

struct Running {
    spec: LbSpec,
    backend: Arc<dyn Backend>,
    cancel: CancellationToken,
    task: JoinHandle<Membership>,
}

struct Inner {
    events: EventBus,
    factory: Arc<dyn BackendFactory>,
    store: Option<Store>,
    prober: Prober,
    shutdown: CancellationToken,
    running: tokio::sync::Mutex<Option<Running>>,
    status: Mutex<LbStatus>,
}

/// Cheap to clone; all clones drive one controller.
#[derive(Clone)]
pub struct LbController {
    inner: Arc<Inner>,
}

impl LbController {
    /// `store` None: nothing is persisted (tests). `shutdown` stops the
    /// reconcile task; the kernel rules stay.
    pub fn new(
        events: EventBus,
        factory: Arc<dyn BackendFactory>,
        store: Option<Store>,
        shutdown: CancellationToken,
    ) -> Result<Self, LbError> {
        Ok(Self {
            inner: Arc::new(Inner {
                events,
                factory,
                store,
                prober: Prober::new()?,
                shutdown,
                running: tokio::sync::Mutex::new(None),
                status: Mutex::new(LbStatus::default()),
            }),
        })
    }

    fn status_mut(&self) -> MutexGuard<'_, LbStatus> {
        self.inner.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn status(&self) -> LbStatus {
        self.status_mut().clone()
    }

    /// Restores the persisted state (agent start). Failures are events.
    pub async fn restore(&self) {
        let Some(store) = &self.inner.store else {
            return;
        };
        let ev = &self.inner.events;
        match store.load() {
            Ok(None) => {}
            Ok(Some(spec)) => {
                if let Err(e) = self.set(spec, "").await {
                    ev.publish(
                        ev.event("", Phase::LoadBalancer, EventKind::Failed)
                            .message(format!("restoring the load balancer failed: {e}")),
                    );
                }
            }
            Err(e) => {
                ev.publish(
                    ev.event("", Phase::LoadBalancer, EventKind::Failed)
                        .message(e.to_string()),
                );
            }
        }
    }

    /// Applies a desired state: refused if older than the held one, a no-op
    /// if the same, else persisted, applied once, then reconciled.
    pub async fn set(&self, spec: LbSpec, op: &str) -> Result<SetOutcome, LbError> {
        spec.validate()?;
        let mut running = self.inner.running.lock().await;
        if let Some(cur) = running.as_mut() {
            if spec.version < cur.spec.version {
                return Err(LbError::Stale {
                    offered: spec.version,
                    held: cur.spec.version,
                });
            }
            if spec.same_state(&cur.spec) {
                if spec.version > cur.spec.version {
                    if let Some(s) = &self.inner.store {
                        s.save(&spec)?;
                    }
                    cur.spec.version = spec.version;
                    if let Some(s) = self.status_mut().spec.as_mut() {
                        s.version = spec.version;
                    }
                }
                return Ok(SetOutcome {
                    changed: false,
                    version: cur.spec.version,
                    backend: cur.backend.name(),
                });
            }
            if spec.version == cur.spec.version {
                return Err(LbError::Conflict(spec.version));
            }
        }
        let backend = self.inner.factory.backend(spec.backend)?;
        let membership = match running.take() {
            Some(old) => {
                old.cancel.cancel();
                let kept = old
                    .task
                    .await
                    .unwrap_or_else(|_| Membership::new(&old.spec));
                if old.backend.name() != backend.name() {
                    old.backend.clear().await?;
                }
                kept.update(&spec)
            }
            None => Membership::new(&spec),
        };
        if let Some(s) = &self.inner.store {
            s.save(&spec)?;
        }
        let rules = membership.rules(&spec);
        let applied = backend.apply(&rules).await;
        {
            let mut st = self.status_mut();
            st.spec = Some(spec.clone());
            st.backend = backend.name().to_string();
            st.membership = Some(membership.clone());
            st.last_error = applied
                .as_ref()
                .err()
                .map(ToString::to_string)
                .unwrap_or_default();
        }
        let ev = &self.inner.events;
        ev.publish(
            ev.event(op, Phase::LoadBalancer, EventKind::Started)
                .counter("version", spec.version)
                .counter("members", spec.real_servers.len() as u64)
                .message(format!(
                    "load balancer {} over {} members ({}, {}), health check every {} ms",
                    spec.vip,
                    spec.real_servers.len(),
                    backend.name(),
                    spec.scheduler,
                    spec.health.interval_ms
                )),
        );
        // The reconcile task starts even when this first apply failed: it
        // retries every tick, and the error still reaches the caller.
        let cancel = self.inner.shutdown.child_token();
        let task = tokio::spawn(reconcile(
            self.clone(),
            spec.clone(),
            backend.clone(),
            membership,
            rules,
            cancel.clone(),
        ));
        let outcome = SetOutcome {
            changed: true,
            version: spec.version,
            backend: backend.name(),
        };
        *running = Some(Running {
            spec,
            backend,
            cancel,
            task,
        });
        applied.map(|()| outcome)
    }

    /// Removes rules, route and persisted state. Returns whether anything
    /// was configured.
    pub async fn delete(&self, op: &str) -> Result<bool, LbError> {
        let mut running = self.inner.running.lock().await;
        let had = running.is_some();
        let backend = match running.take() {
            Some(old) => {
                old.cancel.cancel();
                let _ = old.task.await;
                old.backend
            }
            None => self
                .inner
                .factory
                .backend(ferry_shared::lb::BackendKind::Auto)?,
        };
        backend.clear().await?;
        if let Some(s) = &self.inner.store {
            s.remove()?;
        }
        *self.status_mut() = LbStatus::default();
        let ev = &self.inner.events;
        ev.publish(
            ev.event(op, Phase::LoadBalancer, EventKind::Finished)
                .message("load balancer deleted: rules, VIP route and state removed"),
        );
        Ok(had)
    }

    fn transition_event(&self, t: &Transition) {
        let ev = &self.inner.events;
        let mut e = ev
            .event("", Phase::LoadBalancer, EventKind::Progress)
            .counter("consecutive", u64::from(t.consecutive))
            .message(t.message());
        if let Some(w) = t.weight {
            e = e.counter("weight", u64::from(w));
        }
        ev.publish(e);
    }
}

async fn reconcile(
    ctl: LbController,
    spec: LbSpec,
    backend: Arc<dyn Backend>,
    mut membership: Membership,
    mut applied: LbRules,
    cancel: CancellationToken,
) -> Membership {
    let mut tick = tokio::time::interval(Duration::from_millis(spec.health.interval_ms));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let prober = ctl.inner.prober.clone();
    let mut last_error = String::new();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return membership,
            _ = tick.tick() => {}
        }
        let probes = membership.members.iter().map(|m| {
            let (p, addr, check) = (prober.clone(), m.addr, spec.health.clone());
            async move { (addr, p.probe(addr, &check).await) }
        });
        let results = tokio::select! {
            () = cancel.cancelled() => return membership,
            r = futures::future::join_all(probes) => r,
        };
        for (addr, result) in results {
            if let Some(t) = membership.observe(addr, result, &spec.health) {
                tracing::info!(member = %t.addr, to = t.to.as_str(), "{}", t.message());
                ctl.transition_event(&t);
            }
        }
        let want = membership.rules(&spec);
        let in_kernel = backend.read().await;
        let error = match in_kernel {
            Ok(Some(cur)) if cur == want.effective() && want == applied => String::new(),
            _ => match backend.apply(&want).await {
                Ok(()) => {
                    applied = want;
                    String::new()
                }
                Err(e) => e.to_string(),
            },
        };
        if !error.is_empty() && error != last_error {
            let ev = &ctl.inner.events;
            ev.publish(
                ev.event("", Phase::LoadBalancer, EventKind::Failed)
                    .message(format!("applying the load balancer rules failed: {error}")),
            );
        }
        last_error.clone_from(&error);
        let mut st = ctl.status_mut();
        st.membership = Some(membership.clone());
        st.last_error = error;
    }
}

#[cfg(test)]
#[path = "controller_tests.rs"]
mod tests;

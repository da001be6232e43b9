//! One watcher per inventory node: connects to its agent over mTLS,
//! records health (Facts: up, version) and its VIP load balancer's
//! members, and publishes the agent's own Events stream (LB membership
//! changes, exec activity) into the cluster's hub. Reconnects with
//! exponential backoff (1 s .. 30 s) and resumes the agent's stream after
//! the last sequence number it saw.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;

use super::hub::Hub;
use super::metrics::Metrics;
use crate::client::{AgentClient, ClientTls};
use crate::lb::{LbClient, NodeLbStatus};
use crate::output::now_ms;
use crate::state::NodeRecord;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Facts and LB status are re-read this often while connected.
const REFRESH_EVERY: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentHealth {
    /// `up`, `down` or `unknown` (not tried yet).
    pub state: &'static str,
    pub version: String,
    pub checked_ms: i64,
    pub error: String,
    pub lb: Option<NodeLbStatus>,
}

/// host → health, shared by a cluster's watchers and the API.
pub type HealthMap = Arc<Mutex<BTreeMap<String, AgentHealth>>>;

pub struct Watch {
    pub cluster: String,
    pub pki_dir: PathBuf,
    pub node: NodeRecord,
    pub hub: Arc<Hub>,
    pub health: HealthMap,
    pub metrics: Arc<Metrics>,
}

impl Watch {
    fn host(&self) -> String {
        self.node.addr.to_string()
    }

    fn set(&self, f: impl FnOnce(&mut AgentHealth)) {
        let mut g = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let h = g.entry(self.host()).or_default();
        f(h);
        h.checked_ms = now_ms();
        let up = h.state == "up";
        self.metrics
            .set_agent(&self.cluster, &self.host(), up, &h.version);
        if let Some(lb) = &h.lb {
            for m in &lb.members {
                let healthy = m.state == "active";
                self.metrics
                    .set_lb_member(&self.cluster, &self.host(), &m.addr, healthy);
            }
        }
    }

    fn down(&self, error: String) {
        self.set(|h| {
            h.state = "down";
            h.error = error;
        });
    }

    async fn refresh(&self, c: &AgentClient) -> Result<(), String> {
        let facts = c.facts().await.map_err(|e| e.to_string())?;
        let lb = LbClient::new(c, CONNECT_TIMEOUT).get().await.ok();
        self.set(|h| {
            h.state = "up";
            h.version = facts.agent_version.clone();
            h.error.clear();
            h.lb = lb.filter(|s| s.configured);
        });
        Ok(())
    }

    /// One connection: until the stream or a refresh fails.
    async fn session(&self, tls: &ClientTls, since: &mut u64) -> Result<(), String> {
        let ip = self.node.addr.ip;
        let c = AgentClient::connect(ip, self.node.agent_port, tls, CONNECT_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        self.refresh(&c).await?;
        let mut events = Box::pin(c.events(*since).await.map_err(|e| e.to_string())?);
        let mut tick = tokio::time::interval(REFRESH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                item = events.next() => match item {
                    Some(Ok(mut ev)) => {
                        *since = ev.seq + 1;
                        ev.node = self.host();
                        self.hub.publish_agent(&ev);
                        if ev.phase == ferry_shared::Phase::LoadBalancer {
                            let _ = self.refresh(&c).await;
                        }
                    }
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err("the agent closed its event stream".into()),
                },
                _ = tick.tick() => self.refresh(&c).await?,
            }
        }
    }

    /// Runs until the task is aborted.
    pub async fn run(self) {
        let mut since = 0u64;
        let mut backoff = BACKOFF_MIN;
        loop {
            let tls = match crate::state::read_client_tls(&self.pki_dir) {
                Ok(Some((ca, cert, key))) => ClientTls::from_pem(&ca, &cert, key.expose()),
                Ok(None) => {
                    self.down("the cluster has no coordinator certificate yet".into());
                    tokio::time::sleep(BACKOFF_MAX).await;
                    continue;
                }
                Err(e) => {
                    self.down(e.to_string());
                    tokio::time::sleep(BACKOFF_MAX).await;
                    continue;
                }
            };
            let started = std::time::Instant::now();
            if let Err(e) = self.session(&tls, &mut since).await {
                self.down(e);
            }
            if started.elapsed() > BACKOFF_MAX {
                backoff = BACKOFF_MIN;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
}

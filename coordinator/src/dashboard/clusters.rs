//! The clusters under the state directory, found by a periodic scan: a
//! subdirectory with a valid cluster name holding `agents.json` or
//! `events.jsonl`. Each gets a hub, a tailer of its `events.jsonl` and a
//! supervisor that keeps one agent watcher per inventory node.
//!
//! Invariant: the dashboard never writes the state directory (it reads
//! files and calls agents only).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::JoinHandle;

use super::agents::{HealthMap, Watch};
use super::hub::Hub;
use super::metrics::Metrics;
use super::tail;
use crate::pipeline::EVENTS_FILE;
use crate::state::{Inventory, NodeRecord, validate_cluster_name};

/// How often the state directory and the inventories are re-read.
pub const SCAN_EVERY: Duration = Duration::from_secs(2);

pub struct Cluster {
    pub name: String,
    pub dir: PathBuf,
    pub hub: Arc<Hub>,
    pub health: HealthMap,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for t in lock(&self.tasks).iter() {
            t.abort();
        }
    }
}

impl Cluster {
    pub fn inventory(&self) -> Inventory {
        Inventory::load(&self.dir.join("agents.json")).unwrap_or_default()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Registry {
    home: PathBuf,
    epoch: u64,
    pub metrics: Arc<Metrics>,
    watch_agents: bool,
    tail_every: Duration,
    /// Hub ring and per-client buffer sizes.
    limits: (usize, usize),
    clusters: Mutex<BTreeMap<String, Arc<Cluster>>>,
}

fn is_cluster_dir(p: &Path) -> bool {
    p.join("agents.json").is_file() || p.join(EVENTS_FILE).is_file()
}

impl Registry {
    pub fn new(home: &Path, watch_agents: bool, tail_every: Duration) -> Self {
        Self {
            home: home.to_path_buf(),
            epoch: u64::try_from(crate::output::now_ms()).unwrap_or(1).max(1),
            metrics: Arc::new(Metrics::default()),
            watch_agents,
            tail_every,
            limits: (super::hub::RING_CAPACITY, super::hub::CLIENT_BUFFER),
            clusters: Mutex::new(BTreeMap::new()),
        }
    }

    /// Smaller hubs (tests): `ring` items kept, `client_buffer` per client.
    pub fn with_limits(mut self, ring: usize, client_buffer: usize) -> Self {
        self.limits = (ring, client_buffer);
        self
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    pub fn names(&self) -> Vec<String> {
        lock(&self.clusters).keys().cloned().collect()
    }

    pub fn get(&self, name: &str) -> Option<Arc<Cluster>> {
        lock(&self.clusters).get(name).cloned()
    }

    /// Picks up new cluster directories (must run inside a tokio runtime).
    pub fn scan(&self) {
        let Ok(entries) = std::fs::read_dir(&self.home) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let dir = e.path();
            if validate_cluster_name(&name).is_err() || !is_cluster_dir(&dir) {
                continue;
            }
            let mut g = lock(&self.clusters);
            if g.contains_key(&name) {
                continue;
            }
            let hub = Arc::new(Hub::with_capacity(
                &name,
                dir.join(EVENTS_FILE),
                self.epoch,
                self.metrics.clone(),
                self.limits.0,
                self.limits.1,
            ));
            let c = Arc::new(Cluster {
                name: name.clone(),
                dir,
                hub: hub.clone(),
                health: HealthMap::default(),
                tasks: Mutex::new(vec![tokio::spawn(tail::follow(hub, self.tail_every))]),
            });
            if self.watch_agents {
                lock(&c.tasks).push(tokio::spawn(supervise(
                    name.clone(),
                    c.dir.clone(),
                    c.hub.clone(),
                    c.health.clone(),
                    self.metrics.clone(),
                )));
            }
            g.insert(name, c);
        }
    }
}

/// Keeps one watcher per inventory node of a cluster.
async fn supervise(
    cluster: String,
    dir: PathBuf,
    hub: Arc<Hub>,
    health: HealthMap,
    metrics: Arc<Metrics>,
) {
    struct Abort(JoinHandle<()>);
    impl Drop for Abort {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let mut watchers: BTreeMap<String, (NodeRecord, Abort)> = BTreeMap::new();
    loop {
        let inv = Inventory::load(&dir.join("agents.json")).unwrap_or_default();
        let want: BTreeMap<String, NodeRecord> = inv
            .nodes
            .into_iter()
            .map(|n| (n.addr.to_string(), n))
            .collect();
        watchers.retain(|host, (rec, _)| want.get(host) == Some(rec));
        lock(&health).retain(|host, _| want.contains_key(host));
        for (host, rec) in want {
            if watchers.contains_key(&host) {
                continue;
            }
            let w = Watch {
                cluster: cluster.clone(),
                pki_dir: dir.join("pki"),
                node: rec.clone(),
                hub: hub.clone(),
                health: health.clone(),
                metrics: metrics.clone(),
            };
            watchers.insert(host, (rec, Abort(tokio::spawn(w.run()))));
        }
        tokio::time::sleep(SCAN_EVERY).await;
    }
}

/// Re-scans the state directory until the task is dropped.
pub async fn keep_scanning(reg: Arc<Registry>) {
    loop {
        reg.scan();
        tokio::time::sleep(SCAN_EVERY).await;
    }
}

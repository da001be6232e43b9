//! Prometheus metrics (text format 0.0.4) fed from the events the
//! dashboard sees and from its agent watchers: per-node transfer bytes,
//! agents' exec count and duration, LB member health, agent up/version.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, MutexGuard};

use ferry_shared::transfer::counters as c;
use ferry_shared::{Event, EventKind, Phase, Source};

/// Upper bounds (seconds) of the exec duration histogram's buckets.
pub const EXEC_BUCKETS: [f64; 9] = [0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0];

#[derive(Default)]
struct Histogram {
    buckets: [u64; EXEC_BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    /// (cluster, node) → content bytes delivered.
    transfer_bytes: BTreeMap<(String, String), u64>,
    /// (cluster, node, transfer label) → (op, last cumulative value seen):
    /// one entry per tree and node, whatever the number of runs.
    transfer_last: BTreeMap<(String, String, String), (String, u64)>,
    /// (cluster, source) → events seen.
    events: BTreeMap<(String, &'static str), u64>,
    /// (cluster, node, outcome) → execs ended.
    exec_total: BTreeMap<(String, String, &'static str), u64>,
    exec_seconds: BTreeMap<(String, String), Histogram>,
    /// (cluster, node, member) → 1 healthy / 0 not.
    lb_member: BTreeMap<(String, String, String), u8>,
    /// (cluster, node) → (up, version).
    agent: BTreeMap<(String, String), (bool, String)>,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// The label of a transfer progress message: `distribute: rootfs: 1 MiB / ...`
/// → `distribute: rootfs` (empty for scp's bare messages).
fn transfer_label(message: &str) -> String {
    message
        .rsplit_once(": ")
        .map(|(l, _)| l.to_string())
        .unwrap_or_default()
}

/// `member 10.0.0.2:6443 drained (weight 0): ...` → (member, healthy).
pub fn lb_transition(message: &str) -> Option<(String, bool)> {
    let rest = message.strip_prefix("member ")?;
    let (member, what) = rest.split_once(' ')?;
    Some((member.to_string(), what.starts_with("re-added")))
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn observe(&self, cluster: &str, ev: &Event) {
        let mut g = self.lock();
        let source = match ev.source {
            Source::Coordinator => "coordinator",
            Source::Agent => "agent",
        };
        *g.events.entry((cluster.to_string(), source)).or_default() += 1;
        let sent = ev.counters.get(c::CONTENT_BYTES_SENT).copied();
        let has_total = ev.counters.contains_key(c::CONTENT_BYTES_TOTAL);
        if let (Some(sent), true, false) = (sent, has_total, ev.node.is_empty())
            && ev.kind == EventKind::Progress
        {
            let key = (
                cluster.to_string(),
                ev.node.clone(),
                transfer_label(&ev.message),
            );
            let last = g.transfer_last.insert(key, (ev.op.clone(), sent));
            // Another operation, or a lower value: a new transfer.
            let delta = match last {
                Some((op, last)) if op == ev.op && sent >= last => sent - last,
                _ => sent,
            };
            *g.transfer_bytes
                .entry((cluster.to_string(), ev.node.clone()))
                .or_default() += delta;
        }
        let terminal = matches!(ev.kind, EventKind::Finished | EventKind::Failed);
        if ev.source == Source::Agent && ev.phase == Phase::Exec && terminal {
            let outcome = if ev.kind == EventKind::Finished {
                "ok"
            } else {
                "failed"
            };
            *g.exec_total
                .entry((cluster.to_string(), ev.node.clone(), outcome))
                .or_default() += 1;
            let secs = ev.counters.get("duration_ms").copied().unwrap_or(0) as f64 / 1000.0;
            let h = g
                .exec_seconds
                .entry((cluster.to_string(), ev.node.clone()))
                .or_default();
            for (i, le) in EXEC_BUCKETS.iter().enumerate() {
                if secs <= *le {
                    h.buckets[i] += 1;
                }
            }
            h.sum += secs;
            h.count += 1;
        }
        if ev.phase == Phase::LoadBalancer
            && ev.kind == EventKind::Progress
            && let Some((member, healthy)) = lb_transition(&ev.message)
        {
            g.lb_member.insert(
                (cluster.to_string(), ev.node.clone(), member),
                u8::from(healthy),
            );
        }
    }

    pub fn set_lb_member(&self, cluster: &str, node: &str, member: &str, healthy: bool) {
        self.lock().lb_member.insert(
            (cluster.to_string(), node.to_string(), member.to_string()),
            u8::from(healthy),
        );
    }

    pub fn set_agent(&self, cluster: &str, node: &str, up: bool, version: &str) {
        self.lock().agent.insert(
            (cluster.to_string(), node.to_string()),
            (up, version.to_string()),
        );
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let g = self.lock();
        let mut o = String::new();
        let lbl = |pairs: &[(&str, &str)]| -> String {
            pairs
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
                .collect::<Vec<_>>()
                .join(",")
        };
        family(
            &mut o,
            "ferry_dashboard_events_total",
            "counter",
            "Events the dashboard received, by source.",
            g.events.iter().map(|((cl, src), n)| {
                (
                    String::new(),
                    lbl(&[("cluster", cl), ("source", src)]),
                    n.to_string(),
                )
            }),
        );
        family(
            &mut o,
            "ferry_transfer_bytes_total",
            "counter",
            "Content bytes delivered to a node (transfer progress counters).",
            g.transfer_bytes.iter().map(|((cl, node), n)| {
                (
                    String::new(),
                    lbl(&[("cluster", cl), ("node", node)]),
                    n.to_string(),
                )
            }),
        );
        family(
            &mut o,
            "ferry_exec_total",
            "counter",
            "Commands the agents ran to the end, by outcome.",
            g.exec_total.iter().map(|((cl, node, out), n)| {
                (
                    String::new(),
                    lbl(&[("cluster", cl), ("node", node), ("outcome", out)]),
                    n.to_string(),
                )
            }),
        );
        let hist = g.exec_seconds.iter().flat_map(|((cl, node), h)| {
            let l = lbl(&[("cluster", cl), ("node", node)]);
            let buckets = EXEC_BUCKETS
                .iter()
                .map(|le| le.to_string())
                .chain(std::iter::once("+Inf".to_string()))
                .zip(h.buckets.iter().copied().chain(std::iter::once(h.count)))
                .map(|(le, n)| {
                    (
                        "_bucket".to_string(),
                        format!("{l},le=\"{le}\""),
                        n.to_string(),
                    )
                })
                .collect::<Vec<_>>();
            buckets.into_iter().chain([
                ("_sum".to_string(), l.clone(), h.sum.to_string()),
                ("_count".to_string(), l, h.count.to_string()),
            ])
        });
        family(
            &mut o,
            "ferry_exec_duration_seconds",
            "histogram",
            "Wall time of the commands the agents ran.",
            hist,
        );
        family(
            &mut o,
            "ferry_lb_member_healthy",
            "gauge",
            "1 while the VIP load balancer on node routes to member with weight, else 0.",
            g.lb_member.iter().map(|((cl, node, m), v)| {
                (
                    String::new(),
                    lbl(&[("cluster", cl), ("node", node), ("member", m)]),
                    v.to_string(),
                )
            }),
        );
        family(
            &mut o,
            "ferry_agent_up",
            "gauge",
            "1 when the node's agent answered its last Facts call, with its version.",
            g.agent.iter().map(|((cl, node), (up, version))| {
                (
                    String::new(),
                    lbl(&[("cluster", cl), ("node", node), ("version", version)]),
                    u8::from(*up).to_string(),
                )
            }),
        );
        o
    }
}

/// One metric family: HELP, TYPE, then `name<suffix>{labels} value` per row.
fn family(
    o: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    rows: impl Iterator<Item = (String, String, String)>,
) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (suffix, labels, value) in rows {
        let _ = writeln!(o, "{name}{suffix}{{{labels}}} {value}");
    }
}

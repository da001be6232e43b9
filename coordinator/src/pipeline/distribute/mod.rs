//! The distribute step: the mounted trees to the nodes through the
//! distribution engine (content-addressed; what a node has is not sent).
//!
//! - rootfs (with patches; `registry/` split out by the images step and
//!   excluded here too) → every host still to do, in ONE relay: each chunk
//!   leaves the bastion once and the agents forward it along the chain;
//! - registry data → registry hosts by blob digest (`sync_registry`:
//!   blobs before repositories, nothing pruned, resumable);
//! - application trees → master0.
//!
//! Hosts journaled done with the same inputs digest are skipped. A host
//! that fails (connect, relay, commit) is reported alone; the others
//! finish and are journaled done, so a re-run sends only what it misses.

mod job;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_shared::clusterfile::ResolvedHost;
use ferry_shared::pipeline::{Outcome as Journaled, Step};
use ferry_shared::transfer::{Topology, counters as c};
use ferry_shared::{EventKind, Phase};
use tonic::transport::Channel;

use super::node::NodeRef;
use super::{Ctx, PipelineError};
use crate::fanout;
use crate::transfer::progress::{Tracker, mib};
use crate::transfer::{NodeStats, Progress, SenderStats, Target};
use job::{Job, hash};

const STEP: Step = Step::Distribute;

/// One host of the step.
struct HostRun {
    h: ResolvedHost,
    node: NodeRef,
    digest: String,
    started: Instant,
    /// Channel and `ip:port` of its agent, once connected.
    agent: Option<(Channel, String)>,
    content_sent: u64,
    wire_sent: u64,
    err: Option<PipelineError>,
}

pub async fn distribute_all(ctx: &Arc<Ctx>, topology: Topology) -> Result<(), PipelineError> {
    let mut runs = Vec::new();
    for h in &ctx.hosts {
        let host = h.addr.to_string();
        let digest = ctx.host_digest(h, "distribute");
        if ctx.rec.is_done(STEP, &host, &digest) {
            ctx.rec.emit(
                ctx.rec
                    .reporter()
                    .event(&host, Phase::Run, EventKind::Finished)
                    .counter("skipped", 1)
                    .message(format!("{STEP}: skipped (done)")),
            );
            continue;
        }
        let Some(node) = ctx.node(h).cloned() else {
            return Err(PipelineError::host(&host, STEP, "no agent for this host"));
        };
        runs.push(HostRun {
            h: h.clone(),
            node,
            digest,
            started: Instant::now(),
            agent: None,
            content_sent: 0,
            wire_sent: 0,
            err: None,
        });
    }
    if runs.is_empty() {
        return Ok(());
    }
    // Hash only what the hosts still to do need, before touching them.
    let all: Vec<usize> = (0..runs.len()).collect();
    let pick = |f: &dyn Fn(&ResolvedHost) -> bool| -> Vec<usize> {
        all.iter().copied().filter(|i| f(&runs[*i].h)).collect()
    };
    let reg_idx = pick(&|h| ctx.registry.iter().any(|r| r.addr.ip == h.addr.ip));
    let m0 = pick(&|h| h.addr.ip == ctx.master0.addr.ip);
    let mut jobs = vec![(
        all.clone(),
        hash(&ctx.mounts.rootfs, &ctx.rootfs_dir(), false).await?,
        "rootfs".to_string(),
    )];
    if let Some(p) = &ctx.mounts.registry
        && !reg_idx.is_empty()
    {
        let dst = format!("{}/registry", ctx.data_dir);
        jobs.push((reg_idx, hash(p, &dst, true).await?, "registry".into()));
    }
    if !m0.is_empty() {
        for (name, p) in &ctx.mounts.apps {
            if let Some(dst) = ctx.app_dir(name) {
                jobs.push((
                    m0.clone(),
                    hash(p, &dst, false).await?,
                    format!("app {name}"),
                ));
            }
        }
    }

    for r in &mut runs {
        r.started = Instant::now();
        ctx.rec
            .step_event(STEP, &r.node.host, EventKind::Started, "");
    }
    connect_all(ctx, &mut runs).await;
    for (idx, job, label) in &jobs {
        send(ctx, &mut runs, idx, job, label, topology).await;
    }
    finish(ctx, runs)
}

/// Connects to every host's agent (bounded); a failure marks that host.
async fn connect_all(ctx: &Arc<Ctx>, runs: &mut [HostRun]) {
    let nodes: Vec<NodeRef> = runs.iter().map(|r| r.node.clone()).collect();
    let c = ctx.clone();
    let connected = fanout::for_each(nodes, ctx.concurrency, move |n| {
        let c = c.clone();
        async move {
            let a = n.connect(&c.tls, STEP).await?;
            Ok::<_, PipelineError>((a.channel(), a.endpoint().to_string()))
        }
    })
    .await;
    for (r, res) in runs.iter_mut().zip(connected) {
        match res {
            Ok(a) => r.agent = Some(a),
            Err(e) => r.err = Some(e),
        }
    }
}

/// One relay (two for a registry) of `job` to the hosts `idx` that have
/// not failed yet; per-host counters and failures land in `runs`.
async fn send(
    ctx: &Ctx,
    runs: &mut [HostRun],
    idx: &[usize],
    job: &Job,
    label: &str,
    topology: Topology,
) {
    let live: Vec<usize> = idx
        .iter()
        .copied()
        .filter(|i| runs[*i].err.is_none() && runs[*i].agent.is_some())
        .collect();
    if live.is_empty() {
        return;
    }
    let op = ctx.rec.reporter().op().to_string();
    let dest = job.dest();
    let targets: Vec<Target> = live
        .iter()
        .filter_map(|i| {
            let r = &runs[*i];
            let (channel, endpoint) = r.agent.clone()?;
            Some(Target {
                channel,
                endpoint,
                transfer_id: format!("{op}-{}-{dest}", r.node.ip),
            })
        })
        .collect();
    let hosts: Vec<String> = live.iter().map(|i| runs[*i].node.host.clone()).collect();
    let rec = ctx.rec.clone();
    let tracker = Tracker::with_sink(
        ctx.rec.reporter().clone(),
        Phase::Run,
        &format!("{STEP}: {label}"),
        Box::new(move |e| rec.emit(e)),
        hosts.clone(),
    );
    let started = Instant::now();
    let cb = |t: usize, p: &Progress| tracker.update(t, p);
    let out = job::transfer(targets, job, topology, &op, ctx.concurrency, &cb).await;
    for (t, res) in out.nodes.into_iter().enumerate() {
        let r = &mut runs[live[t]];
        match res {
            Ok(NodeStats { progress, .. }) => {
                r.content_sent += progress.content_sent;
                r.wire_sent += progress.wire_sent;
            }
            Err(e) => {
                r.err = Some(PipelineError::host(
                    &r.node.host,
                    STEP,
                    format!(
                        "{label} to {dest}: {e}; next: `ferry agent status --ips {}`, then re-run (the other hosts are done; what landed here is kept, only the rest is sent)",
                        r.node.ip
                    ),
                ));
            }
        }
    }
    sender_event(
        ctx,
        label,
        job,
        topology,
        hosts.len(),
        &out.sender,
        started.elapsed(),
    );
}

/// What the bastion itself put on the wire for one tree.
fn sender_event(
    ctx: &Ctx,
    label: &str,
    job: &Job,
    topology: Topology,
    hosts: usize,
    s: &SenderStats,
    took: Duration,
) {
    ctx.rec.emit(
        ctx.rec
            .reporter()
            .event("", Phase::Run, EventKind::Progress)
            .counter("hosts", hosts as u64)
            .counter(c::BYTES_TOTAL, job.bytes_total())
            .counter(c::SENDER_CHUNKS_SENT, s.chunks_sent)
            .counter(c::SENDER_CONTENT_BYTES_SENT, s.content_bytes_sent)
            .counter(c::SENDER_WIRE_BYTES_SENT, s.wire_bytes_sent)
            .counter(c::RELAY_ROUNDS, s.rounds)
            .counter(c::DURATION_MS, took.as_millis() as u64)
            .message(format!(
                "{STEP}: {label} ({}) to {hosts} hosts by {}: bastion sent {} ({} on the wire)",
                job.dest(),
                topology.as_str(),
                mib(s.content_bytes_sent),
                mib(s.wire_bytes_sent)
            )),
    );
}

/// Journals and reports every host; fails if any host failed.
fn finish(ctx: &Ctx, runs: Vec<HostRun>) -> Result<(), PipelineError> {
    let mut failed = Vec::new();
    for r in runs {
        let host = r.node.host.clone();
        let ms = r.started.elapsed().as_millis() as u64;
        let (outcome, msg) = match &r.err {
            None => (Journaled::Done, String::new()),
            Some(e) => (Journaled::Failed, e.to_string()),
        };
        let journaled = ctx.rec.record(STEP, &host, &r.digest, outcome, &msg);
        let ev = ctx
            .rec
            .reporter()
            .event(&host, Phase::Run, EventKind::Progress);
        ctx.rec.emit(
            ev.counter(c::CONTENT_BYTES_SENT, r.content_sent)
                .counter(c::WIRE_BYTES_SENT, r.wire_sent)
                .message(format!("{STEP}: {} content bytes sent", r.content_sent)),
        );
        let kind = if r.err.is_none() {
            EventKind::Finished
        } else {
            EventKind::Failed
        };
        ctx.rec.emit(
            ctx.rec
                .reporter()
                .event(&host, Phase::Run, kind)
                .counter(c::DURATION_MS, ms)
                .counter(c::CONTENT_BYTES_SENT, r.content_sent)
                .message(if msg.is_empty() {
                    STEP.as_str().to_string()
                } else {
                    format!("{STEP}: {msg}")
                }),
        );
        match (r.err, journaled) {
            (Some(e), _) | (None, Err(e)) => failed.push(e),
            (None, Ok(())) => {}
        }
    }
    let n = failed.len();
    match failed.into_iter().next() {
        None => Ok(()),
        Some(e) if n == 1 => Err(e),
        Some(e) => Err(PipelineError::cluster(
            STEP,
            format!("{n} hosts failed; first: {e}"),
        )),
    }
}

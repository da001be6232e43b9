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
//! - then, per host, the rootfs templates rendered with that host's env
//!   (`host_render`; the bootstrap hooks need them).
//!
//! Each tree is journaled per host (`<host>#rootfs`, `#registry`,
//! `#app:<image>`, `#render`) with a digest of its inputs (images, Config
//! documents, the env it is rendered with) and skipped where done with the
//! same inputs: an application added later moves to master0 alone. A
//! host's `distribute` finished event comes after all its parts, render
//! included. A host that fails (connect, relay, commit, render) is
//! reported alone; the others finish and are journaled done, so a re-run
//! sends only what it misses.

mod job;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_shared::clusterfile::ResolvedHost;
use ferry_shared::pipeline::{Outcome as Journaled, Step, part_key};
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
/// The journal part of a host's rendered templates.
const RENDER: &str = "render";

/// The inputs of a host's rendered templates: the rootfs and its env.
fn render_digest(ctx: &Ctx, h: &ResolvedHost) -> String {
    ferry_shared::pipeline::digest(&[&ctx.rootfs_job_digest(), &format!("{:?}", ctx.host_env(h))])
}

/// One host of the step.
struct HostRun {
    host: ResolvedHost,
    node: NodeRef,
    /// The trees this host still needs: (journal part, inputs digest).
    parts: Vec<(String, String)>,
    started: Instant,
    /// Channel and `ip:port` of its agent, once connected.
    agent: Option<(Channel, String)>,
    content_sent: u64,
    wire_sent: u64,
    err: Option<PipelineError>,
}

/// One tree of the step: its journal part, inputs digest, and where it goes.
struct Tree {
    part: String,
    digest: String,
    label: String,
    local: std::path::PathBuf,
    dest: String,
    registry: bool,
    to: fn(&Ctx, &ResolvedHost) -> bool,
}

fn trees(ctx: &Ctx) -> Vec<Tree> {
    let mut out = vec![Tree {
        part: "rootfs".into(),
        digest: ctx.rootfs_job_digest(),
        label: "rootfs".into(),
        local: ctx.mounts.rootfs.clone(),
        dest: ctx.rootfs_dir(),
        registry: false,
        to: |_, _| true,
    }];
    if let Some(p) = &ctx.mounts.registry {
        out.push(Tree {
            part: "registry".into(),
            digest: ctx.registry_job_digest(),
            label: "registry".into(),
            local: p.clone(),
            dest: format!("{}/registry", ctx.data_dir),
            registry: true,
            to: |c, h| c.registry.iter().any(|r| r.addr.ip == h.addr.ip),
        });
    }
    for (name, p) in &ctx.mounts.apps {
        let (Some(dest), Some(img)) = (
            ctx.app_dir(name),
            ctx.images.iter().find(|i| &i.config.name == name),
        ) else {
            continue;
        };
        out.push(Tree {
            part: format!("app:{name}"),
            digest: ctx.app_job_digest(img),
            label: format!("app {name}"),
            local: p.clone(),
            dest,
            registry: false,
            to: |c, h| h.addr.ip == c.master0.addr.ip,
        });
    }
    out
}

/// Each tree goes to the hosts it is for whose journal lacks it with the
/// same inputs: a new application moves to master0 alone, a plain re-run
/// moves nothing.
pub async fn distribute_all(ctx: &Arc<Ctx>, topology: Topology) -> Result<(), PipelineError> {
    let trees = trees(ctx);
    let mut runs = Vec::new();
    for h in &ctx.hosts {
        let host = h.addr.to_string();
        let mut parts: Vec<(String, String)> = trees
            .iter()
            .filter(|t| (t.to)(ctx, h))
            .filter(|t| !ctx.rec.is_done(STEP, &part_key(&host, &t.part), &t.digest))
            .map(|t| (t.part.clone(), t.digest.clone()))
            .collect();
        let rd = render_digest(ctx, h);
        if !ctx.rec.is_done(STEP, &part_key(&host, RENDER), &rd) {
            parts.push((RENDER.to_string(), rd));
        }
        if parts.is_empty() {
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
            host: h.clone(),
            node,
            parts,
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
    // Hash only the trees some host still needs, before touching hosts.
    let mut jobs = Vec::new();
    for t in &trees {
        let idx: Vec<usize> = (0..runs.len())
            .filter(|i| runs[*i].parts.iter().any(|(p, _)| p == &t.part))
            .collect();
        if !idx.is_empty() {
            let job = hash(&t.local, &t.dest, t.registry).await?;
            jobs.push((idx, job, t.label.clone()));
        }
    }

    for r in &mut runs {
        r.started = Instant::now();
        let parts: Vec<&str> = r.parts.iter().map(|(p, _)| p.as_str()).collect();
        ctx.rec
            .step_event(STEP, &r.node.host, EventKind::Started, &parts.join(", "));
    }
    connect_all(ctx, &mut runs).await;
    for (idx, job, label) in &jobs {
        send(ctx, &mut runs, idx, job, label, topology).await;
    }
    render_all(ctx, &mut runs).await;
    finish(ctx, runs)
}

/// Renders the templates of every host that needs it and got its trees.
async fn render_all(ctx: &Arc<Ctx>, runs: &mut [HostRun]) {
    let idx: Vec<usize> = (0..runs.len())
        .filter(|i| runs[*i].err.is_none() && runs[*i].parts.iter().any(|(p, _)| p == RENDER))
        .collect();
    let todo: Vec<(ResolvedHost, NodeRef)> = idx
        .iter()
        .map(|i| (runs[*i].host.clone(), runs[*i].node.clone()))
        .collect();
    let c = ctx.clone();
    let done = fanout::for_each(todo, ctx.concurrency, move |(h, n)| {
        let c = c.clone();
        async move { super::host_render::apply(&c, &h, &n).await }
    })
    .await;
    for (i, res) in idx.into_iter().zip(done) {
        if let Err(e) = res {
            runs[i].err = Some(e);
        }
    }
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
        let mut journaled = Ok(());
        for (part, digest) in &r.parts {
            let j = ctx
                .rec
                .record(STEP, &part_key(&host, part), digest, outcome, &msg);
            journaled = journaled.and(j);
        }
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

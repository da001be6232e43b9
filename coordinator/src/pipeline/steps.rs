//! The orchestration: steps in order, per-host fan-out, journal skips.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use ferry_shared::clusterfile::ResolvedHost;
use ferry_shared::pipeline::{Outcome, Step, digest};
use ferry_shared::{EventKind, Phase};

use super::ctx::{Ctx, Inputs};
use super::journal::Recorder;
use super::node::NodeRef;
use super::{PipelineError, bootstrap, distribute, kube, prepare, writeback};

use crate::fanout;
use crate::state::ClusterState;

/// Per-phase wall time, for the summary.
pub type Timings = Vec<(Step, f64)>;

/// Runs the pipeline; the Clusterfile is written back whatever happens.
pub async fn run(
    state: &ClusterState,
    rec: &Recorder,
    inp: Inputs,
) -> (Result<(), PipelineError>, Timings) {
    let mut timings = Timings::new();
    let mut cf = inp.cf.clone();
    let res = run_inner(state, rec, inp, &mut timings, &mut cf).await;
    let t = Instant::now();
    rec.step_event(Step::Writeback, "", EventKind::Started, "");
    match writeback::write_status(state, &mut cf, &res) {
        Ok(()) => rec.step_event(
            Step::Writeback,
            "",
            EventKind::Finished,
            &format!("{}", state.dir().join(writeback::CLUSTERFILE).display()),
        ),
        Err(e) => rec.step_event(Step::Writeback, "", EventKind::Failed, &e.to_string()),
    }
    timings.push((Step::Writeback, t.elapsed().as_secs_f64()));
    rec.flush();
    (res, timings)
}

async fn run_inner(
    state: &ClusterState,
    rec: &Recorder,
    inp: Inputs,
    timings: &mut Timings,
    cf_out: &mut ferry_shared::clusterfile::Clusterfile,
) -> Result<(), PipelineError> {
    let t = Instant::now();
    let hosts = inp.cf.cluster.resolved_hosts()?;
    let checked = prepare::check(state, rec, &inp, &hosts).await?;
    timings.push((Step::Check, t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let ctx = Arc::new(prepare::prepare(state, rec, &inp, hosts, checked).await?);
    writeback::set_mounts(cf_out, &ctx);
    timings.push((Step::Images, t.elapsed().as_secs_f64()));

    let t = Instant::now();
    distribute::distribute_all(&ctx, inp.topology).await?;
    timings.push((Step::Distribute, t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let all: Vec<ResolvedHost> = ctx.hosts.clone();
    // Registry hosts first: every other host's init-cri needs the registry.
    let (reg, rest): (Vec<ResolvedHost>, Vec<ResolvedHost>) = all
        .iter()
        .cloned()
        .partition(|h| ctx.registry.iter().any(|r| r.addr.ip == h.addr.ip));
    for group in [reg, rest] {
        per_host(
            &ctx,
            Step::Bootstrap,
            group,
            false,
            |c, h| c.host_digest(h, ""),
            |c, h, n| async move { bootstrap::bootstrap(&c, &h, &n).await },
        )
        .await?;
    }
    timings.push((Step::Bootstrap, t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let docs = Arc::new(kube::docs(&ctx)?);
    let masters: Vec<ResolvedHost> = ctx.masters().into_iter().cloned().collect();
    kube::ensure_cluster_pki(&ctx, &docs)?;
    let d = docs.clone();
    per_host(
        &ctx,
        Step::Pki,
        masters.clone(),
        true,
        |c, h| c.host_digest(h, "pki"),
        move |c, h, n| {
            let d = d.clone();
            async move {
                let files = kube::master_files(&c, &d, h.addr.ip, &c.hostname(h.addr.ip))?;
                kube::push_pki(&c, &n, &files).await
            }
        },
    )
    .await?;
    timings.push((Step::Pki, t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let d = docs.clone();
    per_host(
        &ctx,
        Step::InitMaster,
        vec![ctx.master0.clone()],
        true,
        |c, h| c.host_digest(h, "init"),
        move |c, _h, n| {
            let d = d.clone();
            async move { kube::init_master0(&c, &d, &n).await }
        },
    )
    .await?;
    timings.push((Step::InitMaster, t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let others: Vec<ResolvedHost> = masters
        .iter()
        .filter(|m| m.addr.ip != ctx.master0.addr.ip)
        .cloned()
        .collect();
    for m in others {
        // Control-plane joins one at a time (etcd membership changes).
        let d = docs.clone();
        per_host(
            &ctx,
            Step::JoinMaster,
            vec![m],
            true,
            |c, h| c.host_digest(h, "join"),
            move |c, _h, n| {
                let d = d.clone();
                async move { kube::join(&c, &d, &n, true).await }
            },
        )
        .await?;
    }
    timings.push((Step::JoinMaster, t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let workers: Vec<ResolvedHost> = ctx.workers().into_iter().cloned().collect();
    let spec = Arc::new(kube::lb_spec(&ctx)?);
    let members: Vec<String> = spec
        .real_servers
        .iter()
        .map(|r| r.addr.to_string())
        .collect();
    let lb_digest = digest(&[&spec.vip.to_string(), &members.join(",")]);
    per_host(
        &ctx,
        Step::LbSync,
        workers.clone(),
        false,
        move |_, _| lb_digest.clone(),
        move |c, _h, n| {
            let s = spec.clone();
            async move { kube::lb_sync(&c, &n, &s).await }
        },
    )
    .await?;
    let d = docs.clone();
    per_host(
        &ctx,
        Step::JoinWorker,
        workers,
        true,
        |c, h| c.host_digest(h, "join"),
        move |c, _h, n| {
            let d = d.clone();
            async move { kube::join(&c, &d, &n, false).await }
        },
    )
    .await?;
    timings.push((Step::JoinWorker, t.elapsed().as_secs_f64()));

    let t = Instant::now();
    per_host(
        &ctx,
        Step::Guest,
        all,
        false,
        |c, h| {
            let cmds = format!("{:?}", bootstrap::guest_commands(c, h));
            c.host_digest(h, &cmds)
        },
        |c, h, n| async move { bootstrap::guest(&c, &h, &n).await },
    )
    .await?;
    timings.push((Step::Guest, t.elapsed().as_secs_f64()));

    let t = Instant::now();
    *cf_out = ctx.cf.clone();
    writeback::set_mounts(cf_out, &ctx);
    writeback::backup(&ctx).await?;
    timings.push((Step::Backup, t.elapsed().as_secs_f64()));
    Ok(())
}

/// Runs `f` for each host (bounded), skipping hosts whose journal says
/// done; fails after all hosts of the step finished if any failed.
async fn per_host<D, F, Fut>(
    ctx: &Arc<Ctx>,
    step: Step,
    hosts: Vec<ResolvedHost>,
    once: bool,
    digest_of: D,
    f: F,
) -> Result<(), PipelineError>
where
    D: Fn(&Ctx, &ResolvedHost) -> String,
    F: Fn(Arc<Ctx>, ResolvedHost, NodeRef) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), PipelineError>> + Send + 'static,
{
    let mut todo = Vec::new();
    for h in hosts {
        let host = h.addr.to_string();
        let d = digest_of(ctx, &h);
        let done = if once {
            ctx.rec.ever_done(step, &host)
        } else {
            ctx.rec.is_done(step, &host, &d)
        };
        if done {
            ctx.rec.emit(
                ctx.rec
                    .reporter()
                    .event(&host, Phase::Run, EventKind::Finished)
                    .counter("skipped", 1)
                    .message(format!("{step}: skipped (done)")),
            );
            continue;
        }
        let Some(n) = ctx.node(&h).cloned() else {
            return Err(PipelineError::host(&host, step, "no agent for this host"));
        };
        todo.push((h, n, d));
    }
    if todo.is_empty() {
        return Ok(());
    }
    let f = Arc::new(f);
    let c = ctx.clone();
    let results = fanout::for_each(todo, ctx.concurrency, move |(h, n, d)| {
        let (c, f) = (c.clone(), f.clone());
        async move {
            let host = h.addr.to_string();
            let t = Instant::now();
            c.rec.step_event(step, &host, EventKind::Started, "");
            let res = f(c.clone(), h, n).await;
            let ms = t.elapsed().as_millis() as u64;
            let (outcome, msg) = match &res {
                Ok(()) => (Outcome::Done, String::new()),
                Err(e) => (Outcome::Failed, e.to_string()),
            };
            let journaled = c.rec.record(step, &host, &d, outcome, &msg);
            let kind = if res.is_ok() {
                EventKind::Finished
            } else {
                EventKind::Failed
            };
            c.rec.emit(
                c.rec
                    .reporter()
                    .event(&host, Phase::Run, kind)
                    .counter("duration_ms", ms)
                    .message(if msg.is_empty() {
                        step.as_str().to_string()
                    } else {
                        format!("{step}: {msg}")
                    }),
            );
            res.and(journaled)
        }
    })
    .await;
    let failed: Vec<PipelineError> = results.into_iter().filter_map(Result::err).collect();
    let n = failed.len();
    match failed.into_iter().next() {
        None => Ok(()),
        Some(e) if n == 1 => Err(e),
        Some(e) => Err(PipelineError::cluster(
            step,
            format!("{n} hosts failed; first: {e}"),
        )),
    }
}

//! The orchestration: steps in order, per-host fan-out, journal skips.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use ferry_shared::clusterfile::ResolvedHost;
use ferry_shared::kubeadm::KubeadmDocs;
use ferry_shared::pipeline::{Outcome, Step, digest, part_key};
use ferry_shared::{EventKind, Phase};

use super::ctx::{Ctx, Inputs};
use super::journal::Recorder;
use super::kubeadm_ops::FreshSecrets;
use super::node::NodeRef;
use super::{
    PipelineError, bootstrap, distribute, guest, kube, pki_store, prepare, upgrade, writeback,
};

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
    if let Err(PipelineError::Refused { .. }) = &res {
        rec.step_event(
            Step::Writeback,
            "",
            EventKind::Finished,
            "skipped: the run was refused before any host changed; the stored Clusterfile is kept",
        );
        rec.flush();
        return (res, timings);
    }
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

/// Records `step`'s wall time since `t`, whether it succeeded or failed,
/// so the summary line of a failed run includes the failing step.
fn lap<T>(
    timings: &mut Timings,
    step: Step,
    t: Instant,
    res: Result<T, PipelineError>,
) -> Result<T, PipelineError> {
    timings.push((step, t.elapsed().as_secs_f64()));
    res
}

/// Runs blocking work (RSA keygen, PKI files) off the async runtime.
async fn blocking<T: Send + 'static>(
    step: Step,
    f: impl FnOnce() -> Result<T, PipelineError> + Send + 'static,
) -> Result<T, PipelineError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PipelineError::cluster(step, format!("blocking task: {e}")))?
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
    let res = prepare::check(state, rec, &inp, &hosts).await;
    let checked = lap(timings, Step::Check, t, res)?;

    let t = Instant::now();
    let res = match prepare::prepare(state, rec, &inp, hosts, checked).await {
        // A damaged PKI and an upgrade are found (and refused) before any
        // host changes.
        Ok(mut c) => match upgrade::detect(&c).await {
            Ok(u) => {
                c.upgrade = u;
                let c = Arc::new(c);
                let bc = c.clone();
                blocking(Step::Pki, move || pki_store::check_stored(&bc))
                    .await
                    .map(|()| c)
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let ctx = lap(timings, Step::Images, t, res)?;
    writeback::set_mounts(cf_out, &ctx);

    let t = Instant::now();
    let all: Vec<ResolvedHost> = ctx.hosts.clone();
    let res = distribute::distribute_all(&ctx, inp.topology).await;
    lap(timings, Step::Distribute, t, res)?;

    let t = Instant::now();
    let res = bootstrap_all(&ctx, &all).await;
    lap(timings, Step::Bootstrap, t, res)?;

    let t = Instant::now();
    let masters: Vec<ResolvedHost> = ctx.masters().into_iter().cloned().collect();
    let res = match kube::docs(&ctx) {
        Ok(d) => {
            let d = Arc::new(d);
            pki(&ctx, &d, &masters).await.map(|()| d)
        }
        Err(e) => Err(e),
    };
    let docs = lap(timings, Step::Pki, t, res)?;

    let t = Instant::now();
    let d = docs.clone();
    let res = per_host(
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
    .await;
    lap(timings, Step::InitMaster, t, res)?;

    let t = Instant::now();
    let res = join_masters(&ctx, &docs, &masters).await;
    lap(timings, Step::JoinMaster, t, res)?;

    let t = Instant::now();
    let res = workers(&ctx, &docs).await;
    lap(timings, Step::JoinWorker, t, res)?;

    let t = Instant::now();
    let res = match upgrade::run(&ctx).await {
        Ok(()) => upgrade::record_version(&ctx),
        Err(e) => Err(e),
    };
    lap(timings, Step::Upgrade, t, res)?;

    let t = Instant::now();
    *cf_out = ctx.cf.clone();
    writeback::set_mounts(cf_out, &ctx);
    let guest = guest::run_all(&ctx).await;
    writeback::command_condition(cf_out, &guest);
    let guest = lap(timings, Step::Guest, t, guest.map(|_| ()));

    // The backup runs after a failed image command too: the cluster is up.
    let t = Instant::now();
    let res = writeback::backup(&ctx).await;
    lap(timings, Step::Backup, t, res)?;
    guest
}

async fn bootstrap_all(ctx: &Arc<Ctx>, all: &[ResolvedHost]) -> Result<(), PipelineError> {
    // An upgrade replaces binaries on live hosts itself: their hooks (which
    // refuse a running node) are not run again, only recorded for the new
    // rootfs.
    let all: Vec<ResolvedHost> = match &ctx.upgrade {
        None => all.to_vec(),
        Some(up) => {
            let mut rest = Vec::new();
            for h in all {
                let key = h.addr.to_string();
                if ctx.rec.ever_done(Step::Bootstrap, &key) {
                    let msg = format!("hooks not re-run for the upgrade to {}", up.to);
                    ctx.rec.record(
                        Step::Bootstrap,
                        &key,
                        &ctx.bootstrap_digest(),
                        Outcome::Done,
                        &msg,
                    )?;
                    ctx.rec.step_event(
                        Step::Bootstrap,
                        &key,
                        EventKind::Finished,
                        &format!("skipped ({msg})"),
                    );
                } else {
                    rest.push(h.clone());
                }
            }
            rest
        }
    };
    let all = all.as_slice();
    // Registry hosts first: every other host's init-cri needs the registry.
    let (reg, rest): (Vec<ResolvedHost>, Vec<ResolvedHost>) = all
        .iter()
        .cloned()
        .partition(|h| ctx.registry.iter().any(|r| r.addr.ip == h.addr.ip));
    for group in [reg, rest] {
        per_host(
            ctx,
            Step::Bootstrap,
            group,
            false,
            |c, _| c.bootstrap_digest(),
            |c, h, n| async move { bootstrap::bootstrap(&c, &h, &n).await },
        )
        .await?;
    }
    Ok(())
}

/// The cluster CAs once, then each master's files (generated on blocking
/// threads) pushed through its agent.
async fn pki(
    ctx: &Arc<Ctx>,
    docs: &Arc<KubeadmDocs>,
    masters: &[ResolvedHost],
) -> Result<(), PipelineError> {
    let (c, d) = (ctx.clone(), docs.clone());
    blocking(Step::Pki, move || kube::ensure_cluster_pki(&c, &d)).await?;
    let d = docs.clone();
    per_host(
        ctx,
        Step::Pki,
        masters.to_vec(),
        true,
        |c, h| c.host_digest(h, "pki"),
        move |c, h, n| {
            let d = d.clone();
            async move {
                let (bc, ip, name) = (c.clone(), h.addr.ip, c.hostname(h.addr.ip));
                let files =
                    blocking(Step::Pki, move || kube::master_files(&bc, &d, ip, &name)).await?;
                kube::push_pki(&c, &n, &files).await
            }
        },
    )
    .await
}

async fn join_masters(
    ctx: &Arc<Ctx>,
    docs: &Arc<KubeadmDocs>,
    masters: &[ResolvedHost],
) -> Result<(), PipelineError> {
    let others = masters
        .iter()
        .filter(|m| m.addr.ip != ctx.master0.addr.ip)
        .cloned();
    // One fresh token + certificate upload for the batch, made at the
    // first join that runs.
    let fresh = Arc::new(FreshSecrets::new(docs.clone(), true));
    for m in others {
        // Control-plane joins one at a time (etcd membership changes).
        let f = fresh.clone();
        per_host(
            ctx,
            Step::JoinMaster,
            vec![m],
            true,
            |c, h| c.host_digest(h, "join"),
            move |c, _h, n| {
                let f = f.clone();
                async move { kube::join(&c, &f, &n, true).await }
            },
        )
        .await?;
    }
    Ok(())
}

/// The workers' VIP load balancer, then their joins.
async fn workers(ctx: &Arc<Ctx>, docs: &Arc<KubeadmDocs>) -> Result<(), PipelineError> {
    let workers: Vec<ResolvedHost> = ctx.workers().into_iter().cloned().collect();
    let spec = Arc::new(kube::lb_spec(ctx)?);
    let members: Vec<String> = spec
        .real_servers
        .iter()
        .map(|r| r.addr.to_string())
        .collect();
    let lb_digest = digest(&[&spec.vip.to_string(), &members.join(",")]);
    per_host(
        ctx,
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
    let fresh = Arc::new(FreshSecrets::new(docs.clone(), false));
    per_host(
        ctx,
        Step::JoinWorker,
        workers,
        true,
        |c, h| c.host_digest(h, "join"),
        move |c, _h, n| {
            let f = fresh.clone();
            async move { kube::join(&c, &f, &n, false).await }
        },
    )
    .await
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
    let unit = Unit {
        step,
        part: "",
        once,
    };
    per_host_part(ctx, unit, hosts, digest_of, f)
        .await
        .map(|_| ())
}

/// What [`per_host_part`] journals: `step` on each host, or one `part` of it
/// (`<host>#<part>`); `once`: any earlier success counts (not the digest).
#[derive(Clone, Copy)]
pub(super) struct Unit<'a> {
    pub step: Step,
    pub part: &'a str,
    pub once: bool,
}

/// [`per_host`] for one journaled part of a step (an image's commands, the
/// host's rendered templates); returns how many hosts ran it.
pub(super) async fn per_host_part<D, F, Fut>(
    ctx: &Arc<Ctx>,
    unit: Unit<'_>,
    hosts: Vec<ResolvedHost>,
    digest_of: D,
    f: F,
) -> Result<usize, PipelineError>
where
    D: Fn(&Ctx, &ResolvedHost) -> String,
    F: Fn(Arc<Ctx>, ResolvedHost, NodeRef) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), PipelineError>> + Send + 'static,
{
    let Unit { step, part, once } = unit;
    let label = if part.is_empty() {
        step.as_str().to_string()
    } else {
        format!("{step} {part}")
    };
    let mut todo = Vec::new();
    for h in hosts {
        let host = h.addr.to_string();
        let key = part_key(&host, part);
        let d = digest_of(ctx, &h);
        let done = if once {
            ctx.rec.ever_done(step, &key)
        } else {
            ctx.rec.is_done(step, &key, &d)
        };
        if done {
            ctx.rec.emit(
                ctx.rec
                    .reporter()
                    .event(&host, Phase::Run, EventKind::Finished)
                    .counter("skipped", 1)
                    .message(format!("{label}: skipped (done)")),
            );
            continue;
        }
        let Some(n) = ctx.node(&h).cloned() else {
            return Err(PipelineError::host(&host, step, "no agent for this host"));
        };
        todo.push((h, n, d));
    }
    if todo.is_empty() {
        return Ok(0);
    }
    let ran = todo.len();
    let f = Arc::new(f);
    let c = ctx.clone();
    let part = part.to_string();
    let results = fanout::for_each(todo, ctx.concurrency, move |(h, n, d)| {
        let (c, f, part, label) = (c.clone(), f.clone(), part.clone(), label.clone());
        async move {
            let host = h.addr.to_string();
            let t = Instant::now();
            c.rec.step_event(step, &host, EventKind::Started, &part);
            let res = f(c.clone(), h, n).await;
            let ms = t.elapsed().as_millis() as u64;
            let (outcome, msg) = match &res {
                Ok(()) => (Outcome::Done, String::new()),
                Err(e) => (Outcome::Failed, e.to_string()),
            };
            let journaled = c
                .rec
                .record(step, &part_key(&host, &part), &d, outcome, &msg);
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
                        label
                    } else {
                        format!("{label}: {msg}")
                    }),
            );
            res.and(journaled)
        }
    })
    .await;
    let failed: Vec<PipelineError> = results.into_iter().filter_map(Result::err).collect();
    let n = failed.len();
    match failed.into_iter().next() {
        None => Ok(ran),
        Some(e) if n == 1 => Err(e),
        Some(e) => Err(PipelineError::cluster(
            step,
            format!("{n} hosts failed; first: {e}"),
        )),
    }
}

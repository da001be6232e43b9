//! `ferry scp SRC DST`: bring DST on every selected node to the content of
//! the local SRC through the agents' transfer service. Content-addressed:
//! only chunks a node lacks cross the network. A directory SRC is copied
//! into DST; only with `--delete` is it mirrored (entries not in SRC are
//! removed under DST). Files are owned by root on the nodes unless
//! `--preserve-owner`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_shared::transfer::{DEFAULT_CHUNK_SIZE, DestRoot, RelPath, Topology, counters as c};
use ferry_shared::{Event, EventKind, Phase};

use super::summary::Summary;
use super::{CliError, Exit, select};
use crate::cli::ScpArgs;
use crate::client::{AgentClient, ClientTls};
use crate::fanout;
use crate::output::Reporter;
use crate::state::{ClusterState, NodeRecord};
use crate::transfer::progress::{Tracker, mib, with_progress};
use crate::transfer::{
    BuildOptions, NodeStats, Progress, RegistrySources, SenderStats, Source, Target, build_with,
    registry, relay, sync_registry, transfer_to,
};

pub async fn scp(cluster: &ClusterState, r: &Reporter, a: ScpArgs) -> Result<Exit, CliError> {
    let started = Instant::now();
    if std::fs::symlink_metadata(&a.src).is_err() {
        return Err(CliError::Usage(format!(
            "SRC `{}` does not exist (or cannot be read)",
            a.src.display()
        )));
    }
    let dst = DestRoot::new(a.dst.as_str()).map_err(|e| CliError::Usage(format!("DST: {e}")))?;
    if a.delete && a.relay.registry_sync {
        return Err(CliError::Usage(
            "--delete and --registry-sync do not go together: a registry sync never removes blobs"
                .into(),
        ));
    }
    if a.delete && a.src.is_dir() && !dst.may_prune() {
        return Err(CliError::Usage(format!(
            "DST {dst} is a top-level directory: --delete would remove everything in it that is not in SRC; mirror into a subdirectory such as {dst}/NAME"
        )));
    }
    let nodes = select(cluster, &a.select)?;
    let tls = ClientTls::from_pki(&cluster.agent_pki()?);
    let mut opts = BuildOptions::new(DEFAULT_CHUNK_SIZE);
    opts.prune = a.delete;
    opts.preserve_owner = a.preserve_owner;
    for x in &a.relay.exclude {
        let x = RelPath::new(x.trim_end_matches('/'))
            .map_err(|e| CliError::Usage(format!("--exclude {x}: {e}")))?;
        opts.exclude.push(x);
    }
    let (src_path, dst, reg) = (a.src.clone(), a.dst.clone(), a.relay.registry_sync);
    let built = tokio::task::spawn_blocking(move || {
        if reg {
            let r = registry::sources(&src_path, &dst, DEFAULT_CHUNK_SIZE)?;
            Ok((r.blobs.clone(), Some(Arc::new(r))))
        } else {
            build_with(&src_path, &dst, &opts).map(|s| (Arc::new(s), None))
        }
    })
    .await
    .map_err(|e| CliError::Usage(format!("reading SRC failed: {e}")))?
    .map_err(|e: crate::transfer::TransferError| CliError::Usage(format!("SRC: {e}")))?;
    let (src, registry_src) = built;
    let (files, bytes) = (src.manifest.file_count(), src.manifest.total_bytes());
    r.emit(
        r.event("", Phase::Transfer, EventKind::Progress)
            .counter(c::FILES_TOTAL, files)
            .counter(c::BYTES_TOTAL, bytes)
            .counter("skipped_special", src.skipped_special)
            .counter(c::DURATION_MS, started.elapsed().as_millis() as u64)
            .message(format!(
                "{} hashed: {files} files, {}",
                a.src.display(),
                mib(bytes)
            )),
    );
    let hosts: Vec<String> = nodes.iter().map(|n| n.addr.to_string()).collect();
    let topology = a.relay.topology();
    let run = async {
        if topology == Topology::Star && registry_src.is_none() {
            let rr = r.clone();
            let tracker = Arc::new(Tracker::new(r.clone(), hosts.clone()));
            let res = fanout::for_each(
                nodes.into_iter().enumerate().collect(),
                a.fanout.concurrency,
                move |(i, n)| run_on(i, n, src.clone(), tls.clone(), rr.clone(), tracker.clone()),
            )
            .await;
            (res, None)
        } else {
            let job = match registry_src {
                Some(reg) => Job::Registry(reg),
                None => Job::Tree(src),
            };
            let (res, s) = run_relay(nodes, job, tls, r, topology, a.fanout.concurrency).await;
            (res, Some(s))
        }
    };
    let (results, sender) = tokio::select! {
        res = run => res,
        _ = tokio::signal::ctrl_c() => {
            r.emit(r.event("", Phase::Transfer, EventKind::Failed).message("interrupted: transfers cancelled; a re-run resumes"));
            return Ok(Exit::Interrupted);
        }
    };
    let mut sum = Summary::default();
    for (host, res) in hosts.iter().zip(&results) {
        match res {
            Ok(s) => sum.ok(
                host,
                format_args!(
                    "{} files written, {} unchanged, {} deleted; sent {} ({} on the wire) in {:.2}s",
                    s.files_written,
                    s.progress.files_unchanged,
                    s.deleted,
                    mib(s.progress.content_sent),
                    mib(s.progress.wire_sent),
                    s.duration.as_secs_f64()
                ),
            ),
            Err(e) => sum.failed(host, e),
        }
    }
    let mut ev = r
        .event("", Phase::Transfer, sum.kind())
        .counter("hosts", sum.total() as u64)
        .counter("failed", sum.failed_count() as u64)
        .counter(c::DURATION_MS, started.elapsed().as_millis() as u64)
        .message(format!("topology {}", topology.as_str()));
    if let Some(s) = sender {
        ev = ev
            .counter(c::SENDER_CHUNKS_SENT, s.chunks_sent)
            .counter(c::SENDER_CONTENT_BYTES_SENT, s.content_bytes_sent)
            .counter(c::SENDER_WIRE_BYTES_SENT, s.wire_bytes_sent)
            .counter(c::RELAY_ROUNDS, s.rounds);
    }
    r.emit(ev);
    // After the run's own event, so the total's bar ends with it.
    r.finish();
    Ok(sum.print(r, &format!("scp {} -> {}", a.src.display(), a.dst), started))
}

fn started_event(r: &Reporter, host: &str, src: &Source) -> Event {
    r.event(host, Phase::Transfer, EventKind::Started)
        .counter(c::FILES_TOTAL, src.manifest.file_count())
        .counter(c::BYTES_TOTAL, src.manifest.total_bytes())
        .message(src.dest.to_string())
}

fn report(r: &Reporter, host: &str, src: &Source, res: &Result<NodeStats, String>) {
    match res {
        Ok(s) => {
            let ev = r.event(host, Phase::Transfer, EventKind::Finished);
            r.emit(
                with_progress(ev, &s.progress, s.duration)
                    .counter(c::FILES_SENT, s.files_written)
                    .counter(c::DELETED, s.deleted)
                    .counter("metadata_fixed", s.metadata_fixed)
                    .counter(c::BYTES_TOTAL, src.manifest.total_bytes())
                    .counter(c::DURATION_MS, s.duration.as_millis() as u64)
                    .message(format!(
                        "{} files written, {} unchanged, {} sent",
                        s.files_written,
                        s.progress.files_unchanged,
                        mib(s.progress.content_sent)
                    )),
            );
        }
        Err(e) => r.emit(
            r.event(host, Phase::Transfer, EventKind::Failed)
                .message(e.clone()),
        ),
    }
}

/// What a relay run distributes.
enum Job {
    Tree(Arc<Source>),
    Registry(Arc<RegistrySources>),
}

/// Chain or tree: connect to every node, then one relay transfer (two for
/// a registry: blobs, then repositories).
async fn run_relay(
    nodes: Vec<NodeRecord>,
    job: Job,
    tls: ClientTls,
    r: &Reporter,
    topology: Topology,
    concurrency: usize,
) -> (Vec<Result<NodeStats, String>>, SenderStats) {
    let hosts: Vec<String> = nodes.iter().map(|n| n.addr.to_string()).collect();
    let src = match &job {
        Job::Tree(s) => s.clone(),
        Job::Registry(reg) => reg.blobs.clone(),
    };
    for h in &hosts {
        r.emit(started_event(r, h, &src));
    }
    let connected = fanout::for_each(nodes, concurrency, move |n| {
        let tls = tls.clone();
        async move {
            AgentClient::connect(n.addr.ip, n.agent_port, &tls, Duration::from_secs(10))
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await;
    let mut results: Vec<Option<Result<NodeStats, String>>> = Vec::new();
    let (mut targets, mut index) = (Vec::new(), Vec::new());
    for (i, c) in connected.into_iter().enumerate() {
        match c {
            Ok(client) => {
                index.push(i);
                targets.push(Target {
                    channel: client.channel(),
                    endpoint: client.endpoint().to_string(),
                    transfer_id: format!("{}-{}", r.op(), hosts[i]),
                });
                results.push(None);
            }
            Err(e) => results.push(Some(Err(e))),
        }
    }
    let tracker = Tracker::new(r.clone(), hosts.clone());
    let on_progress = |t: usize, p: &Progress| tracker.update(index[t], p);
    let out = match &job {
        Job::Tree(s) => relay(targets, s.clone(), topology, r.op(), &on_progress).await,
        Job::Registry(reg) => {
            let cb = |t: usize, _phase: usize, p: &Progress| on_progress(t, p);
            sync_registry(targets, reg, topology, r.op(), &cb).await
        }
    };
    for (t, res) in out.nodes.into_iter().enumerate() {
        results[index[t]] = Some(res.map_err(|e| e.to_string()));
    }
    let results: Vec<_> = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("not transferred".to_string())))
        .collect();
    for (h, res) in hosts.iter().zip(&results) {
        report(r, h, &src, res);
    }
    (results, out.sender)
}

async fn run_on(
    i: usize,
    n: NodeRecord,
    src: Arc<Source>,
    tls: ClientTls,
    r: Reporter,
    tracker: Arc<Tracker>,
) -> Result<NodeStats, String> {
    let host = n.addr.to_string();
    r.emit(started_event(&r, &host, &src));
    let res = async {
        let client = AgentClient::connect(n.addr.ip, n.agent_port, &tls, Duration::from_secs(10))
            .await
            .map_err(|e| e.to_string())?;
        let id = format!("{}-{host}", r.op());
        transfer_to(
            client.channel(),
            client.endpoint(),
            src.clone(),
            id,
            r.op().to_string(),
            |p: &Progress| tracker.update(i, p),
        )
        .await
        .map_err(|e| e.to_string())
    }
    .await;
    report(&r, &host, &src, &res);
    res
}

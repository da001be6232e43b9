//! `ferry scp SRC DST`: bring DST on every selected node to the content of
//! the local SRC through the agents' transfer service. Content-addressed:
//! only chunks a node lacks cross the network; a directory SRC is mirrored
//! (entries not in SRC are removed under DST).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_shared::transfer::{DEFAULT_CHUNK_SIZE, DestRoot, counters as c};
use ferry_shared::{Event, EventKind, Phase};

use super::summary::Summary;
use super::{CliError, Exit, select};
use crate::cli::ScpArgs;
use crate::client::{AgentClient, ClientTls};
use crate::fanout;
use crate::output::Reporter;
use crate::state::{ClusterState, NodeRecord};
use crate::transfer::{NodeStats, Progress, Source, build, transfer_to};

/// Minimum time between two progress events of one node.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

fn rate(bytes: u64, d: Duration) -> u64 {
    let ms = d.as_millis().max(1) as u64;
    bytes.saturating_mul(1000) / ms
}

fn with_progress(ev: Event, p: &Progress, elapsed: Duration) -> Event {
    ev.counter(c::FILES_TOTAL, p.files_total)
        .counter(c::FILES_SKIPPED, p.files_unchanged)
        .counter(c::CONTENT_BYTES_TOTAL, p.content_total)
        .counter(c::CONTENT_BYTES_SENT, p.content_sent)
        .counter(c::WIRE_BYTES_SENT, p.wire_sent)
        .counter(c::REUSED_BYTES, p.reused)
        .counter(c::RATE_BPS, rate(p.content_sent, elapsed))
}

pub async fn scp(cluster: &ClusterState, r: &Reporter, a: ScpArgs) -> Result<Exit, CliError> {
    let started = Instant::now();
    if std::fs::symlink_metadata(&a.src).is_err() {
        return Err(CliError::Usage(format!(
            "SRC `{}` does not exist (or cannot be read)",
            a.src.display()
        )));
    }
    let dst = DestRoot::new(a.dst.as_str()).map_err(|e| CliError::Usage(format!("DST: {e}")))?;
    if a.src.is_dir() && !dst.may_prune() {
        return Err(CliError::Usage(format!(
            "DST {dst} is a top-level directory: a directory SRC is mirrored (entries not in SRC are removed), so copy into a subdirectory such as {dst}/NAME"
        )));
    }
    let nodes = select(cluster, &a.select)?;
    let tls = ClientTls::from_pki(&cluster.agent_pki()?);
    let (src_path, dst) = (a.src.clone(), a.dst.clone());
    let src = tokio::task::spawn_blocking(move || build(&src_path, &dst, DEFAULT_CHUNK_SIZE))
        .await
        .map_err(|e| CliError::Usage(format!("reading SRC failed: {e}")))?
        .map_err(|e| CliError::Usage(format!("SRC: {e}")))?;
    let src = Arc::new(src);
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
    let rr = r.clone();
    let run = fanout::for_each(nodes, a.fanout.concurrency, move |n| {
        run_on(n, src.clone(), tls.clone(), rr.clone())
    });
    let results = tokio::select! {
        res = run => res,
        _ = tokio::signal::ctrl_c() => {
            r.emit(r.event("", Phase::Transfer, EventKind::Failed).message("interrupted: transfers cancelled; a re-run resumes"));
            return Ok(Exit::Interrupted);
        }
    };
    r.finish();
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
    r.emit(
        r.event("", Phase::Transfer, sum.kind())
            .counter("hosts", sum.total() as u64)
            .counter("failed", sum.failed_count() as u64)
            .counter(c::DURATION_MS, started.elapsed().as_millis() as u64),
    );
    Ok(sum.print(r, &format!("scp {} -> {}", a.src.display(), a.dst), started))
}

async fn run_on(
    n: NodeRecord,
    src: Arc<Source>,
    tls: ClientTls,
    r: Reporter,
) -> Result<NodeStats, String> {
    let host = n.addr.to_string();
    let started = Instant::now();
    r.emit(
        r.event(&host, Phase::Transfer, EventKind::Started)
            .counter(c::FILES_TOTAL, src.manifest.file_count())
            .counter(c::BYTES_TOTAL, src.manifest.total_bytes())
            .message(src.dest.to_string()),
    );
    let res = async {
        let client = AgentClient::connect(n.addr.ip, n.agent_port, &tls, Duration::from_secs(10))
            .await
            .map_err(|e| e.to_string())?;
        let last = Mutex::new(None::<Instant>);
        let on_progress = |p: &Progress| {
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            let done = p.content_sent >= p.content_total;
            if last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) && !done {
                return;
            }
            *last = Some(Instant::now());
            let ev = r.event(&host, Phase::Transfer, EventKind::Progress);
            let msg = format!("{} / {} to send", mib(p.content_sent), mib(p.content_total));
            r.emit(with_progress(ev, p, started.elapsed()).message(msg));
        };
        let id = format!("{}-{host}", r.op());
        transfer_to(
            client.channel(),
            client.endpoint(),
            src.clone(),
            id,
            r.op().to_string(),
            on_progress,
        )
        .await
        .map_err(|e| e.to_string())
    }
    .await;
    match &res {
        Ok(s) => {
            let ev = r.event(&host, Phase::Transfer, EventKind::Finished);
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
            r.event(&host, Phase::Transfer, EventKind::Failed)
                .message(e.clone()),
        ),
    }
    res
}

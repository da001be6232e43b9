//! What the distribute step sends (a hashed tree, or a registry root in
//! two phases) and how: one relay over all targets, or with `star` one
//! relay per target so the bastion feeds every host itself.

use std::path::Path;
use std::sync::Arc;

use ferry_shared::transfer::{DEFAULT_CHUNK_SIZE, RelPath, Topology};
use futures::StreamExt;

use super::STEP;
use crate::pipeline::PipelineError;
use crate::transfer::registry::{self, RegistrySources};
use crate::transfer::{
    BuildOptions, Outcome, Progress, SenderStats, Target, TransferError, build_with, relay,
    sync_registry,
};

/// A tree hashed once, sent to many nodes.
pub enum Job {
    Tree(Arc<crate::transfer::Source>),
    Registry(Arc<RegistrySources>),
}

impl Job {
    pub fn dest(&self) -> String {
        match self {
            Job::Tree(s) => s.dest.to_string(),
            Job::Registry(r) => r.blobs.dest.to_string(),
        }
    }

    pub fn bytes_total(&self) -> u64 {
        match self {
            Job::Tree(s) => s.manifest.total_bytes(),
            Job::Registry(r) => r.blobs.manifest.total_bytes() + r.rest.manifest.total_bytes(),
        }
    }
}

/// Hashes `local` for `dst` on a blocking thread. A registry root in
/// docker-distribution layout becomes a registry sync; any other registry
/// tree is copied without pruning. A rootfs/app tree leaves `registry/`
/// alone on the node (neither sent nor pruned).
pub async fn hash(local: &Path, dst: &str, registry_root: bool) -> Result<Job, PipelineError> {
    let (l, d) = (local.to_path_buf(), dst.to_string());
    let built = tokio::task::spawn_blocking(move || -> Result<Job, TransferError> {
        if registry_root && l.join("docker/registry/v2").is_dir() {
            let r = registry::sources(&l, &d, DEFAULT_CHUNK_SIZE)?;
            return Ok(Job::Registry(Arc::new(r)));
        }
        let mut opts = BuildOptions::new(DEFAULT_CHUNK_SIZE);
        // Rootfs and app trees are ferry's own: mirrored with prune.
        if !registry_root {
            opts.prune = true;
            if let Ok(r) = RelPath::new("registry") {
                opts.exclude.push(r);
            }
        }
        Ok(Job::Tree(Arc::new(build_with(&l, &d, &opts)?)))
    })
    .await
    .map_err(|e| PipelineError::cluster(STEP, format!("hashing task failed: {e}")))?;
    built.map_err(|e| {
        PipelineError::cluster(
            STEP,
            format!(
                "{}: {e}; next: check the image mount under the cluster's state dir, then re-run",
                local.display()
            ),
        )
    })
}

/// Brings every target to `job`; `cb` gets (target, counters).
pub async fn transfer(
    targets: Vec<Target>,
    job: &Job,
    topology: Topology,
    op: &str,
    concurrency: usize,
    cb: &(dyn Fn(usize, &Progress) + Sync),
) -> Outcome {
    if topology != Topology::Star || targets.len() < 2 {
        return run_job(targets, job, topology, op, cb).await;
    }
    // The bastion feeds every host itself (bounded), one relay each.
    let outs: Vec<Outcome> = futures::stream::iter(targets.into_iter().enumerate().map(
        |(t, target)| async move {
            let one = move |_: usize, p: &Progress| cb(t, p);
            run_job(vec![target], job, Topology::Chain, op, &one).await
        },
    ))
    .buffered(concurrency.max(1))
    .collect()
    .await;
    let mut all = Outcome {
        nodes: Vec::new(),
        sender: SenderStats::default(),
    };
    for o in outs {
        all.nodes.extend(o.nodes);
        all.sender.chunks_sent += o.sender.chunks_sent;
        all.sender.content_bytes_sent += o.sender.content_bytes_sent;
        all.sender.wire_bytes_sent += o.sender.wire_bytes_sent;
        all.sender.rounds = all.sender.rounds.max(o.sender.rounds);
    }
    all
}

/// One relay transfer of `job` (two for a registry: blobs, then the rest).
async fn run_job(
    targets: Vec<Target>,
    job: &Job,
    topology: Topology,
    op: &str,
    cb: &(dyn Fn(usize, &Progress) + Sync),
) -> Outcome {
    match job {
        Job::Tree(s) => relay(targets, s.clone(), topology, op, cb).await,
        Job::Registry(reg) => {
            let two = |t: usize, _phase: usize, p: &Progress| cb(t, p);
            sync_registry(targets, reg, topology, op, &two).await
        }
    }
}

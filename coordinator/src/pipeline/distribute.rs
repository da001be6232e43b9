//! The distribute step: the mounted trees to the nodes through the
//! distribution engine (content-addressed; what a node has is not sent).
//! rootfs (with patches) to every host, applications to master0 only,
//! registry data to registry hosts.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ferry_shared::EventKind;
use ferry_shared::pipeline::Step;
use ferry_shared::transfer::DEFAULT_CHUNK_SIZE;

use super::node::NodeRef;
use super::{Ctx, PipelineError};
use crate::transfer::{Source, build, transfer_to};

/// A tree hashed once, sent to many nodes.
#[derive(Debug, Clone)]
pub struct Tree {
    pub src: Arc<Source>,
}

pub async fn hash(local: &Path, dst: &str) -> Result<Tree, PipelineError> {
    let (l, d) = (local.to_path_buf(), dst.to_string());
    let src = tokio::task::spawn_blocking(move || build(&l, &d, DEFAULT_CHUNK_SIZE))
        .await
        .map_err(|e| PipelineError::cluster(Step::Distribute, format!("hashing task failed: {e}")))?
        .map_err(|e| {
            PipelineError::cluster(Step::Distribute, format!("{}: {e}", local.display()))
        })?;
    Ok(Tree { src: Arc::new(src) })
}

/// Sends one tree to one node; returns content bytes sent.
pub async fn send(ctx: &Ctx, n: &NodeRef, tree: &Tree) -> Result<u64, PipelineError> {
    let c = n.connect(&ctx.tls, Step::Distribute).await?;
    let c = c.with_stream_idle(Duration::from_secs(120));
    let id = format!("{}-{}-{}", ctx.rec.reporter().op(), n.ip, tree.src.dest);
    let last = std::sync::Mutex::new(std::time::Instant::now());
    let on_progress = |p: &crate::transfer::Progress| {
        let mut l = last.lock().unwrap_or_else(|e| e.into_inner());
        if l.elapsed() < Duration::from_millis(500) && p.content_sent < p.content_total {
            return;
        }
        *l = std::time::Instant::now();
        ctx.rec.emit(
            ctx.rec
                .reporter()
                .event(&n.host, ferry_shared::Phase::Run, EventKind::Progress)
                .counter("content_bytes_sent", p.content_sent)
                .counter("content_bytes_total", p.content_total)
                .message(format!(
                    "{}: {} {} / {} bytes",
                    Step::Distribute,
                    tree.src.dest,
                    p.content_sent,
                    p.content_total
                )),
        );
    };
    let s = transfer_to(
        c.channel(),
        c.endpoint(),
        tree.src.clone(),
        id,
        ctx.rec.reporter().op().to_string(),
        on_progress,
    )
    .await
    .map_err(|e| PipelineError::host(&n.host, Step::Distribute, e))?;
    Ok(s.progress.content_sent)
}

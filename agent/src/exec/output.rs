//! Moves a process's output to its stream: chunks of at most
//! [`CHUNK_BYTES`], through the bounded frame channel, so a slow client
//! slows the process down instead of growing a buffer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{CHUNK_BYTES, ExecOutput};

/// After the process exits, how long to wait for output from processes it
/// left behind (which still hold its stdout/stderr) before ending.
const DRAIN_IDLE: Duration = Duration::from_secs(2);

/// Progress shared by the output pumps: when a frame was last sent, and
/// how many pumps are waiting for the client right now.
#[derive(Default)]
pub(super) struct Activity {
    pub(super) last_ms: AtomicU64,
    sending: AtomicUsize,
}

pub(super) async fn pump(
    mut r: impl AsyncRead + Unpin,
    tx: mpsc::Sender<ExecOutput>,
    stdout: bool,
    activity: Arc<Activity>,
    started: Instant,
) {
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let data = buf[..n].to_vec();
        let frame = if stdout {
            ExecOutput::Stdout(data)
        } else {
            ExecOutput::Stderr(data)
        };
        activity.sending.fetch_add(1, Ordering::SeqCst);
        let sent = tx.send(frame).await;
        activity.sending.fetch_sub(1, Ordering::SeqCst);
        if sent.is_err() {
            return;
        }
        activity.last_ms.store(ms_since(started), Ordering::SeqCst);
    }
}

pub(super) fn ms_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Lets the pumps deliver what is left. Gives up on output that stays
/// silent for [`DRAIN_IDLE`] (processes the command left behind may hold the
/// pipes open forever) or when the client goes away; a slow client is
/// waited for.
pub(super) async fn drain(
    pumps: &mut JoinSet<()>,
    activity: &Activity,
    tx: &mpsc::Sender<ExecOutput>,
    pid: u32,
) {
    let mut check = tokio::time::interval(Duration::from_millis(100));
    let mut idle_since = Instant::now();
    let mut last_seen = activity.last_ms.load(Ordering::SeqCst);
    while !pumps.is_empty() {
        tokio::select! {
            _ = pumps.join_next() => {}
            () = tx.closed() => break,
            _ = check.tick() => {
                let last = activity.last_ms.load(Ordering::SeqCst);
                if last != last_seen || activity.sending.load(Ordering::SeqCst) > 0 {
                    last_seen = last;
                    idle_since = Instant::now();
                } else if idle_since.elapsed() >= DRAIN_IDLE {
                    tracing::debug!(pid, "output still open after exit; not waiting for it");
                    break;
                }
            }
        }
    }
    pumps.abort_all();
}

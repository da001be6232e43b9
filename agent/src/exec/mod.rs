//! Runs one process per `Exec` stream: argv or a script file, in its own
//! process group, with output streamed in chunks through a bounded channel
//! (a slow client slows the process down; nothing is buffered without
//! bound). The group is SIGKILLed on timeout, when the client goes away,
//! and when the agent shuts down.

mod command;
mod output;

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ferry_shared::{EventKind, ExecSpec, ExitOutcome};
use tokio::io::AsyncWriteExt;
use tokio::process::Child;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::events::{EventBus, unix_ms};
use crate::process_group::{GroupError, GroupGuard, GroupRegistry};
use command::command;
use output::{Activity, drain, ms_since, pump};

/// Largest output chunk per frame.
pub const CHUNK_BYTES: usize = 32 * 1024;
/// Frames buffered per exec stream before the process is slowed down.
const FRAME_BUFFER: usize = 16;

/// One item of an exec stream, in order: `Started`, output and heartbeats,
/// then exactly one `Exit` (unless the client went away).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutput {
    Started { pid: u32 },
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Heartbeat { unix_ms: i64 },
    Exit(ExitOutcome),
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{limit} commands are already running on this node; retry when some have finished")]
    TooMany { limit: usize },
    #[error("the agent is shutting down")]
    ShuttingDown,
    #[error("working directory {cwd} is not usable: {reason}")]
    Cwd { cwd: String, reason: String },
    #[error("script {path} is not usable: {reason}")]
    Script { path: String, reason: String },
    #[error("cannot start `{command}` in {cwd}: {source}")]
    Spawn {
        command: String,
        cwd: String,
        source: io::Error,
    },
    #[error(transparent)]
    Group(#[from] GroupError),
}

/// Starts execs, bounded by a semaphore.
#[derive(Clone)]
pub struct Executor {
    permits: Arc<Semaphore>,
    limit: usize,
    heartbeat: Duration,
    shutdown: CancellationToken,
    groups: Arc<GroupRegistry>,
    events: EventBus,
}

/// How an exec's main wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Exited,
    TimedOut,
    Cancelled,
    Shutdown,
}

struct Job {
    child: Child,
    guard: GroupGuard,
    _permit: OwnedSemaphorePermit,
    tx: mpsc::Sender<ExecOutput>,
    spec: ExecSpec,
    command: String,
    pid: u32,
    started: Instant,
}

impl Executor {
    pub fn new(
        limit: usize,
        heartbeat: Duration,
        shutdown: CancellationToken,
        groups: Arc<GroupRegistry>,
        events: EventBus,
    ) -> Self {
        let limit = limit.max(1);
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            heartbeat: heartbeat.max(Duration::from_millis(1)),
            shutdown,
            groups,
            events,
        }
    }

    /// Spawns `spec` (already validated) and returns its output stream.
    /// Dropping the receiver kills the process group.
    pub fn start(&self, spec: ExecSpec) -> Result<mpsc::Receiver<ExecOutput>, ExecError> {
        if self.shutdown.is_cancelled() {
            return Err(ExecError::ShuttingDown);
        }
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| ExecError::TooMany { limit: self.limit })?;
        let command_line = command::describe(&spec);
        let mut cmd = command(&spec)?;
        let child = cmd.spawn().map_err(|source| ExecError::Spawn {
            command: command_line.clone(),
            cwd: spec.cwd.clone().unwrap_or_else(|| "/".to_string()),
            source,
        })?;
        let pid = child.id().unwrap_or(0);
        let guard = GroupGuard::new(pid, self.groups.clone())?;
        let (tx, rx) = mpsc::channel(FRAME_BUFFER);
        // The channel is new and empty: this cannot fail.
        let _ = tx.try_send(ExecOutput::Started { pid });
        tracing::info!(pid, op = %spec.operation_id, command = %command_line, "exec started");
        self.events.publish(
            self.events
                .event(&spec.operation_id, spec.phase, EventKind::Started)
                .counter("pid", u64::from(pid))
                .message(command_line.clone()),
        );
        let job = Job {
            child,
            guard,
            _permit: permit,
            tx,
            spec,
            command: command_line,
            pid,
            started: Instant::now(),
        };
        tokio::spawn(self.clone().run(job));
        Ok(rx)
    }

    async fn run(self, mut job: Job) {
        let activity = Arc::new(Activity::default());
        let mut pumps = JoinSet::new();
        if let Some(out) = job.child.stdout.take() {
            pumps.spawn(pump(
                out,
                job.tx.clone(),
                true,
                activity.clone(),
                job.started,
            ));
        }
        if let Some(err) = job.child.stderr.take() {
            pumps.spawn(pump(
                err,
                job.tx.clone(),
                false,
                activity.clone(),
                job.started,
            ));
        }
        let stdin_task = job.child.stdin.take().map(|mut w| {
            let data = std::mem::take(&mut job.spec.stdin);
            // Dropping `w` afterwards closes the child's stdin. A child that
            // exits without reading makes the write fail; that is fine.
            tokio::spawn(async move {
                let _ = w.write_all(&data).await;
            })
        });

        let (end, exited) = self.wait(&mut job, &activity).await;
        let timed_out = end == End::TimedOut;
        let status = match exited {
            Some(s) => {
                job.guard.disarm();
                s
            }
            None => job.child.wait().await,
        };
        if end == End::Cancelled {
            pumps.abort_all();
        } else {
            drain(&mut pumps, &activity, &job.tx, job.pid).await;
        }
        if let Some(t) = stdin_task {
            t.abort();
        }
        let outcome = ExitOutcome {
            code: status.as_ref().ok().and_then(|s| s.code()),
            signal: status.as_ref().ok().and_then(|s| s.signal()),
            timed_out,
            duration: job.started.elapsed(),
            dropped_bytes: 0,
        };
        self.report(&job, end, &outcome, status.as_ref().err());
        if end != End::Cancelled {
            let _ = job.tx.send(ExecOutput::Exit(outcome)).await;
        }
    }

    /// Waits for the process to exit, the timeout, the client to go away or
    /// shutdown, sending heartbeats while no output flows. Kills the group
    /// unless the process exited by itself (then its status is returned).
    async fn wait(
        &self,
        job: &mut Job,
        activity: &Activity,
    ) -> (End, Option<io::Result<std::process::ExitStatus>>) {
        let deadline = job.spec.timeout.map(|t| job.started + t);
        let timeout = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(timeout);
        let mut hb = tokio::time::interval_at(job.started + self.heartbeat, self.heartbeat);
        hb.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let hb_ms = u64::try_from(self.heartbeat.as_millis()).unwrap_or(u64::MAX);
        let end = loop {
            tokio::select! {
                status = job.child.wait() => return (End::Exited, Some(status)),
                () = &mut timeout => break End::TimedOut,
                () = job.tx.closed() => break End::Cancelled,
                () = self.shutdown.cancelled() => break End::Shutdown,
                _ = hb.tick() => {
                    let now = ms_since(job.started);
                    if now.saturating_sub(activity.last_ms.load(Ordering::SeqCst)) >= hb_ms
                        && job.tx.try_send(ExecOutput::Heartbeat { unix_ms: unix_ms() }).is_ok()
                    {
                        activity.last_ms.store(now, Ordering::SeqCst);
                    }
                }
            }
        };
        job.guard.kill();
        (end, None)
    }

    fn report(&self, job: &Job, end: End, o: &ExitOutcome, wait_err: Option<&io::Error>) {
        let (kind, message) = match (end, wait_err) {
            (_, Some(e)) => (
                EventKind::Failed,
                format!("`{}`: waiting for the process failed: {e}", job.command),
            ),
            (End::Cancelled, _) => (
                EventKind::Failed,
                format!(
                    "`{}`: the client went away; process group killed",
                    job.command
                ),
            ),
            (End::Shutdown, _) => (
                EventKind::Failed,
                format!(
                    "`{}`: the agent is shutting down; process group killed",
                    job.command
                ),
            ),
            _ if o.success() => (
                EventKind::Finished,
                format!("`{}`: exit code 0", job.command),
            ),
            _ => (
                EventKind::Failed,
                format!("`{}`: {}", job.command, o.describe()),
            ),
        };
        let duration_ms = u64::try_from(o.duration.as_millis()).unwrap_or(u64::MAX);
        let mut ev = self
            .events
            .event(&job.spec.operation_id, job.spec.phase, kind)
            .counter("pid", u64::from(job.pid))
            .counter("duration_ms", duration_ms)
            .message(message.clone());
        if let Some(c) = o.code.and_then(|c| u64::try_from(c).ok()) {
            ev = ev.counter("exit_code", c);
        }
        if let Some(s) = o.signal.and_then(|s| u64::try_from(s).ok()) {
            ev = ev.counter("signal", s);
        }
        if o.timed_out {
            ev = ev.counter("timed_out", 1);
        }
        tracing::info!(pid = job.pid, op = %job.spec.operation_id, duration_ms, "{message}");
        self.events.publish(ev);
    }
}

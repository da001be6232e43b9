//! `~/.ferry/<cluster>/journal.jsonl` (append-only, fsync'd after every
//! record) and `events.jsonl` (every event the pipeline emits).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ferry_shared::pipeline::{Journal, JournalRecord, Outcome, Step};
use ferry_shared::{Event, EventKind, Phase};

use super::PipelineError;
use crate::output::{Reporter, now_ms};

pub const JOURNAL_FILE: &str = "journal.jsonl";
pub const EVENTS_FILE: &str = "events.jsonl";

fn open_append(path: &Path) -> Result<File, PipelineError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(PipelineError::io("opening", path))
}

struct Inner {
    journal: Journal,
    jfile: File,
    efile: File,
    jpath: PathBuf,
}

/// The journal and event log of one cluster, shared by all host tasks.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Mutex<Inner>>,
    reporter: Reporter,
}

impl Recorder {
    pub fn open(dir: &Path, reporter: Reporter) -> Result<Self, PipelineError> {
        let jpath = dir.join(JOURNAL_FILE);
        let text = match std::fs::read_to_string(&jpath) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(PipelineError::io("reading", &jpath)(e)),
        };
        let (journal, _torn) = Journal::from_lines(&text);
        let mut jfile = open_append(&jpath)?;
        if !text.is_empty() && !text.ends_with('\n') {
            // A torn last line from a crash: start the next record on a new line.
            jfile
                .write_all(b"\n")
                .map_err(PipelineError::io("writing", &jpath))?;
        }
        let efile = open_append(&dir.join(EVENTS_FILE))?;
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                journal,
                jfile,
                efile,
                jpath,
            })),
            reporter,
        })
    }

    pub fn reporter(&self) -> &Reporter {
        &self.reporter
    }

    pub fn is_done(&self, step: Step, host: &str, digest: &str) -> bool {
        self.lock().journal.is_done(step, host, digest)
    }

    pub fn ever_done(&self, step: Step, host: &str) -> bool {
        self.lock().journal.ever_done(step, host)
    }

    /// Keys of `step` on `host` and its parts not undone (teardown).
    pub fn live_keys(&self, step: Step, host: &str) -> Vec<String> {
        self.lock().journal.live_keys(step, host)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends and fsyncs one record.
    pub fn record(
        &self,
        step: Step,
        host: &str,
        digest: &str,
        outcome: Outcome,
        message: &str,
    ) -> Result<(), PipelineError> {
        let rec = JournalRecord {
            ts_ms: now_ms(),
            op: self.reporter.op().to_string(),
            step,
            host: host.to_string(),
            digest: digest.to_string(),
            outcome,
            message: message.to_string(),
        };
        let line = serde_json::to_string(&rec).unwrap_or_default() + "\n";
        let mut g = self.lock();
        let path = g.jpath.clone();
        g.jfile
            .write_all(line.as_bytes())
            .and_then(|()| g.jfile.sync_data())
            .map_err(PipelineError::io("writing", &path))?;
        g.journal.record(rec);
        Ok(())
    }

    /// Emits to the reporter and appends to events.jsonl.
    pub fn emit(&self, ev: Event) {
        {
            let mut g = self.lock();
            let _ = writeln!(g.efile, "{}", ev.to_json_line());
        }
        self.reporter.emit(ev);
    }

    /// A pipeline event: the message starts with the step name.
    pub fn step_event(&self, step: Step, host: &str, kind: EventKind, detail: &str) {
        let msg = if detail.is_empty() {
            step.as_str().to_string()
        } else {
            format!("{step}: {detail}")
        };
        self.emit(self.reporter.event(host, Phase::Run, kind).message(msg));
    }

    /// Flushes the event log (best effort; events are diagnostics).
    pub fn flush(&self) {
        let _ = self.lock().efile.sync_data();
    }
}

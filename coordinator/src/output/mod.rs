//! Where events go: `--output json` prints one JSON event per line on stdout
//! (schema in docs/events.md); human mode prints per-node progress (bars on a
//! terminal, plain lines otherwise) with errors and summaries.
//!
//! Invariant: every status change a command makes is an [`Event`] passed
//! through [`Reporter::emit`]; human rendering is derived from events.

mod human;
pub mod progress;

use std::io::Write;
use std::sync::{Arc, Mutex};

use ferry_shared::{Event, EventKind, OutputStream, Phase, Source};

pub use human::Human;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputMode {
    Human,
    Json,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A random operation id correlating everything one invocation does.
pub fn new_operation_id() -> String {
    let n: u64 = rand::random();
    format!("{n:016x}")
}

enum Sink {
    Json(Mutex<std::io::Stdout>),
    Human(Human),
}

/// Cheap to clone; shared by every per-host task.
#[derive(Clone)]
pub struct Reporter {
    op: String,
    sink: Arc<Sink>,
}

impl Reporter {
    pub fn new(mode: OutputMode, op: String) -> Self {
        let sink = match mode {
            OutputMode::Json => Sink::Json(Mutex::new(std::io::stdout())),
            OutputMode::Human => Sink::Human(Human::new()),
        };
        Self {
            op,
            sink: Arc::new(sink),
        }
    }

    pub fn op(&self) -> &str {
        &self.op
    }

    pub fn is_json(&self) -> bool {
        matches!(*self.sink, Sink::Json(_))
    }

    /// A coordinator event about `node` (empty = cluster-wide).
    pub fn event(&self, node: &str, phase: Phase, kind: EventKind) -> Event {
        Event::new(
            Source::Coordinator,
            now_ms(),
            node,
            self.op.clone(),
            phase,
            kind,
        )
    }

    pub fn emit(&self, ev: Event) {
        match &*self.sink {
            Sink::Json(out) => {
                if let Ok(mut o) = out.lock() {
                    let _ = writeln!(o, "{}", ev.to_json_line());
                    let _ = o.flush();
                }
            }
            Sink::Human(h) => h.render(&ev),
        }
    }

    /// One line of a command's output on `node`.
    pub fn output_line(&self, node: &str, phase: Phase, stream: OutputStream, line: &str) {
        let ev = self
            .event(node, phase, EventKind::Log)
            .stream(stream)
            .message(line);
        self.emit(ev);
    }

    /// Free text for humans (summaries, tables). JSON mode ignores it: the
    /// events already carry the same facts.
    pub fn text(&self, s: &str) {
        if let Sink::Human(h) = &*self.sink {
            h.println(s);
        }
    }

    /// Stops progress bars so later printing is clean.
    pub fn finish(&self) {
        if let Sink::Human(h) = &*self.sink {
            h.finish();
        }
    }
}

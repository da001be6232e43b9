//! Human rendering of events: a spinner per node on a terminal, plain
//! `node phase kind message` lines otherwise. Output lines of commands are
//! printed `[node] line`, stderr marked.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use ferry_shared::{Event, EventKind, OutputStream, Phase};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Human {
    bars: Option<MultiProgress>,
    per_node: Mutex<HashMap<String, ProgressBar>>,
    err: Mutex<std::io::Stderr>,
}

impl Default for Human {
    fn default() -> Self {
        Self::new()
    }
}

impl Human {
    pub fn new() -> Self {
        let tty = std::io::stderr().is_terminal();
        Self {
            bars: tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            per_node: Mutex::new(HashMap::new()),
            err: Mutex::new(std::io::stderr()),
        }
    }

    pub fn println(&self, s: &str) {
        match &self.bars {
            Some(m) => {
                let _ = m.println(s);
            }
            // A closed stdout (e.g. `ferry exec ... | head`) must not panic.
            None => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{s}");
                let _ = out.flush();
            }
        }
    }

    fn status_line(&self, s: &str) {
        match &self.bars {
            Some(m) => {
                let _ = m.println(s);
            }
            None => {
                if let Ok(mut e) = self.err.lock() {
                    let _ = writeln!(e, "{s}");
                }
            }
        }
    }

    fn bar(&self, node: &str) -> Option<ProgressBar> {
        let m = self.bars.as_ref()?;
        let mut map = self.per_node.lock().ok()?;
        let pb = map.entry(node.to_string()).or_insert_with(|| {
            let pb = m.add(ProgressBar::new_spinner());
            if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix:>18} {wide_msg}") {
                pb.set_style(style);
            }
            pb.set_prefix(node.to_string());
            pb.enable_steady_tick(Duration::from_millis(120));
            pb
        });
        Some(pb.clone())
    }

    pub fn render(&self, ev: &Event) {
        // Facts are shown as a table by `agent status`; the event's message
        // is the facts JSON, meant for `--output json`.
        if ev.phase == Phase::Facts && ev.kind == EventKind::Finished {
            return;
        }
        let node = if ev.node.is_empty() {
            "-"
        } else {
            ev.node.as_str()
        };
        if ev.kind == EventKind::Log {
            if let Some(stream) = ev.stream {
                let mark = if stream == OutputStream::Stderr {
                    " (stderr)"
                } else {
                    ""
                };
                self.println(&format!("[{node}]{mark} {}", ev.message));
            } else {
                self.status_line(&format!("{node:>18}  {}: {}", ev.phase, ev.message));
            }
            return;
        }
        let counters: Vec<String> = ev
            .counters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut msg = format!("{} {}", ev.phase, ev.kind);
        if !ev.message.is_empty() {
            msg.push_str(": ");
            msg.push_str(&ev.message);
        }
        if !counters.is_empty() {
            msg.push_str(&format!(" ({})", counters.join(" ")));
        }
        match self.bar(node) {
            Some(pb) => {
                if ev.kind == EventKind::Failed {
                    let _ = self
                        .bars
                        .as_ref()
                        .map(|m| m.println(format!("{node:>18}  {msg}")));
                }
                pb.set_message(msg);
            }
            None => self.status_line(&format!("{node:>18}  {msg}")),
        }
    }

    pub fn finish(&self) {
        if let Ok(mut map) = self.per_node.lock() {
            for (_, pb) in map.drain() {
                pb.finish();
            }
        }
    }
}

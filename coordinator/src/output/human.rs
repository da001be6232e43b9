//! Human rendering of events. On a terminal: a spinner per node, which
//! becomes a byte bar while the node's events carry byte counters (see
//! [`super::progress`]) and ends with its summary; the total's bar (node
//! `-`) stays at the bottom; failures are printed above the bars. Otherwise
//! plain `node phase kind message` lines (byte events as `120.0/400.0 MiB
//! 38.2 MiB/s eta 7s (files ...)`). Output lines of commands are printed
//! `[node] line`, stderr marked.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use ferry_shared::{Event, EventKind, OutputStream, Phase};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::progress::{self, ByteProgress};

pub struct Human {
    bars: Option<MultiProgress>,
    lines: Mutex<Lines>,
    err: Mutex<std::io::Stderr>,
}

/// The terminal's live lines: one per node, the total's byte bar last.
#[derive(Default)]
struct Lines {
    /// After [`Human::finish`]: bars are done, text goes below them.
    closed: bool,
    per_node: HashMap<String, Line>,
    /// The total's byte bar, kept below every node's line.
    total: Option<ProgressBar>,
}

struct Line {
    pb: ProgressBar,
    /// The last byte counters when this line is a byte bar.
    bytes: Option<ByteProgress>,
}

const TOTAL: &str = "-";

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
            lines: Mutex::new(Lines::default()),
            err: Mutex::new(std::io::stderr()),
        }
    }

    fn closed(&self) -> bool {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).closed
    }

    pub fn println(&self, s: &str) {
        match self.bars.as_ref().filter(|_| !self.closed()) {
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
        match self.bars.as_ref().filter(|_| !self.closed()) {
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

    pub fn render(&self, ev: &Event) {
        // Facts are shown as a table by `agent status`; the event's message
        // is the facts JSON, meant for `--output json`.
        if ev.phase == Phase::Facts && ev.kind == EventKind::Finished {
            return;
        }
        let node = if ev.node.is_empty() {
            TOTAL
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
        let bytes = ByteProgress::from_event(ev);
        let Some(m) = self.bars.as_ref().filter(|_| !self.closed()) else {
            let line = match &bytes {
                Some(p) => progress::plain_line(node, ev, p),
                None => format!("{node:>18}  {}", status_text(ev)),
            };
            self.status_line(&line);
            return;
        };
        if ev.kind == EventKind::Failed {
            // The error itself; a byte bar keeps the counters.
            let text = match bytes {
                Some(_) => format!("{} {}: {}", ev.phase, ev.kind, ev.message),
                None => status_text(ev),
            };
            let _ = m.println(format!("{node:>18}  {text}"));
        }
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        match bytes {
            Some(p) => bars::bytes(m, &mut lines, node, ev, p),
            None => bars::status(m, &mut lines, node, ev),
        }
    }

    pub fn finish(&self) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.closed = true;
        for (_, l) in lines.per_node.drain() {
            if !l.pb.is_finished() {
                l.pb.finish();
            }
        }
        if let Some(t) = lines.total.take()
            && !t.is_finished()
        {
            t.finish();
        }
    }
}

/// `{phase} {kind}: {message} (k=v ...)`: an event without byte counters.
fn status_text(ev: &Event) -> String {
    let mut msg = format!("{} {}", ev.phase, ev.kind);
    if !ev.message.is_empty() {
        msg.push_str(": ");
        msg.push_str(&ev.message);
    }
    if !ev.counters.is_empty() {
        let counters: Vec<String> = ev
            .counters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        msg.push_str(&format!(" ({})", counters.join(" ")));
    }
    msg
}

/// The indicatif side: which bar an event lands on, and its style.
mod bars {
    use super::*;

    fn spinner_style() -> Option<ProgressStyle> {
        ProgressStyle::with_template("{spinner} {prefix:>18} {wide_msg}").ok()
    }

    fn bar_style() -> Option<ProgressStyle> {
        ProgressStyle::with_template("  {prefix:>18} [{bar:28}] {wide_msg}")
            .ok()
            .map(|s| s.progress_chars("=> "))
    }

    /// A new line for `node`, above the total's bar (or the total's bar).
    fn add(m: &MultiProgress, lines: &Lines, node: &str, pb: ProgressBar) -> ProgressBar {
        let pb = match &lines.total {
            Some(t) if node != TOTAL && !t.is_finished() => m.insert_before(t, pb),
            _ => m.add(pb),
        };
        pb.set_prefix(node.to_string());
        pb
    }

    fn new_spinner(m: &MultiProgress, lines: &Lines, node: &str) -> ProgressBar {
        let pb = add(m, lines, node, ProgressBar::new_spinner());
        if let Some(s) = spinner_style() {
            pb.set_style(s);
        }
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    }

    fn to_bar(pb: &ProgressBar, total: u64) {
        pb.disable_steady_tick();
        if let Some(s) = bar_style() {
            pb.set_style(s);
        }
        pb.set_length(total);
    }

    /// An event with byte counters: the node's line becomes (or is) a byte
    /// bar; the total's bar is created at the bottom.
    pub(super) fn bytes(
        m: &MultiProgress,
        lines: &mut Lines,
        node: &str,
        ev: &Event,
        p: ByteProgress,
    ) {
        let text = progress::describe(ev, &p);
        let reuse = lines
            .per_node
            .get(node)
            .is_some_and(|l| !l.pb.is_finished() && (l.bytes.is_some() || node != TOTAL));
        if !reuse {
            if let Some(old) = lines.per_node.remove(node)
                && !old.pb.is_finished()
            {
                old.pb.finish();
            }
            let pb = add(m, lines, node, ProgressBar::new(p.total));
            if node == TOTAL {
                lines.total = Some(pb.clone());
            }
            lines
                .per_node
                .insert(node.to_string(), Line { pb, bytes: None });
        }
        let Some(line) = lines.per_node.get_mut(node) else {
            return;
        };
        if line.bytes.is_none() {
            to_bar(&line.pb, p.total);
        }
        line.pb.set_length(p.total);
        line.pb.set_position(p.done.min(p.total));
        match ev.kind {
            EventKind::Finished => line.pb.finish_with_message(text),
            EventKind::Failed => line.pb.abandon_with_message(text),
            _ => line.pb.set_message(text),
        }
        line.bytes = Some(p);
    }

    /// An event without byte counters: a spinner's message; it ends a live
    /// byte bar (keeping its bytes), or opens a spinner after one.
    pub(super) fn status(m: &MultiProgress, lines: &mut Lines, node: &str, ev: &Event) {
        let text = status_text(ev);
        if let Some(line) = lines.per_node.get_mut(node)
            && !line.pb.is_finished()
        {
            let Some(last) = &line.bytes else {
                line.pb.set_message(text);
                return;
            };
            let mut summary = format!("{} {}: {}", ev.phase, ev.kind, last.ended_by(ev).text());
            if !ev.message.is_empty() {
                summary.push_str(" — ");
                summary.push_str(&ev.message);
            }
            match ev.kind {
                EventKind::Failed => line.pb.abandon_with_message(summary),
                EventKind::Finished => line.pb.finish_with_message(summary),
                // Something else starts: the bar stays as it was.
                _ => line.pb.finish(),
            }
            if matches!(ev.kind, EventKind::Failed | EventKind::Finished) {
                return;
            }
        }
        let pb = new_spinner(m, lines, node);
        pb.set_message(text);
        lines
            .per_node
            .insert(node.to_string(), Line { pb, bytes: None });
    }
}

#[cfg(test)]
#[path = "human_tests.rs"]
mod tests;

//! Follows one cluster's `events.jsonl` (polled): every complete line is
//! published to the cluster's hub with its line number. A file that
//! shrinks or is replaced (another inode) starts a new generation, read
//! from its first line.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferry_shared::Event;

use super::hub::Hub;

/// How often the file is polled (the page shows a line within this).
pub const POLL_EVERY: Duration = Duration::from_millis(100);
/// A longer line is not an event; it is skipped, still counted.
const MAX_LINE: usize = 1 << 20;
/// Read at most this much per poll, so one huge file cannot stall a tick.
const MAX_READ: usize = 16 << 20;

/// The generation of a file whose first line is `first`: its event's
/// `ts_ms` (never 0, which means "no file yet").
pub fn generation(first: &str) -> u64 {
    serde_json::from_str::<Event>(first)
        .map(|e| u64::try_from(e.ts_ms).unwrap_or(0))
        .unwrap_or(0)
        .max(1)
}

/// The generation of the file at `path` now (None: unknown — no complete
/// first line in its first 64 KiB). Catches a file truncated and refilled
/// past the old offset between two polls.
fn first_generation(path: &Path) -> Option<u64> {
    let mut f = File::open(path).ok()?;
    let mut buf = vec![0u8; 64 << 10];
    let n = f.read(&mut buf).ok()?;
    let end = buf[..n].iter().position(|&b| b == b'\n')?;
    Some(generation(&String::from_utf8_lossy(&buf[..end])))
}

pub struct Tailer {
    path: PathBuf,
    file: Option<File>,
    ino: u64,
    offset: u64,
    line: u64,
    gen_ms: u64,
    partial: Vec<u8>,
    skipping: bool,
}

impl Tailer {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            file: None,
            ino: 0,
            offset: 0,
            line: 0,
            gen_ms: 0,
            partial: Vec::new(),
            skipping: false,
        }
    }

    /// Reads what was appended since the last poll; returns the number
    /// of events published.
    pub fn poll(&mut self, hub: &Hub) -> std::io::Result<usize> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let replaced = self.file.is_none()
            || meta.ino() != self.ino
            || meta.len() < self.offset
            || (self.gen_ms != 0 && first_generation(&self.path).is_some_and(|g| g != self.gen_ms));
        if replaced {
            self.file = Some(File::open(&self.path)?);
            self.ino = meta.ino();
            self.offset = 0;
            self.line = 0;
            self.gen_ms = 0;
            self.partial.clear();
            self.skipping = false;
        }
        let Some(mut f) = self.file.take() else {
            return Ok(0);
        };
        let res = self.read_from(&mut f, hub);
        self.file = Some(f);
        res
    }

    fn read_from(&mut self, f: &mut File, hub: &Hub) -> std::io::Result<usize> {
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = vec![0u8; 256 << 10];
        let (mut read, mut published) = (0usize, 0usize);
        while read < MAX_READ {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            read += n;
            self.offset += n as u64;
            let mut rest = &buf[..n];
            while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
                let (head, tail) = rest.split_at(pos);
                rest = &tail[1..];
                if self.skipping {
                    self.skipping = false;
                    self.line += 1;
                    continue;
                }
                self.partial.extend_from_slice(head);
                let line = std::mem::take(&mut self.partial);
                published += usize::from(self.line_done(hub, &line));
            }
            self.partial.extend_from_slice(rest);
            if self.partial.len() > MAX_LINE {
                self.partial.clear();
                self.skipping = true;
            }
        }
        Ok(published)
    }

    fn line_done(&mut self, hub: &Hub, raw: &[u8]) -> bool {
        self.line += 1;
        let text = String::from_utf8_lossy(raw);
        let text = text.trim_end_matches('\r');
        if self.line == 1 {
            self.gen_ms = generation(text);
        }
        match serde_json::from_str::<Event>(text) {
            Ok(ev) => {
                hub.publish_file(self.gen_ms, self.line, &ev, text);
                true
            }
            Err(e) => {
                tracing::debug!(path = %self.path.display(), line = self.line, "not an event: {e}");
                false
            }
        }
    }
}

/// Polls `hub`'s `events.jsonl` until the task is dropped.
pub async fn follow(hub: Arc<Hub>, every: Duration) {
    let mut tailer = Some(Tailer::new(hub.events_path()));
    loop {
        let Some(mut t) = tailer.take() else {
            return;
        };
        let h = hub.clone();
        let res = tokio::task::spawn_blocking(move || {
            let r = t.poll(&h);
            (t, r)
        })
        .await;
        match res {
            Ok((t, r)) => {
                if let Err(e) = r {
                    tracing::debug!(path = %hub.events_path().display(), "tail: {e}");
                }
                tailer = Some(t);
            }
            Err(e) => {
                tracing::warn!(path = %hub.events_path().display(), "tail task failed: {e}");
                tailer = Some(Tailer::new(hub.events_path()));
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Lines re-read (line, json) and the rest of the gap.
pub type GapRead = (Vec<(u64, String)>, Option<super::hub::FileGap>);

/// Re-reads lines `gap.from_line..=gap.to_line` (at most `max` of them)
/// of the file generation `gap.gen_ms`. Returns (line, json) of those
/// that are events, and the rest of the gap (None when done, or when the
/// file is another generation by now: those lines are gone).
pub fn read_gap(path: &Path, gap: super::hub::FileGap, max: usize) -> std::io::Result<GapRead> {
    use std::io::BufRead;
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    let last = gap
        .to_line
        .min(gap.from_line.saturating_add(max.max(1) as u64) - 1);
    for (i, line) in std::io::BufReader::new(f).split(b'\n').enumerate() {
        let n = i as u64 + 1;
        let raw = line?;
        let text = String::from_utf8_lossy(&raw);
        let text = text.trim_end_matches('\r');
        if n == 1 && generation(text) != gap.gen_ms {
            return Ok((Vec::new(), None));
        }
        if n > last {
            break;
        }
        if n >= gap.from_line && serde_json::from_str::<Event>(text).is_ok() {
            out.push((n, text.to_string()));
        }
    }
    let rest = (last < gap.to_line).then_some(super::hub::FileGap {
        from_line: last + 1,
        ..gap
    });
    Ok((out, rest))
}

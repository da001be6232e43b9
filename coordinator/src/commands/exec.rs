//! `ferry exec -- CMD...`: run a command on every selected node through its
//! agent, stream output prefixed by node, print a per-node summary, exit
//! non-zero if any node failed. Ctrl-C cancels the streams, which makes
//! every agent kill its process group.

use std::time::{Duration, Instant};

use ferry_shared::{EventKind, ExecSpec, ExitOutcome, OutputStream, Phase};
use futures::StreamExt;

use super::summary::Summary;
use super::{CliError, Exit, select};
use crate::cli::ExecArgs;
use crate::client::{AgentClient, ClientError, ClientTls, ExecItem};
use crate::fanout;
use crate::output::Reporter;
use crate::state::{ClusterState, NodeRecord};

/// A line longer than this is emitted in pieces.
const MAX_LINE: usize = 64 * 1024;

/// Splits a byte stream into lines without holding more than [`MAX_LINE`].
#[derive(Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    pub fn push(&mut self, data: &[u8], mut out: impl FnMut(&str)) {
        for &b in data {
            if b == b'\n' {
                out(&String::from_utf8_lossy(&self.buf));
                self.buf.clear();
            } else {
                self.buf.push(b);
                if self.buf.len() >= MAX_LINE {
                    out(&String::from_utf8_lossy(&self.buf));
                    self.buf.clear();
                }
            }
        }
    }

    pub fn flush(&mut self, mut out: impl FnMut(&str)) {
        if !self.buf.is_empty() {
            out(&String::from_utf8_lossy(&self.buf));
            self.buf.clear();
        }
    }
}

pub async fn exec(cluster: &ClusterState, r: &Reporter, a: ExecArgs) -> Result<Exit, CliError> {
    let started = Instant::now();
    let nodes = select(cluster, &a.select)?;
    let pki = cluster.agent_pki()?;
    let tls = ClientTls::from_pki(&pki);
    let mut spec = ExecSpec::argv(a.command.clone(), r.op());
    spec.cwd = a.cwd.clone();
    spec.timeout = (a.timeout > 0).then(|| Duration::from_secs(a.timeout));
    for kv in &a.env {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| CliError::Usage(format!("--env `{kv}` must be KEY=VALUE")))?;
        spec.env.push((k.to_string(), v.to_string()));
    }
    spec.validate()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let hosts: Vec<String> = nodes.iter().map(|n| n.addr.to_string()).collect();
    let rr = r.clone();
    let run = fanout::for_each(nodes, a.fanout.concurrency, move |n| {
        run_on(n, spec.clone(), tls.clone(), rr.clone())
    });
    let results = tokio::select! {
        res = run => res,
        _ = tokio::signal::ctrl_c() => {
            // Dropping `run` drops every stream: the agents kill the commands.
            r.emit(r.event("", Phase::Exec, EventKind::Failed).message("interrupted: remote commands cancelled"));
            return Ok(Exit::Interrupted);
        }
    };
    r.finish();
    let mut sum = Summary::default();
    for (host, res) in hosts.iter().zip(&results) {
        match res {
            Ok(o) if o.success() => sum.ok(host, format_args!("{:.2}s", o.duration.as_secs_f64())),
            Ok(o) => sum.failed(
                host,
                format_args!("{} after {:.2}s", o.describe(), o.duration.as_secs_f64()),
            ),
            Err(e) => sum.failed(host, e),
        }
    }
    Ok(sum.print(r, &format!("exec `{}`", a.command.join(" ")), started))
}

async fn run_on(
    n: NodeRecord,
    spec: ExecSpec,
    tls: ClientTls,
    r: Reporter,
) -> Result<ExitOutcome, ClientError> {
    let host = n.addr.to_string();
    let res = stream_exec(&n, &spec, &tls, &r, &host).await;
    match &res {
        Ok(o) => {
            let kind = if o.success() {
                EventKind::Finished
            } else {
                EventKind::Failed
            };
            let mut ev = r
                .event(&host, Phase::Exec, kind)
                .message(o.describe())
                .counter("duration_ms", o.duration.as_millis() as u64);
            if let Some(c) = o.code {
                ev = ev.counter("exit_code", c as u64);
            }
            r.emit(ev);
        }
        Err(e) => r.emit(
            r.event(&host, Phase::Exec, EventKind::Failed)
                .message(e.to_string()),
        ),
    }
    res
}

async fn stream_exec(
    n: &NodeRecord,
    spec: &ExecSpec,
    tls: &ClientTls,
    r: &Reporter,
    host: &str,
) -> Result<ExitOutcome, ClientError> {
    let client =
        AgentClient::connect(n.addr.ip, n.agent_port, tls, Duration::from_secs(10)).await?;
    r.emit(
        r.event(host, Phase::Exec, EventKind::Started)
            .message(spec.display_command()),
    );
    let mut stream = client.exec(spec).await?;
    let (mut out, mut err) = (LineSplitter::default(), LineSplitter::default());
    while let Some(item) = stream.next().await {
        match item? {
            ExecItem::Stdout(d) => out.push(&d, |l| {
                r.output_line(host, Phase::Exec, OutputStream::Stdout, l)
            }),
            ExecItem::Stderr(d) => err.push(&d, |l| {
                r.output_line(host, Phase::Exec, OutputStream::Stderr, l)
            }),
            ExecItem::Exit(o) => {
                out.flush(|l| r.output_line(host, Phase::Exec, OutputStream::Stdout, l));
                err.flush(|l| r.output_line(host, Phase::Exec, OutputStream::Stderr, l));
                return Ok(o);
            }
            ExecItem::Started { .. } | ExecItem::Heartbeat => {}
        }
    }
    Err(ClientError::Rpc {
        endpoint: client.endpoint().to_string(),
        rpc: "Exec",
        status: "stream ended without an exit status (agent restarted?)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitter_handles_partial_and_long_lines() {
        let mut s = LineSplitter::default();
        let mut got = Vec::new();
        s.push(b"a\nbc", |l| got.push(l.to_string()));
        s.push(b"d\n\n", |l| got.push(l.to_string()));
        s.push(b"tail", |l| got.push(l.to_string()));
        s.flush(|l| got.push(l.to_string()));
        assert_eq!(got, ["a", "bcd", "", "tail"]);
        let mut n = 0;
        s.push(&vec![b'x'; MAX_LINE * 2 + 5], |_| n += 1);
        assert_eq!(n, 2);
    }
}

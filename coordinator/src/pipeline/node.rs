//! Work on one node through its agent: commands (argv, env, cwd, stdin)
//! with output streamed as events, small files written through stdin.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use ferry_shared::pipeline::Step;
use ferry_shared::{EventKind, ExecSpec, OutputStream, Phase};
use futures::StreamExt;

use super::PipelineError;
use super::journal::Recorder;
use crate::client::{AgentClient, ClientTls, ExecItem};
use crate::commands::LineSplitter;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the agent may take to accept an exec (request with its stdin
/// sent, process spawned, response headers back). Once started, a stream
/// is bounded by the client's idle limit (agents send heartbeats).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of output kept for error messages.
const TAIL_LINES: usize = 20;

/// How to reach one node's agent.
#[derive(Debug, Clone)]
pub struct NodeRef {
    /// The host as shown in events (`ip:port` of SSH, the inventory key).
    pub host: String,
    pub ip: IpAddr,
    pub agent_port: u16,
}

impl NodeRef {
    pub async fn connect(&self, tls: &ClientTls, step: Step) -> Result<AgentClient, PipelineError> {
        AgentClient::connect(self.ip, self.agent_port, tls, CONNECT_TIMEOUT)
            .await
            .map_err(|e| PipelineError::Agent {
                host: self.host.clone(),
                step,
                detail: e.to_string(),
            })
    }
}

/// One command to run.
#[derive(Debug, Clone)]
pub struct Cmd {
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    pub stdin: Vec<u8>,
    pub timeout: Duration,
    /// Shown instead of the argv (e.g. a hook's label value, or the argv
    /// with a secret argument masked).
    pub display: Option<String>,
    /// The output may carry a secret (`kubeadm token create` prints the
    /// token): no log events, no output tail in errors.
    pub secret_output: bool,
}

impl Cmd {
    pub fn new<S: AsRef<str>>(argv: &[S]) -> Self {
        Self {
            argv: argv.iter().map(|s| s.as_ref().to_string()).collect(),
            env: BTreeMap::new(),
            cwd: None,
            stdin: Vec::new(),
            timeout: Duration::from_secs(600),
            display: None,
            secret_output: false,
        }
    }

    /// `sh -c SCRIPT sh ARGS...`: a fixed script, arguments passed positionally.
    pub fn script(script: &str, args: &[&str]) -> Self {
        let mut argv = vec!["sh", "-c", script, "sh"];
        argv.extend_from_slice(args);
        Self::new(&argv)
    }

    pub fn stdin(mut self, data: Vec<u8>) -> Self {
        self.stdin = data;
        self
    }

    pub fn cwd(mut self, dir: &str) -> Self {
        self.cwd = Some(dir.to_string());
        self
    }

    pub fn env(mut self, env: BTreeMap<String, String>) -> Self {
        self.env = env;
        self
    }

    pub fn display(mut self, d: impl Into<String>) -> Self {
        self.display = Some(d.into());
        self
    }

    /// A command with a secret argument: shown as `display`, its output
    /// kept out of events and errors.
    pub fn secret(mut self, display: impl Into<String>) -> Self {
        self.display = Some(display.into());
        self.secret_output = true;
        self
    }

    fn shown(&self) -> String {
        self.display.clone().unwrap_or_else(|| self.argv.join(" "))
    }
}

/// Runs `cmd` on the node; output lines become `log` events. Returns stdout.
pub async fn run(
    node: &NodeRef,
    tls: &ClientTls,
    rec: &Recorder,
    step: Step,
    cmd: Cmd,
) -> Result<String, PipelineError> {
    let client = node.connect(tls, step).await?;
    let mut spec = ExecSpec::argv(cmd.argv.clone(), rec.reporter().op());
    spec.env = cmd
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    spec.cwd = cmd.cwd.clone();
    spec.stdin = cmd.stdin.clone();
    spec.timeout = Some(cmd.timeout);
    spec.validate()
        .map_err(|e| PipelineError::host(&node.host, step, e))?;
    let shown = cmd.shown();
    let agent_err = |what: &str, e: &dyn std::fmt::Display| PipelineError::Agent {
        host: node.host.clone(),
        step,
        detail: format!("`{shown}` {what}: {e}"),
    };
    let interrupted = |detail: String| PipelineError::Interrupted {
        host: node.host.clone(),
        step,
        command: shown.clone(),
        detail,
    };
    let mut stream = match tokio::time::timeout(START_TIMEOUT, client.exec(&spec)).await {
        Ok(r) => r.map_err(|e| agent_err("not started", &e))?,
        Err(_) => {
            let e = format!("no answer within {START_TIMEOUT:?}");
            return Err(agent_err("not started", &e));
        }
    };
    let (mut out, mut err) = (LineSplitter::default(), LineSplitter::default());
    let mut stdout = String::new();
    let mut tail: Vec<String> = Vec::new();
    let host = node.host.clone();
    let mut log = |s: OutputStream, l: &str, stdout_buf: &mut String| {
        if s == OutputStream::Stdout {
            stdout_buf.push_str(l);
            stdout_buf.push('\n');
        }
        if cmd.secret_output {
            return;
        }
        tail.push(l.to_string());
        if tail.len() > TAIL_LINES {
            tail.remove(0);
        }
        rec.emit(
            rec.reporter()
                .event(&host, Phase::Run, EventKind::Log)
                .stream(s)
                .message(l),
        );
    };
    while let Some(item) = stream.next().await {
        // The command may have run partly: the step is journaled failed and
        // runs again on the next run (hooks are re-run safe).
        match item.map_err(|e| interrupted(e.to_string()))? {
            ExecItem::Stdout(d) => out.push(&d, |l| log(OutputStream::Stdout, l, &mut stdout)),
            ExecItem::Stderr(d) => err.push(&d, |l| log(OutputStream::Stderr, l, &mut stdout)),
            ExecItem::Exit(o) => {
                out.flush(|l| log(OutputStream::Stdout, l, &mut stdout));
                err.flush(|l| log(OutputStream::Stderr, l, &mut stdout));
                if o.success() {
                    return Ok(stdout);
                }
                return Err(PipelineError::Command {
                    host: node.host.clone(),
                    step,
                    command: shown.clone(),
                    outcome: o.describe(),
                    tail: if cmd.secret_output {
                        "(withheld: the output may hold a secret; run the command on the node)"
                            .into()
                    } else {
                        tail.join("\n")
                    },
                });
            }
            ExecItem::Started { .. } | ExecItem::Heartbeat => {}
        }
    }
    Err(interrupted(
        "the exec stream ended without an exit status".into(),
    ))
}

/// Writes `data` to `path` on the node (parent created, mode set, atomic).
pub async fn write_file(
    node: &NodeRef,
    tls: &ClientTls,
    rec: &Recorder,
    step: Step,
    path: &str,
    data: Vec<u8>,
    mode: u32,
) -> Result<(), PipelineError> {
    const SCRIPT: &str = r#"set -e; mkdir -p "$(dirname "$1")"; umask 077; cat > "$1.ferry-tmp"; chmod "$2" "$1.ferry-tmp"; mv -f "$1.ferry-tmp" "$1""#;
    let mode = format!("{mode:o}");
    let cmd = Cmd::script(SCRIPT, &[path, &mode])
        .stdin(data)
        .display(format!("write {path}"));
    run(node, tls, rec, step, cmd).await.map(|_| ())
}

pub use super::node_tree::write_tree;

/// Sets (or with `ip == None` removes) ferry's `/etc/hosts` line for `name`.
/// Edited in place: /etc/hosts may be a bind mount.
pub async fn hosts_entry(
    node: &NodeRef,
    tls: &ClientTls,
    rec: &Recorder,
    step: Step,
    name: &str,
    ip: Option<IpAddr>,
) -> Result<(), PipelineError> {
    const SCRIPT: &str = r##"set -e; f=/etc/hosts; t=$(mktemp); awk -v n="$1" '!($2==n && $3=="#" && $4=="ferry")' "$f" > "$t"; if [ -n "$2" ]; then printf '%s %s # ferry\n' "$2" "$1" >> "$t"; fi; cat "$t" > "$f"; rm -f "$t""##;
    let ip = ip.map(|i| i.to_string()).unwrap_or_default();
    let cmd = Cmd::script(SCRIPT, &[name, &ip]).display(format!("hosts {name} -> {ip}"));
    run(node, tls, rec, step, cmd).await.map(|_| ())
}

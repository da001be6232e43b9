//! `ferry cert` on a master through its agent: certificate files read
//! (certificate blocks only: no private key leaves the node), files written
//! (one tar on exec stdin, renamed into place together), static pods
//! restarted through `crictl` and the apiserver's readiness awaited.
//! Every command is an argv; the scripts are fixed, their inputs positional.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferry_shared::ExecSpec;
use futures::StreamExt;

use crate::client::{AgentClient, ClientTls, ExecItem};
use crate::output::Reporter;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a restarted static pod may take to run again.
pub const RESTART_LIMIT_S: u32 = 180;
/// How long a stopped container may take to exit before it is killed: it is
/// restarted anyway (the apiserver otherwise uses all of its 30 s).
const STOP_GRACE_S: &str = "10";
/// The section header `READ` prints before each file.
const FILE_MARK: &str = "==> ferry-file ";

/// What failed, on which master, at which step, and what to do next.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{host}: {step}: {detail}; next: {next}")]
    Node {
        host: String,
        step: &'static str,
        detail: String,
        next: String,
    },
    #[error("{path}: {step}: {detail}; next: {next}")]
    Bastion {
        path: String,
        step: &'static str,
        detail: String,
        next: String,
    },
}

/// One master's agent.
pub struct Master {
    pub host: String,
    pub ip: IpAddr,
    client: AgentClient,
}

/// How a command ended, with its output.
struct Done {
    ok: bool,
    code: Option<i32>,
    outcome: String,
    stdout: String,
    stderr: String,
}

/// What a static pod restart found.
#[derive(Debug, Clone, PartialEq)]
pub enum Restart {
    /// A new container runs, `secs` after the old one was stopped.
    Done { secs: f64 },
    /// No `crictl` answers on the node: the pod is left as it was.
    NoRuntime,
}

/// Reads the given files (absolute paths); `.conf` files without their
/// `client-key-data` line, every other file reduced to its CERTIFICATE
/// blocks. Absent files are not printed.
const READ: &str = r#"for f; do
  [ -f "$f" ] || continue
  printf '==> ferry-file %s\n' "$f"
  case $f in
    *.conf) sed '/client-key-data:/d' "$f" ;;
    *) sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' "$f" ;;
  esac
done"#;

/// Unpacks the tar on stdin into `$1/.ferry-cert/`, then renames every
/// file into place under `$1` (same file system: each rename is atomic,
/// and they follow each other within milliseconds).
const WRITE: &str = r#"set -e; root=$1; tmp="$root/.ferry-cert"
rm -rf "$tmp"; mkdir -p "$tmp"; chmod 700 "$tmp"
tar -x --no-same-owner -C "$tmp"
cd "$tmp"
find . -type f -print0 | while IFS= read -r -d '' f; do
  mkdir -p "$root/$(dirname "$f")"; mv -f "$f" "$root/$f"
done
cd /; rm -rf "$tmp""#;

/// Stops the running containers named `$1` (SIGKILL after `$3` s) and
/// waits (at most `$2` s) for the kubelet to run a new one. Exit 3: no crictl.
const RESTART: &str = r#"name=$1; limit=$2
command -v crictl >/dev/null 2>&1 || { echo "no crictl on the node"; exit 3; }
old=$(crictl ps -q --state running --name "^$name\$") || { echo "crictl ps failed"; exit 3; }
[ -z "$old" ] || crictl stop --timeout "$3" $old >/dev/null
old=" $(echo $old) "
i=0
while [ "$i" -lt "$limit" ]; do
  for id in $(crictl ps -q --state running --name "^$name\$" 2>/dev/null); do
    case "$old" in *" $id "*) ;; *) echo "$id"; exit 0 ;; esac
  done
  sleep 1; i=$((i+1))
done
echo "no new $name container runs after ${limit}s"; exit 5"#;

/// Polls the apiserver at `$1` for `/readyz` with admin.conf, at most
/// `$2` s. Exit 127: no kubectl.
const READYZ: &str = r#"url=$1; limit=$2
command -v kubectl >/dev/null 2>&1 || exit 127
i=0
while [ "$i" -lt "$limit" ]; do
  if out=$(kubectl --kubeconfig /etc/kubernetes/admin.conf --server "$url" --request-timeout=5s get --raw=/readyz 2>&1); then exit 0; fi
  sleep 1; i=$((i+1))
done
printf '%s\n' "$out" | tail -n 3; exit 5"#;

impl Master {
    pub async fn connect(
        host: &str,
        ip: IpAddr,
        port: u16,
        tls: &ClientTls,
    ) -> Result<Self, CertError> {
        let client = AgentClient::connect(ip, port, tls, CONNECT_TIMEOUT)
            .await
            .map_err(|e| CertError::Node {
                host: host.to_string(),
                step: "connect",
                detail: format!("agent at {ip}:{port} does not answer: {e}"),
                next: "start the agent (`ferry agent install` restarts it), then re-run".into(),
            })?;
        Ok(Self {
            host: host.to_string(),
            ip,
            client,
        })
    }

    pub fn err(&self, step: &'static str, detail: impl Into<String>, next: &str) -> CertError {
        CertError::Node {
            host: self.host.clone(),
            step,
            detail: detail.into(),
            next: next.to_string(),
        }
    }

    async fn exec(
        &self,
        r: &Reporter,
        step: &'static str,
        script: &str,
        args: &[&str],
        stdin: Vec<u8>,
        timeout: Duration,
    ) -> Result<Done, CertError> {
        let mut argv = vec!["bash", "-c", script, step];
        argv.extend_from_slice(args);
        let mut spec = ExecSpec::argv(argv.iter().map(|s| s.to_string()).collect(), r.op());
        spec.stdin = stdin;
        spec.timeout = Some(timeout);
        let lost = "the agent's stream broke: re-run (every step is safe to repeat)";
        let mut stream = self
            .client
            .exec(&spec)
            .await
            .map_err(|e| self.err(step, e.to_string(), lost))?;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        while let Some(item) = stream.next().await {
            match item.map_err(|e| self.err(step, e.to_string(), lost))? {
                ExecItem::Stdout(d) => out.extend(d),
                ExecItem::Stderr(d) => err.extend(d),
                ExecItem::Exit(o) => {
                    return Ok(Done {
                        ok: o.success(),
                        code: o.code,
                        outcome: o.describe(),
                        stdout: String::from_utf8_lossy(&out).into_owned(),
                        stderr: String::from_utf8_lossy(&err).trim().to_string(),
                    });
                }
                ExecItem::Started { .. } | ExecItem::Heartbeat => {}
            }
        }
        Err(self.err(step, "exec stream ended without an exit status", lost))
    }

    /// The certificate parts of `rels` (relative to /etc/kubernetes) that
    /// exist on the node: a `.conf` without its key, else CERTIFICATE blocks.
    pub async fn read_certs(
        &self,
        r: &Reporter,
        rels: &[&str],
    ) -> Result<BTreeMap<String, String>, CertError> {
        let paths: Vec<String> = rels
            .iter()
            .map(|p| format!("/etc/kubernetes/{p}"))
            .collect();
        let args: Vec<&str> = paths.iter().map(String::as_str).collect();
        let d = self
            .exec(
                r,
                "read certificates",
                READ,
                &args,
                Vec::new(),
                Duration::from_secs(60),
            )
            .await?;
        if !d.ok {
            return Err(self.err(
                "read certificates",
                format!("{}: {}", d.outcome, d.stderr),
                "check /etc/kubernetes on the node, then re-run",
            ));
        }
        Ok(split_files(&d.stdout))
    }

    /// Writes `files` (path relative to `root`, bytes, mode) under `root`.
    pub async fn write_files(
        &self,
        r: &Reporter,
        root: &str,
        files: &[(String, Vec<u8>, u32)],
    ) -> Result<(), CertError> {
        let step = "write files";
        let tar = crate::tarball::pack(files).map_err(|e| self.err(step, e, "re-run"))?;
        let d = self
            .exec(r, step, WRITE, &[root], tar, Duration::from_secs(60))
            .await?;
        if d.ok {
            return Ok(());
        }
        Err(self.err(
            step,
            format!(
                "writing {} files under {root}: {}: {}",
                files.len(),
                d.outcome,
                d.stderr
            ),
            "free space or fix permissions under it on the node, then re-run",
        ))
    }

    /// Restarts the static pod container `name` and waits for a new one.
    pub async fn restart(&self, r: &Reporter, name: &str) -> Result<Restart, CertError> {
        let t = Instant::now();
        let limit = RESTART_LIMIT_S.to_string();
        let timeout = Duration::from_secs(u64::from(RESTART_LIMIT_S) + 60);
        let d = self
            .exec(
                r,
                "restart",
                RESTART,
                &[name, &limit, STOP_GRACE_S],
                Vec::new(),
                timeout,
            )
            .await?;
        match (d.ok, d.code) {
            (true, _) => Ok(Restart::Done {
                secs: t.elapsed().as_secs_f64(),
            }),
            (false, Some(3)) => Ok(Restart::NoRuntime),
            _ => Err(self.err(
                "restart",
                format!("{name}: {}: {}{}", d.outcome, d.stdout.trim(), d.stderr),
                &format!(
                    "look at the kubelet's log and `crictl ps -a --name {name}` on the node \
                     (the new certificates are in place), then re-run"
                ),
            )),
        }
    }

    /// Waits for this master's apiserver to answer `/readyz`; false when
    /// the node has no kubectl to ask with.
    pub async fn wait_ready(&self, r: &Reporter, port: u16) -> Result<bool, CertError> {
        let url = match self.ip {
            IpAddr::V6(ip) => format!("https://[{ip}]:{port}"),
            ip => format!("https://{ip}:{port}"),
        };
        let limit = RESTART_LIMIT_S.to_string();
        let timeout = Duration::from_secs(u64::from(RESTART_LIMIT_S) * 2);
        let d = self
            .exec(
                r,
                "apiserver ready",
                READYZ,
                &[&url, &limit],
                Vec::new(),
                timeout,
            )
            .await?;
        match (d.ok, d.code) {
            (true, _) => Ok(true),
            (false, Some(127)) => Ok(false),
            _ => Err(self.err(
                "apiserver ready",
                format!("{url}/readyz: {}: {}", d.outcome, d.stdout.trim()),
                "look at `crictl logs` of kube-apiserver and etcd on the node, then re-run",
            )),
        }
    }
}

/// `READ`'s output as relative path → text.
fn split_files(out: &str) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let mut cur: Option<(String, String)> = None;
    for line in out.lines() {
        if let Some(p) = line.strip_prefix(FILE_MARK) {
            files.extend(cur.take());
            let rel = p.strip_prefix("/etc/kubernetes/").unwrap_or(p);
            cur = Some((rel.to_string(), String::new()));
        } else if let Some((_, text)) = cur.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    files.extend(cur);
    files
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn read_output_splits_per_file() {
        let out = "==> ferry-file /etc/kubernetes/pki/ca.crt\n-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n==> ferry-file /etc/kubernetes/admin.conf\napiVersion: v1\n==> ferry-file /etc/kubernetes/pki/etcd/server.crt\n";
        let m = split_files(out);
        assert_eq!(m.len(), 3);
        assert!(m["pki/ca.crt"].starts_with("-----BEGIN CERTIFICATE-----\nAA\n"));
        assert_eq!(m["admin.conf"], "apiVersion: v1\n");
        assert_eq!(m["pki/etcd/server.crt"], "");
        assert!(split_files("").is_empty());
    }
}

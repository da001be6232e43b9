//! The real `ferry-agent` binary: `version`, and `daemon` → supervisor →
//! `serve` (restarted when killed) → `stop`; `HOME` for commands when the
//! agent was started with none (as systemd starts a unit without `User=`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{alive, argv, connect, pki, run};
use ferry_proto::pb;
use rustix::process::{Pid, Signal, kill_process};

const BIN: &str = env!("CARGO_BIN_EXE_ferry-agent");

fn agent(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// sha256 by an independent implementation (coreutils).
fn bin_sha256() -> String {
    let out = Command::new("sha256sum").arg(BIN).output().unwrap();
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn read_pid(p: &Path) -> Option<u32> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn version_prints_the_executable_sha256() {
    let out = agent(&["version", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let want_sha = bin_sha256();
    let want = format!(
        "{{\"version\":\"{}\",\"sha256\":\"{want_sha}\"}}\n",
        env!("CARGO_PKG_VERSION"),
    );
    assert_eq!(text(&out.stdout), want);
    let out = agent(&["version"]);
    assert!(text(&out.stdout).contains(want_sha.as_str()));
}

#[test]
fn daemon_rejects_bad_serve_arguments_before_starting() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("agent.pid");
    let log = dir.path().join("agent.log");
    let (p, l) = (pidfile.to_str().unwrap(), log.to_str().unwrap());
    let out = agent(&["daemon", "--pidfile", p, "--log-file", l, "--", "bogus"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("serve"), "{}", text(&out.stderr));
    let tls = dir.path().join("missing-tls");
    let out = agent(&[
        "daemon",
        "--pidfile",
        p,
        "--log-file",
        l,
        "--",
        "serve",
        "--listen",
        "127.0.0.1:1",
        "--tls-dir",
        tls.to_str().unwrap(),
        "--node-name",
        "n",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("ca.crt"),
        "{}",
        text(&out.stderr)
    );
    assert!(!pidfile.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_supervises_restarts_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let tls = dir.path().join("tls");
    pki.write_tls_dir(&tls);
    let pidfile = dir.path().join("run/agent.pid");
    let log = dir.path().join("agent.log");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let (p, l) = (pidfile.to_str().unwrap(), log.to_str().unwrap());
    let serve_args = [
        "serve",
        "--listen",
        &listen,
        "--tls-dir",
        tls.to_str().unwrap(),
        "--node-name",
        "bin-node",
        "--supervisor",
        "daemon",
        "--heartbeat-ms",
        "200",
    ];
    let mut args = vec!["daemon", "--pidfile", p, "--log-file", l, "--"];
    args.extend(serve_args);
    let out = agent(&args);
    assert!(out.status.success(), "daemon failed: {}", text(&out.stderr));
    let supervisor = read_pid(&pidfile).expect("no pid in the pidfile");
    assert!(alive(supervisor));

    // A second daemon refuses while the first runs.
    let again = agent(&args);
    assert!(!again.status.success());
    let err = text(&again.stderr);
    assert!(
        err.contains(&format!("already running (pid {supervisor}")),
        "{err}"
    );

    // serve answers over mTLS, as the supervisor's child.
    let addr = listen.parse().unwrap();
    let facts = || async {
        let mut c = connect(
            addr,
            pki.ca.cert_pem(),
            Some((&pki.client.cert_pem, &pki.client.key_pem)),
        )
        .await
        .ok()?;
        c.facts(pb::FactsRequest {})
            .await
            .ok()
            .map(|r| r.into_inner())
    };
    let first = poll_facts(&facts, |_| true).await;
    assert_eq!(first.node_name, "bin-node");
    assert_eq!(first.supervisor, "daemon");
    assert_eq!(first.agent_sha256, bin_sha256());
    assert_eq!(parent_of(first.agent_pid), Some(supervisor));

    // Killing serve: the supervisor starts a new one.
    let old = first.agent_pid;
    kill_process(Pid::from_raw(old as i32).unwrap(), Signal::KILL).unwrap();
    let second = poll_facts(&facts, |f| f.agent_pid != old).await;
    assert_eq!(parent_of(second.agent_pid), Some(supervisor));
    assert_eq!(read_pid(&pidfile), Some(supervisor));

    // stop: supervisor and serve exit, pidfile removed.
    let out = agent(&["stop", "--pidfile", p]);
    assert!(out.status.success(), "stop failed: {}", text(&out.stderr));
    assert!(!alive(supervisor) && !alive(second.agent_pid));
    assert!(!pidfile.exists());
    let out = agent(&["stop", "--pidfile", p]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("not running"));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("restarting"), "{logged}");
}

/// Polls Facts until `want` holds (deadline 30 s).
async fn poll_facts<F, Fut>(facts: &F, want: impl Fn(&pb::FactsReply) -> bool) -> pb::FactsReply
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<pb::FactsReply>>,
{
    let end = std::time::Instant::now() + common::DEADLINE;
    loop {
        if let Some(f) = facts().await
            && want(&f)
        {
            return f;
        }
        assert!(
            std::time::Instant::now() < end,
            "agent never answered as expected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn stop_cleans_a_stale_pidfile() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("agent.pid");
    // A pid nobody holds the lock for: the supervisor died without cleanup.
    std::fs::write(&pidfile, "999999\n").unwrap();
    let out = agent(&[
        "stop",
        "--pidfile",
        pidfile.to_str().unwrap(),
        "--timeout-ms",
        "2000",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("stale"), "{}", text(&out.stdout));
    assert!(!pidfile.exists());
}

/// The running user's home by an independent implementation (getent).
fn passwd_home() -> String {
    let uid = text(&Command::new("id").arg("-u").output().unwrap().stdout);
    let out = Command::new("getent")
        .args(["passwd", uid.trim()])
        .output()
        .unwrap();
    text(&out.stdout).split(':').nth(5).unwrap().to_string()
}

/// `HOME=` from a process's environment block.
fn environ_home(pid: u32) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    env.split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"HOME="))
        .map(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_get_a_home_when_the_agent_has_none() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let tls = dir.path().join("tls");
    pki.write_tls_dir(&tls);
    let want = passwd_home();
    let path = std::env::var("PATH").unwrap();
    let serve = |port: u16, name: &str| -> Vec<String> {
        [
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--tls-dir",
            tls.to_str().unwrap(),
            "--node-name",
            name,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let echo_home = |port: u16| {
        let pki = &pki;
        async move {
            let addr = format!("127.0.0.1:{port}").parse().unwrap();
            let end = std::time::Instant::now() + common::DEADLINE;
            let mut c = loop {
                let ident = Some((pki.client.cert_pem.as_str(), &pki.client.key_pem));
                match connect(addr, pki.ca.cert_pem(), ident).await {
                    Ok(c) => break c,
                    Err(e) => assert!(std::time::Instant::now() < end, "agent: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            let out = run(&mut c, argv(&["sh", "-c", "printf %s \"$HOME\""])).await;
            let facts = c.facts(pb::FactsRequest {}).await.unwrap().into_inner();
            (out.stdout(), facts.agent_pid)
        }
    };

    // `serve` itself started without HOME: its commands still get one.
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(serve(port, "bare-serve"))
        .env_clear()
        .env("PATH", &path)
        .spawn()
        .unwrap();
    let (home, _) = echo_home(port).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(home, want, "HOME of a command run by a serve without HOME");

    // `daemon` started without HOME: supervisor and serve get one.
    let pidfile = dir.path().join("agent.pid");
    let log = dir.path().join("agent.log");
    let port = free_port();
    let mut args: Vec<String> = ["daemon", "--pidfile", pidfile.to_str().unwrap()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend([
        "--log-file".into(),
        log.to_str().unwrap().into(),
        "--".into(),
    ]);
    args.extend(serve(port, "bare-daemon"));
    let out = Command::new(BIN)
        .args(&args)
        .env_clear()
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(out.status.success(), "daemon: {}", text(&out.stderr));
    let (home, serve_pid) = echo_home(port).await;
    let env_home = environ_home(serve_pid);
    let out = agent(&["stop", "--pidfile", pidfile.to_str().unwrap()]);
    assert!(out.status.success(), "stop: {}", text(&out.stderr));
    assert_eq!(home, want);
    assert_eq!(env_home.as_deref(), Some(want.as_str()), "serve's own HOME");
}

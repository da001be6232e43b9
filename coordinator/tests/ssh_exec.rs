//! Running commands over one SSH connection against a real sshd.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use ferry_coordinator::ssh::{HostKeyPolicy, SshError, SshSession};
use ferry_shared::Phase;
use support::sshd::*;

async fn root_session(d: &Sshd) -> SshSession {
    SshSession::connect(
        &d.password_target("root", ROOT_PASSWORD),
        &d.opts(HostKeyPolicy::AcceptNew),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn run_with_stdin_and_exit_codes() {
    let d = Sshd::start();
    let s = root_session(&d).await;
    let out = s.run(&["cat"], Some(b"hello\nworld")).await.unwrap();
    assert_eq!(out.code, Some(0));
    assert_eq!(out.stdout, b"hello\nworld");
    // No stdin: EOF at once, so cat does not hang.
    assert_eq!(s.run(&["cat"], None).await.unwrap().stdout, b"");
    let out = s
        .run(&["sh", "-c", "echo out; echo err >&2; exit 3"], None)
        .await
        .unwrap();
    assert_eq!(
        (out.code, out.stdout_str(), out.stderr_tail()),
        (Some(3), "out".into(), "err".into())
    );
    // A command that never reads its stdin still completes.
    let big = vec![b'x'; 4 << 20];
    assert_eq!(s.run(&["true"], Some(&big)).await.unwrap().code, Some(0));
    s.close().await;
}

#[tokio::test]
async fn run_ok_failure_is_command_error_with_stderr_tail() {
    let d = Sshd::start();
    let s = root_session(&d).await;
    let script = "for i in $(seq 1 40); do echo \"line $i\" >&2; done; exit 7";
    let err = s.run_ok(&["sh", "-c", script], None).await.unwrap_err();
    let SshError::Command {
        code,
        stderr_tail,
        command,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(*code, Some(7));
    assert!(command.starts_with("sh -c 'for i"), "{command}");
    assert_eq!(stderr_tail.lines().count(), 20);
    assert!(
        stderr_tail.starts_with("line 21") && stderr_tail.ends_with("line 40"),
        "{stderr_tail}"
    );
    assert_eq!(err.phase(), Phase::Exec);
    assert!(err.to_string().contains("exit 7"), "{err}");
    assert_eq!(s.run_ok(&["true"], None).await.unwrap().code, Some(0));
}

#[tokio::test]
async fn arguments_survive_the_remote_shell() {
    let d = Sshd::start();
    let s = SshSession::connect(
        &d.key_target(NOPW_USER, None),
        &d.opts(HostKeyPolicy::AcceptNew),
    )
    .await
    .unwrap();
    let args = [
        "", " a  b ", "'", "it's", "$(id)", "`id`", "a\nb", "*", "~", "#", ";|&<>", "\\", "\"",
        "é中",
    ];
    let mut argv = vec!["printf", "%s\\0"];
    argv.extend(args);
    let out = s.run_ok(&argv, None).await.unwrap();
    let got: Vec<String> = out
        .stdout
        .split(|b| *b == 0)
        .map(|p| String::from_utf8(p.to_vec()).unwrap())
        .collect();
    assert_eq!(&got[..args.len()], &args[..]);
}

#[tokio::test]
async fn channels_share_one_connection_concurrently() {
    let d = Sshd::start();
    let s = root_session(&d).await;
    // 16 at once: more than sshd's default MaxSessions 10 (the fixture keeps
    // the default), so this also checks the per-session channel limit.
    let runs = (0..16).map(|i| {
        let s = &s;
        async move {
            let input = format!("{i}\n").repeat(50_000);
            let out = s
                .run_ok(&["sh", "-c", "cat; echo done >&2"], Some(input.as_bytes()))
                .await
                .unwrap();
            assert_eq!(out.stdout, input.as_bytes());
            assert_eq!(out.stderr_tail(), "done");
        }
    });
    futures::future::join_all(runs).await;
    // Large output while stdin is still being fed must not deadlock.
    let big = vec![b'y'; 8 << 20];
    let out = s.run_ok(&["cat"], Some(&big)).await.unwrap();
    assert_eq!(out.stdout.len(), big.len());
    let established = std::fs::read_to_string(d.dir.path().join("sshd.log"))
        .unwrap()
        .matches("Accepted password")
        .count();
    assert_eq!(established, 1, "one SSH connection for all commands");
}

#[tokio::test]
async fn channel_open_refusals_are_retried() {
    // Fewer sessions than the per-connection channel limit: opens beyond 2
    // are refused by sshd until a slot frees, and must be retried.
    let d = Sshd::start_with("MaxSessions 2\n");
    let s = root_session(&d).await;
    let runs = (0..12).map(|i| {
        let s = &s;
        async move {
            s.run_ok(&["echo", &i.to_string()], None)
                .await
                .unwrap()
                .stdout_str()
        }
    });
    let got = futures::future::join_all(runs).await;
    assert_eq!(got, (0..12).map(|i| i.to_string()).collect::<Vec<_>>());
}

#[tokio::test]
async fn slow_command_times_out() {
    let d = Sshd::start();
    let mut opts = d.opts(HostKeyPolicy::AcceptNew);
    opts.command_timeout = Duration::from_millis(800);
    let s = SshSession::connect(&d.password_target("root", ROOT_PASSWORD), &opts)
        .await
        .unwrap();
    let err = s.run(&["sleep", "30"], None).await.unwrap_err();
    assert!(
        matches!(&err, SshError::CommandTimeout { command, .. } if command == "sleep 30"),
        "{err:?}"
    );
    // The connection stays usable.
    assert_eq!(
        s.run_ok(&["echo", "ok"], None).await.unwrap().stdout_str(),
        "ok"
    );
}

#[tokio::test]
async fn nul_in_argument_is_refused_locally() {
    let d = Sshd::start();
    let s = root_session(&d).await;
    let err = s.run(&["echo", "a\0b"], None).await.unwrap_err();
    assert!(err.to_string().contains("NUL"), "{err}");
}
